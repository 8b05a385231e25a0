"""GDAL's OAPIF driver (`ogrinfo`, `ogr2ogr`) reading the live service, as GIS users do."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from fastapi import Request, Response
from shapely.geometry import box, shape

from geo_service.app import create_app
from geo_service.catalog import Catalog, load_catalog
from geo_service.settings import PROJECT_ROOT, Settings
from tests.conftest import running_server

LAYER_IDS = list(load_catalog(PROJECT_ROOT / "layers", PROJECT_ROOT / "maps").layers)
JIASHAN = (120.85, 30.80, 121.00, 30.95)
Seeds = dict[str, dict[str, dict[str, Any]]]


def _gdal(*args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"CPL_DEBUG": "OFF", "GDAL_HTTP_TIMEOUT": "60", "GDAL_HTTP_MAX_RETRY": "0"}
    result = subprocess.run(list(args), capture_output=True, text=True, env=env, timeout=300, check=False)
    assert result.returncode == 0, f"{' '.join(args)}\n{result.stdout}\n{result.stderr}"
    assert "ERROR" not in result.stderr, result.stderr
    return result


def _copy(live_server: str, layer_id: str, target: Path, *extra: str) -> sqlite3.Connection:
    _gdal("ogr2ogr", "-f", "GPKG", str(target), f"OAPIF:{live_server}/", layer_id, *extra)
    return sqlite3.connect(target)


def _rows(gpkg: sqlite3.Connection, layer_id: str) -> list[tuple[Any, ...]]:
    [(geom_column,)] = gpkg.execute(
        "SELECT column_name FROM gpkg_geometry_columns WHERE table_name = ?", (layer_id,)
    ).fetchall()
    return gpkg.execute(f'SELECT code, name_zh, "{geom_column}" IS NULL FROM "{layer_id}"').fetchall()


def test_ogrinfo_lists_every_collection(live_server: str, catalog: Catalog) -> None:
    """`ogrinfo OAPIF:` lists each collection of the service, with its geometry type."""
    output = _gdal("ogrinfo", "-ro", "-so", f"OAPIF:{live_server}/").stdout
    listed = re.findall(r"^\d+: (\w+) \(title: .*\) \(([\w ]+)\)$", output, flags=re.MULTILINE)
    assert [layer_id for layer_id, _ in listed] == list(catalog.layers)
    for layer_id, geometry_type in listed:
        assert geometry_type.replace(" ", "") == catalog.layers[layer_id].geometry_type


def test_ogrinfo_reads_the_feature_count(live_server: str, seeds: Seeds) -> None:
    """`ogrinfo -so` on a collection reports its feature count."""
    output = _gdal("ogrinfo", "-ro", "-so", f"OAPIF:{live_server}/", "rail_stations").stdout
    match = re.search(r"^Feature Count: (\d+)$", output, flags=re.MULTILINE)
    assert match and int(match.group(1)) == len(seeds["rail_stations"])


@pytest.mark.parametrize("layer_id", LAYER_IDS)
def test_ogr2ogr_copies_the_collection(live_server: str, seeds: Seeds, tmp_path: Path, layer_id: str) -> None:
    """`ogr2ogr -f GPKG` copies every feature, with its Chinese name, and keeps missing geometries missing."""
    first_page = httpx.get(f"{live_server}/collections/{layer_id}/items", params={"limit": 1}).json()
    matched = first_page["numberMatched"]
    gpkg = _copy(live_server, layer_id, tmp_path / "out.gpkg")
    try:
        rows = _rows(gpkg, layer_id)
    finally:
        gpkg.close()
    expected = seeds[layer_id]
    assert len(rows) == matched == len(expected)
    assert {code: name for code, name, _ in rows} == {
        c: f["properties"]["name_zh"] for c, f in expected.items()
    }
    assert {code for code, _, missing in rows if missing} == {
        c for c, f in expected.items() if f["geometry"] is None
    }


@pytest.mark.parametrize("layer_id", ["rail_stations", "rail_lines", "demonstration_zone"])
def test_ogr2ogr_spatial_filter(live_server: str, seeds: Seeds, tmp_path: Path, layer_id: str) -> None:
    """`ogr2ogr -spat` copies exactly the features that intersect the box."""
    area = box(*JIASHAN)
    expected = {
        c
        for c, f in seeds[layer_id].items()
        if f["geometry"] is not None and shape(f["geometry"]).intersects(area)
    }
    assert 0 < len(expected) < len(seeds[layer_id])
    gpkg = _copy(live_server, layer_id, tmp_path / "spat.gpkg", "-spat", *(str(n) for n in JIASHAN))
    try:
        rows = _rows(gpkg, layer_id)
    finally:
        gpkg.close()
    assert {code for code, _, _ in rows} == expected


@pytest.fixture(scope="module")
def recording_server(settings: Settings, catalog: Catalog) -> Iterator[tuple[str, list[str]]]:
    """The service on a real socket that records the path and query of every request it answers."""
    app = create_app(settings, catalog)
    seen: list[str] = []

    @app.middleware("http")
    async def record(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        seen.append(f"{request.url.path}?{request.url.query}")
        return await call_next(request)

    with running_server(app) as base:
        yield base, seen


@pytest.mark.parametrize(
    ("where", "wanted"),
    [
        ("status = 'existing'", {"status": ["existing"]}),
        (
            "accuracy = 'approximate' AND status = 'existing'",
            {"accuracy": ["approximate"], "status": ["existing"]},
        ),
    ],
)
def test_ogr2ogr_where_is_evaluated_by_the_server(
    recording_server: tuple[str, list[str]],
    seeds: Seeds,
    tmp_path: Path,
    where: str,
    wanted: dict[str, list[str]],
) -> None:
    """`ogr2ogr -where` on properties the API declares as query parameters reaches the server as Part 1
    equality filters (`?status=existing`), and the copy holds exactly the matching features."""
    base, seen = recording_server
    seen.clear()
    gpkg = _copy(base, "rail_stations", tmp_path / "where.gpkg", "-where", where)
    try:
        rows = _rows(gpkg, "rail_stations")
    finally:
        gpkg.close()
    expected = {
        c
        for c, f in seeds["rail_stations"].items()
        if all(f["properties"][k] == v[0] for k, v in wanted.items())
    }
    assert expected and {code for code, _, _ in rows} == expected
    # GDAL samples 10 features to learn the schema, reads /api for the declared parameters, then fetches
    api = seen.index("/api?")
    item_queries = [
        parse_qs(q.split("?", 1)[1]) for q in seen[api:] if q.startswith("/collections/rail_stations/items?")
    ]
    assert item_queries, seen
    for query in item_queries:
        assert {k: query.get(k) for k in wanted} == wanted, seen
