"""`jxplan bench load`: the synthetic `bench_parcels` layer (layers/bench.yaml), generated in PostgreSQL.

Every test that writes works on a private database (`private_url` / `private_engine`), never on the shared
one. Nothing here is timed: speed is measured by `benchmarks/`, never asserted.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from geo_service.app import create_app
from geo_service.bench import BENCH_LAYER, REGION, load_bench_layer
from geo_service.catalog import CatalogError, Layer, load_catalog, read_bench_layer
from geo_service.cli import app as cli_app
from geo_service.loader import load
from geo_service.settings import PROJECT_ROOT, Settings, get_settings

LAYERS = PROJECT_ROOT / "layers"
MAPS = PROJECT_ROOT / "maps"
ROWS = 2000
NAME = re.compile(r"^嘉兴地块-[0-9]{6}$")


@pytest.fixture(scope="module")
def bench_layer() -> Layer:
    """The `bench_parcels` entry of layers/bench.yaml."""
    return read_bench_layer(LAYERS, BENCH_LAYER)


def _digest(engine: Engine, limit: int | None = None) -> dict[str, str]:
    """md5 of each parcel's geometry (WKB) and properties, by code (the first `limit` codes only)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT code, md5(ST_AsBinary(geom)) AS g, md5(properties::text) AS p FROM features"
                " WHERE layer_id = :l ORDER BY code LIMIT :n"
            ),
            {"l": BENCH_LAYER, "n": limit},
        )
        return {r.code: f"{r.g}:{r.p}" for r in rows}


def _layer_row(engine: Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT version, feature_count, extent FROM layers WHERE id = :l"), {"l": BENCH_LAYER}
        ).one()


# -- the catalogue ------------------------------------------------------------------------------------------


def test_bench_layers_are_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """By default neither the settings nor the catalogue know bench_parcels; JXPLAN_BENCH_LAYERS=1 adds it
    after the plan layers, which stay exactly as they are."""
    monkeypatch.delenv("JXPLAN_BENCH_LAYERS", raising=False)
    assert Settings().bench_layers is False
    plain = load_catalog(LAYERS, MAPS)
    assert BENCH_LAYER not in plain.layers
    assert list(plain.layers) == [
        entry["id"] for entry in yaml.safe_load((LAYERS / "catalog.yaml").read_text())["layers"]
    ]

    monkeypatch.setenv("JXPLAN_BENCH_LAYERS", "1")
    assert Settings().bench_layers is True
    with_bench = load_catalog(LAYERS, MAPS, bench_layers=True)
    assert list(with_bench.layers) == [*plain.layers, BENCH_LAYER]
    assert all(with_bench.layers[k] == v for k, v in plain.layers.items())
    layer = with_bench.layers[BENCH_LAYER]
    assert layer.file is None and layer.geometry_type == "MultiPolygon"
    with pytest.raises(ValueError, match="no seed file"):
        with_bench.layer_file(layer)


def test_bench_layer_schema(bench_layer: Layer) -> None:
    """land_use is one of the 24 first-level classes as two-digit strings, each labelled in the
    description; area_m2 is a number; both are required besides the common properties."""
    properties = bench_layer.json_schema["properties"]
    codes = [f"{n:02d}" for n in range(1, 25)]
    assert properties["land_use"]["enum"] == codes
    assert all(f"{code} " in properties["land_use"]["description"] for code in codes)
    assert "07 居住用地" in properties["land_use"]["description"]
    assert properties["area_m2"]["type"] == "number"
    assert {"code", "name_zh", "status", "accuracy", "land_use", "area_m2"} <= set(
        bench_layer.json_schema["required"]
    )


def _write_catalogue(tmp_path: Path, name: str, layer: dict[str, Any]) -> Path:
    layers = tmp_path / "layers"
    layers.mkdir(exist_ok=True)
    (tmp_path / "maps").mkdir(exist_ok=True)
    if not (layers / "catalog.yaml").exists():
        (layers / "catalog.yaml").write_text(yaml.safe_dump({"layers": []}), encoding="utf-8")
    (layers / name).write_text(yaml.safe_dump({"layers": [layer]}), encoding="utf-8")
    return layers


