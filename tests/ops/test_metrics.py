"""`/metrics`: requests and latency by route template (bounded labels), the pools read at scrape time, the
tile cache, and writes by collection and operation counted only when answered 2xx."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import morecantile
import pytest
from fastapi import Request, Response
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from geo_service.app import create_app
from geo_service.catalog import Catalog
from geo_service.editing.keys import add_key
from geo_service.settings import Settings
from tests.conftest import Writable, database_state
from tests.editing.test_create import _feature

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
FEATURE = "/collections/{collectionId}/items/{featureId}"
TILE = "/collections/{collectionId}/tiles/{tileMatrixSetId}/{tileMatrix}/{tileRow}/{tileCol}"


def _samples(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(client: TestClient) -> Samples:
    """Every sample of `/metrics`."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return _samples(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (0 when absent)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


async def _slow_page(request: Request) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        yield b"["
        await asyncio.sleep(0.3)
        yield b"]"

    return StreamingResponse(body(), media_type="application/json")


async def _holding_pools(request: Request) -> Response:
    """The metrics as scraped while this request holds a read and a write connection."""
    async with request.app.state.reads.connection(), request.app.state.engine.connect() as conn:
        await conn.exec_driver_sql("SELECT 1")
        return Response(generate_latest(request.app.state.metrics.registry), media_type="text/plain")


@pytest.fixture(scope="module")
def client(settings: Settings, catalog: Catalog) -> TestClient:
    """An app of its own (its own registry) on the shared database, with two probe routes."""
    app = create_app(settings, catalog)
    app.add_route("/test/slow", _slow_page)
    app.add_route("/test/holding", _holding_pools)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client  # type: ignore[misc]


def _feature_ids(client: TestClient, layer: str) -> list[int]:
    return [
        f["id"] for f in client.get(f"/collections/{layer}/items", params={"limit": 2}).json()["features"]
    ]


def test_requests_by_route_template(client: TestClient) -> None:
    """Two different features count under one template, the plain data routes (page, feature, tile) as well
    as the routers' ones; unknown paths and methods share one label each; no raw path becomes a label."""
    before = scrape(client)
    first, second = _feature_ids(client, "rail_stations")
    for feature_id in (first, second):
        assert client.get(f"/collections/rail_stations/items/{feature_id}").status_code == 200
    client.get("/collections/rail_stations/queryables")
    client.get("/collections/rail_stations/tiles/WebMercatorQuad/3/3/6")
    client.get("/static/app/nothing-here.js")
    for path in ("/no/such/path", "/another/unknown"):
        assert client.get(path).status_code == 404
    client.request("BREW", "/collections")
    after = scrape(client)

    def grew(route: str, status: str, method: str = "GET") -> float:
        labels = {"route": route, "method": method, "status": status}
        name = "jxplan_http_requests_total"
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("/collections/{collectionId}/items", "200") == 1
    assert grew(FEATURE, "200") == 2
    assert grew("/collections/{collectionId}/queryables", "200") == 1
    assert grew(TILE, "200") + grew(TILE, "204") == 1
    assert grew("/static/app/{path}", "404") == 1
    assert grew("unmatched", "404") == 2
    assert grew("/collections", "405", method="other") == 1
    routes = {dict(labels).get("route") for _, labels in after}
    assert not any(str(r).startswith(("/no/", "/another")) or "rail_stations" in str(r) for r in routes)
    timed = value(after, "jxplan_http_request_duration_seconds_count", route=FEATURE, method="GET")
    assert (
        timed - value(before, "jxplan_http_request_duration_seconds_count", route=FEATURE, method="GET") == 2
    )


def test_latency_of_a_stream_ends_with_its_body(client: TestClient) -> None:
    """A response whose body takes 0.3 s after its headers is timed at 0.3 s or more."""
    assert client.get("/test/slow").content == b"[]"
    samples = scrape(client)
    assert value(samples, "jxplan_http_request_duration_seconds_count", route="/test/slow", method="GET") == 1
    assert value(samples, "jxplan_http_request_duration_seconds_sum", route="/test/slow", method="GET") >= 0.3


