"""Fixtures of the database tests: a private migrated database that the tests may change."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from conftest import make_database
from sqlalchemy import Engine

from geo_service.db.engine import drop_database, sync_engine


@pytest.fixture
def private_url(server_url: str) -> Iterator[str]:
    """URL of a fresh database migrated to head, dropped afterwards (never the shared one)."""
    url = make_database(server_url, f"jxplan_test_db_{os.getpid()}")
    yield url
    drop_database(url)


@pytest.fixture
def private_engine(private_url: str) -> Iterator[Engine]:
    """An engine on the private database."""
    engine = sync_engine(private_url)
    yield engine
    engine.dispose()