def _entry(**extra: Any) -> dict[str, Any]:
    return {
        "id": "some_layer",
        "title": {"zh": "测试", "en": "Test"},
        "description": {"zh": "测试", "en": "Test"},
        "geometry_type": "Point",
        **extra,
    }


def test_plan_layers_need_a_seed_file_and_bench_layers_none(tmp_path: Path) -> None:
    """A plan layer without `file` (it would silently never load) and a bench layer with one are refused."""
    layers = _write_catalogue(tmp_path, "catalog.yaml", _entry())
    with pytest.raises(CatalogError, match="seed GeoJSON"):
        load_catalog(layers, tmp_path / "maps")
    _write_catalogue(tmp_path, "catalog.yaml", _entry(id="plan_layer", file="plan_layer.geojson"))
    _write_catalogue(tmp_path, "bench.yaml", _entry(file="x.geojson"))
    assert list(load_catalog(layers, tmp_path / "maps").layers) == ["plan_layer"]  # bench.yaml unread
    with pytest.raises(CatalogError, match="generated"):
        load_catalog(layers, tmp_path / "maps", bench_layers=True)
    _write_catalogue(tmp_path, "bench.yaml", _entry(id="plan_layer"))
    with pytest.raises(CatalogError, match="twice"):
        load_catalog(layers, tmp_path / "maps", bench_layers=True)


# -- the generated rows -------------------------------------------------------------------------------------


def test_load_makes_valid_parcels_inside_the_region(private_engine: Engine, bench_layer: Layer) -> None:
    """2,000 rows: valid MultiPolygons inside the region box, 30–300 m across, unique Chinese names,
    properties valid against the layer's schema, area_m2 the EPSG:4549 area; the layer row counts them."""
    report = load_bench_layer(private_engine, bench_layer, ROWS)
    assert report.rows == ROWS
    west, south, east, north = REGION
    with private_engine.connect() as conn:
        stats = conn.execute(
            text(
                """
                SELECT count(*) AS n,
                       count(*) FILTER (WHERE ST_IsValid(geom)) AS valid,
                       count(*) FILTER (WHERE GeometryType(geom) = 'MULTIPOLYGON'
                                        AND ST_NumGeometries(geom) = 1 AND ST_SRID(geom) = 4326) AS multi,
                       count(*) FILTER (WHERE ST_CoveredBy(geom, ST_MakeEnvelope(:w, :s, :e, :n, 4326)))
                           AS inside,
                       count(DISTINCT name_zh) AS names,
                       count(DISTINCT code) AS codes,
                       min(ST_MaxDistance(ST_Transform(geom, 4549), ST_Transform(geom, 4549))) AS smallest,
                       max(ST_MaxDistance(ST_Transform(geom, 4549), ST_Transform(geom, 4549))) AS largest,
                       max(abs((properties->>'area_m2')::float8 - ST_Area(ST_Transform(geom, 4549))))
                           AS area_error,
                       count(DISTINCT properties->>'land_use') AS land_uses,
                       count(DISTINCT status) AS statuses,
                       min(ST_NPoints(geom)) AS fewest_points,
                       max(ST_NPoints(geom)) AS most_points
                FROM features WHERE layer_id = :l
                """
            ),
            {"l": BENCH_LAYER, "w": west, "s": south, "e": east, "n": north},
        ).one()
        properties = conn.scalars(
            text("SELECT properties FROM features WHERE layer_id = :l ORDER BY id"), {"l": BENCH_LAYER}
        ).all()
    assert stats.n == stats.valid == stats.multi == stats.inside == ROWS
    assert stats.names == stats.codes == ROWS
    assert stats.smallest > 15 and stats.largest <= 300
    assert stats.area_error <= 0.05 + 1e-6  # rounded to 0.1 m²
    assert stats.land_uses >= 10 and stats.statuses == 4
    assert stats.fewest_points == 5 and stats.most_points == 8  # 4–7 vertices and the closing one
    for props in properties:
        errors = [e.message for e in bench_layer.property_validator.iter_errors(props)]
        assert errors == [], (props["code"], errors)
        assert NAME.match(props["name_zh"]), props["name_zh"]
    row = _layer_row(private_engine)
    assert row.feature_count == ROWS and row.extent is not None