def test_pools_read_at_scrape_time(client: TestClient) -> None:
    """While a request holds a read and a write connection the gauges say so; afterwards none is in use."""
    held = _samples(client.get("/test/holding").text)
    assert value(held, "jxplan_read_pool_connections", state="in_use") >= 1
    assert value(held, "jxplan_write_pool_checked_out") >= 1
    idle = scrape(client)
    assert value(idle, "jxplan_read_pool_connections", state="in_use") == 0
    assert value(idle, "jxplan_read_pool_connections", state="idle") >= 1
    assert value(idle, "jxplan_write_pool_checked_out") == 0
    assert value(idle, "jxplan_read_pool_waiting") == 0
    assert value(idle, "jxplan_read_pool_max") == 2 * client.app.state.settings.pool_size  # type: ignore[attr-defined]


def test_tile_cache_counters(client: TestClient) -> None:
    """The same tile twice: one miss then one hit, and the tile (with its bookkeeping) is kept."""
    tile = morecantile.tms.get("WebMercatorQuad").tile(120.76, 30.76, 11)
    path = f"/collections/rail_stations/tiles/WebMercatorQuad/{tile.z}/{tile.y}/{tile.x}"
    before = scrape(client)
    first, again = client.get(path), client.get(path)
    assert first.status_code == again.status_code == 200 and first.content == again.content
    after = scrape(client)
    for name, grown in (("hits", 1), ("misses", 1)):
        full = f"jxplan_tile_cache_{name}_total"
        assert value(after, full) - value(before, full) == grown
    assert value(after, "jxplan_tile_cache_entries") - value(before, "jxplan_tile_cache_entries") == 1
    # the budget counts a tile's bytes and its entry's bookkeeping (key and overhead: a few hundred bytes)
    kept = value(after, "jxplan_tile_cache_bytes") - value(before, "jxplan_tile_cache_bytes")
    assert len(first.content) < kept < len(first.content) + 1024
    assert value(after, "jxplan_tile_cache_max_bytes") == 32 * 2**20


def test_each_app_has_its_own_registry(settings: Settings, catalog: Catalog, client: TestClient) -> None:
    """A second app in the same process starts from zero: no clash, no shared counts."""
    with TestClient(create_app(settings, catalog)) as other:
        assert (
            value(scrape(other), "jxplan_http_requests_total", route="/metrics", method="GET", status="200")
            == 0
        )
        assert (
            value(scrape(other), "jxplan_http_requests_total", route="/metrics", method="GET", status="200")
            == 1
        )


def test_writes_counted_when_answered_2xx(writable: Writable, tmp_path: Path) -> None:
    """Create, update, replace, delete, revert and import each count once under their collection; a refused
    write and a dry-run import count as requests but not as writes (and change nothing)."""
    auth = {"Authorization": f"Bearer {add_key(writable.engine, '指标 metrics', 'editor')}"}
    client, layer = writable.client, "rail_stations"
    items = f"/collections/{layer}/items"
    before = scrape(client)
    created = client.post(items, json=_feature("metrics_station"), headers=auth)
    assert created.status_code == 201, created.text
    feature = created.headers["location"]
    merge = {**auth, "Content-Type": "application/merge-patch+json"}
    assert client.patch(
        feature, content=json.dumps({"properties": {"status": "completed"}}), headers=merge
    ).is_success
    assert client.put(feature, json=_feature("metrics_station", status="planned"), headers=auth).is_success
    assert client.post(f"{feature}/revert", params={"to": 1}, headers=auth).is_success
    assert client.delete(feature, headers=auth).is_success
    state = database_state(writable.engine)
    assert client.post(items, json={"type": "Feature"}, headers=auth).status_code == 400
    upload = tmp_path / "stations.geojson"
    upload.write_text(json.dumps({"type": "FeatureCollection", "features": [_feature("metrics_import")]}))
    dry = client.post(
        f"/collections/{layer}/import",
        files={"file": (upload.name, upload.read_bytes())},
        data={"dry_run": "true"},
        headers=auth,
    )
    assert dry.status_code == 200, dry.text
    assert database_state(writable.engine) == state
    imported = client.post(
        f"/collections/{layer}/import", files={"file": (upload.name, upload.read_bytes())}, headers=auth
    )
    assert imported.status_code == 200, imported.text
    after = scrape(client)
    for operation in ("create", "update", "replace", "revert", "delete", "import"):
        full = "jxplan_writes_total"
        grew = value(after, full, collection=layer, operation=operation) - value(
            before, full, collection=layer, operation=operation
        )
        assert grew == 1, operation
    refused = {"route": "/collections/{collectionId}/items", "method": "POST", "status": "400"}
    assert (
        value(after, "jxplan_http_requests_total", **refused)
        - value(before, "jxplan_http_requests_total", **refused)
        == 1
    )
