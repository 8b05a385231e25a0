"""Map test fixtures: `probe_server`, the real service on a private database with probe features."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from geo_service.app import create_app
from geo_service.catalog import Catalog
from geo_service.db.engine import sync_engine
from geo_service.loader import load
from geo_service.settings import Settings
from tests.conftest import private_database, running_server

# Hostile text in a feature must reach the page as text, never as markup or a script.
PROBE_NAME = '<img src="x" onerror="window.jxplanInjected = 1">探针 probe'
PROBE_PLAN_TEXT = "探针条款 <b>probe clause</b>"
PROBE_PAGE_SIZE = 3  # the server's maximum page size, so that the map must follow `next` links


def _probe(
    code: str, name_zh: str, name_en: str, geometry: dict[str, Any] | None, **props: Any
) -> dict[str, Any]:
    return {
        "code": code,
        "name_zh": name_zh,
        "name_en": name_en,
        "category": "rail_station",
        "status": "existing",
        "county": ["330424"],
        "source": "测试数据 test data",
        "accuracy": "approximate",
        "aliases": [],
        **props,
        "_geometry": geometry,
    }


PROBES = [
    _probe(
        "probe_html",
        PROBE_NAME,
        "Probe <script>window.jxplanInjected = 2</script>",
        {"type": "Point", "coordinates": [121.15, 30.45]},
        plan_text=PROBE_PLAN_TEXT,
        source_url="javascript:window.jxplanInjected = 3",
        aliases=["<i>alias</i>"],
    ),
    _probe("probe_nowhere", "无位置", "Nowhere", None, accuracy="unlocated"),
]


@pytest.fixture(scope="session")
def probe_server(
    server_url: str, catalog: Catalog, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Every layer plus the probe features in rail_stations, served with a page size of three."""
    with private_database(server_url, "probe") as url:
        engine = sync_engine(url)
        load(engine, catalog)
        with engine.begin() as conn:
            for probe in PROBES:
                props = {k: v for k, v in probe.items() if k != "_geometry"}
                geometry = probe["_geometry"]
                conn.execute(
                    text(
                        "INSERT INTO features (layer_id, properties, geom) VALUES"
                        " ('rail_stations', CAST(:p AS jsonb), ST_SetSRID(ST_GeomFromGeoJSON(:g), 4326))"
                    ),
                    {
                        "p": json.dumps(props, ensure_ascii=False),
                        "g": json.dumps(geometry) if geometry else None,
                    },
                )
        engine.dispose()
        settings = Settings(
            database_url=url,
            data_dir=tmp_path_factory.mktemp("probe"),
            default_limit=PROBE_PAGE_SIZE,
            max_limit=PROBE_PAGE_SIZE,
        )
        with running_server(create_app(settings, catalog)) as base:
            yield base
