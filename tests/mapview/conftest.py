"""Map test fixtures: `probe_server`, the real service on a private database with probe features."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Route
from sqlalchemy import Engine, text

from geo_service.app import create_app
from geo_service.catalog import Catalog
from geo_service.db.engine import sync_engine
from geo_service.editing.keys import add_key
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


LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def block_outside(route: Route) -> None:
    """A page's request off this machine is refused, as on an intranet without internet access."""
    if urlsplit(route.request.url).hostname in LOCAL_HOSTS:
        route.continue_()
    else:
        route.abort("internetdisconnected")


class EditorServer(NamedTuple):
    """The service on a private loaded database, an engine on it, an editor's and a reader's key."""

    base: str
    engine: Engine
    editor_key: str
    reader_key: str


@pytest.fixture(scope="module")
def editor_server(
    request: pytest.FixtureRequest,
    server_url: str,
    catalog: Catalog,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[EditorServer]:
    """The service on a private loaded database (one per test module), with an editor and a reader key."""
    module = request.module.__name__.rsplit(".", 1)[-1]
    with private_database(server_url, f"editor_{module}") as url:
        engine = sync_engine(url)
        load(engine, catalog)
        editor_key = add_key(engine, "浏览器编辑 browser", "editor")
        reader_key = add_key(engine, "只读 reader", "reader")
        settings = Settings(database_url=url, data_dir=tmp_path_factory.mktemp("editor"))
        with running_server(create_app(settings, catalog)) as base:
            yield EditorServer(base, engine, editor_key, reader_key)
        engine.dispose()