def test_load_is_deterministic_and_replaces(private_engine: Engine, bench_layer: Layer) -> None:
    """Two loads of N rows give identical geometries and properties (new rows, replacing the old ones);
    a load of fewer rows keeps the first ones unchanged and leaves only its own."""
    load_bench_layer(private_engine, bench_layer, ROWS)
    first = _digest(private_engine)
    first_layer = _layer_row(private_engine)
    with private_engine.connect() as conn:
        first_ids = set(conn.scalars(text("SELECT id FROM features WHERE layer_id = :l"), {"l": BENCH_LAYER}))

    load_bench_layer(private_engine, bench_layer, ROWS)
    assert _digest(private_engine) == first
    again = _layer_row(private_engine)
    assert again.feature_count == ROWS and again.version > first_layer.version
    with private_engine.connect() as conn:
        ids = set(conn.scalars(text("SELECT id FROM features WHERE layer_id = :l"), {"l": BENCH_LAYER}))
    assert len(ids) == ROWS and not ids & first_ids  # replaced, not added to

    load_bench_layer(private_engine, bench_layer, 500)
    fewer = _digest(private_engine)
    assert len(fewer) == 500 and _layer_row(private_engine).feature_count == 500
    assert fewer == {code: first[code] for code in sorted(first)[:500]}


def test_plan_loader_skips_generated_layers(private_engine: Engine, bench_layer: Layer) -> None:
    """`jxplan load` with the bench layers in the catalogue loads the plan layers and leaves bench_parcels
    (made only by `jxplan bench load`) alone."""
    load_bench_layer(private_engine, bench_layer, 100)
    before = _digest(private_engine)
    reports = load(private_engine, load_catalog(LAYERS, MAPS, bench_layers=True))
    assert BENCH_LAYER not in {r.layer for r in reports}
    assert {r.layer for r in reports} == set(load_catalog(LAYERS, MAPS).layers)
    assert _digest(private_engine) == before


# -- the command and the service ----------------------------------------------------------------------------


@pytest.fixture
def cli_env(private_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The `jxplan` settings pointing at the private database (get_settings is cached: cleared around)."""
    monkeypatch.setenv("DATABASE_URL", private_url)
    monkeypatch.delenv("JXPLAN_BENCH_LAYERS", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_bench_load_command(cli_env: None, private_engine: Engine) -> None:
    """`jxplan bench load --rows 300` makes 300 parcels and says how long it took."""
    result = CliRunner().invoke(cli_app, ["bench", "load", "--rows", "300"])
    assert result.exit_code == 0, result.output
    assert f"{BENCH_LAYER}: 300 rows in" in result.output
    assert "JXPLAN_BENCH_LAYERS=1" in result.output
    assert _layer_row(private_engine).feature_count == 300
    refused = CliRunner().invoke(cli_app, ["bench", "load", "--rows", "0"])
    assert refused.exit_code != 0


def test_service_serves_the_bench_layer_only_when_asked(
    private_url: str, private_engine: Engine, bench_layer: Layer, tmp_path: Path
) -> None:
    """With bench_layers the service lists bench_parcels and pages its features; without, it is a 404."""
    load_bench_layer(private_engine, bench_layer, 300)
    for enabled in (True, False):
        settings = Settings(database_url=private_url, data_dir=tmp_path, bench_layers=enabled)
        with TestClient(create_app(settings)) as client:
            ids = [c["id"] for c in client.get("/collections", params={"f": "json"}).json()["collections"]]
            page = client.get(f"/collections/{BENCH_LAYER}/items", params={"limit": 5, "f": "json"})
            if not enabled:
                assert BENCH_LAYER not in ids and page.status_code == 404
                continue
            assert ids[-1] == BENCH_LAYER
            assert page.status_code == 200, page.text
            body = page.json()
            assert body["numberMatched"] == 300 and body["numberReturned"] == 5
            for feature in body["features"]:
                assert feature["geometry"]["type"] == "MultiPolygon"
                assert not list(bench_layer.property_validator.iter_errors(feature["properties"]))
