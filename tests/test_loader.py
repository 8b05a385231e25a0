"""`geo_service.loader`: idempotent loading, seed changes with history, kept edits, and rejected seed data.

Every test works on a private database (`jxplan_test_loader`), never on the shared one.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from geo_service.catalog import Catalog, load_catalog
from geo_service.loader import LOADER, SeedError, load
from geo_service.settings import PROJECT_ROOT

LAYERS = PROJECT_ROOT / "layers"
MAPS = PROJECT_ROOT / "maps"


@pytest.fixture
def seed_copy(tmp_path: Path) -> Path:
    """A copy of the catalogue and seed files under tmp_path, free to edit."""
    target = tmp_path / "layers"
    target.mkdir()
    shutil.copy2(LAYERS / "catalog.yaml", target / "catalog.yaml")
    for path in LAYERS.glob("*.geojson"):
        shutil.copy2(path, target / path.name)
    return target


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _write(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")


def _seed_counts() -> dict[str, int]:
    catalog = load_catalog(LAYERS, MAPS)
    return {lid: len(_read(catalog.layer_file(layer))["features"]) for lid, layer in catalog.layers.items()}


def _snapshot(engine: Engine) -> dict[str, Any]:
    """Everything a load may change: layer stats, every feature row, the history."""
    with engine.connect() as conn:
        layers = conn.execute(text("SELECT id, version, feature_count FROM layers ORDER BY id")).all()
        features = conn.execute(
            text(
                "SELECT id, layer_id, code, version, properties, ST_AsText(geom) AS wkt, updated_at,"
                " updated_by, seed_hash FROM features ORDER BY id"
            )
        ).all()
        history = conn.execute(text("SELECT * FROM feature_history ORDER BY id")).all()
    return {
        "layers": [tuple(r) for r in layers],
        "features": [
            tuple(json.dumps(v, sort_keys=True) if isinstance(v, dict) else v for v in r) for r in features
        ],
        "history": [tuple(r) for r in history],
    }


def _row(engine: Engine, code: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT id, version, properties, updated_by FROM features WHERE code = :c"), {"c": code}
        ).one()


def test_first_load_creates_every_seed_feature(private_engine: Engine, catalog: Catalog) -> None:
    """Loading into an empty database creates each seed feature once, with matching layer counts."""
    reports = load(private_engine, catalog)
    counts = _seed_counts()
    assert {r.layer: len(r.created) for r in reports} == counts
    assert all(not r.updated and not r.kept_edits and r.unchanged == 0 for r in reports)
    with private_engine.connect() as conn:
        stats = dict(conn.execute(text("SELECT id, feature_count FROM layers")).all())
        stored = dict(conn.execute(text("SELECT layer_id, count(*) FROM features GROUP BY layer_id")).all())
        assert conn.scalar(text("SELECT count(*) FROM feature_history")) == 0
        assert (
            conn.scalar(
                text("SELECT count(*) FROM features WHERE version <> 1 OR updated_by <> :l"), {"l": LOADER}
            )
            == 0
        )
    assert stats == counts == stored


def test_loading_twice_changes_nothing(private_engine: Engine, catalog: Catalog) -> None:
    """A second load of the same seeds writes nothing: 0 created/updated, same versions, no history."""
    load(private_engine, catalog)
    before = _snapshot(private_engine)
    reports = load(private_engine, catalog)
    for report in reports:
        assert report.created == [] and report.updated == [] and report.kept_edits == []
        assert not report.changed
    assert {r.layer: r.unchanged for r in reports} == _seed_counts()
    assert _snapshot(private_engine) == before
    assert before["history"] == []


def test_changed_seed_feature_is_updated_with_history(private_engine: Engine, seed_copy: Path) -> None:
    """A feature changed in its seed file gets version 2, the new values, and its old state in history."""
    load(private_engine, load_catalog(seed_copy, MAPS))
    path = seed_copy / "rail_stations.geojson"
    doc = _read(path)
    feature = doc["features"][1]
    code = feature["properties"]["code"]
    old_properties = dict(feature["properties"])
    old_version = _row(private_engine, code).version
    with private_engine.connect() as conn:
        layer_version = conn.scalar(text("SELECT version FROM layers WHERE id = 'rail_stations'"))
        other_layers = conn.execute(text("SELECT id, version FROM layers WHERE id <> 'rail_stations'")).all()
    feature["properties"]["name_zh"] = "嘉兴站(改建)"
    feature["geometry"]["coordinates"] = [120.7601, 30.7601]
    _write(path, doc)

    reports = {r.layer: r for r in load(private_engine, load_catalog(seed_copy, MAPS))}

    assert reports["rail_stations"].updated == [code]
    assert reports["rail_stations"].created == []
    assert all(not r.changed for lid, r in reports.items() if lid != "rail_stations")
    row = _row(private_engine, code)
    assert row.version == old_version + 1 == 2
    assert row.properties["name_zh"] == "嘉兴站(改建)"
    assert row.updated_by == LOADER
    with private_engine.connect() as conn:
        wkt = conn.scalar(text("SELECT ST_AsText(geom) FROM features WHERE id = :id"), {"id": row.id})
        history = conn.execute(
            text("SELECT feature_id, version, properties, operation, changed_by FROM feature_history")
        ).all()
        assert conn.scalar(text("SELECT version FROM layers WHERE id = 'rail_stations'")) > layer_version
        assert (
            conn.execute(text("SELECT id, version FROM layers WHERE id <> 'rail_stations'")).all()
            == other_layers
        )
    assert wkt == "POINT(120.7601 30.7601)"
    assert len(history) == 1
    [entry] = history
    assert (entry.feature_id, entry.version, entry.operation, entry.changed_by) == (
        row.id,
        1,
        "update",
        LOADER,
    )
    assert entry.properties == old_properties


def test_edit_by_a_person_is_not_overwritten(private_engine: Engine, seed_copy: Path) -> None:
    """A feature a person edited in the database keeps the edit when its seed changes; the report says so."""
    load(private_engine, load_catalog(seed_copy, MAPS))
    path = seed_copy / "rail_stations.geojson"
    doc = _read(path)
    code = doc["features"][2]["properties"]["code"]
    with private_engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE features SET updated_by = 'someone',"
                " properties = jsonb_set(properties, '{name_zh}', to_jsonb(CAST(:n AS text))) WHERE code = :c"
            ),
            {"n": "人工核实的站名", "c": code},
        )
    edited = _row(private_engine, code)
    before = _snapshot(private_engine)
    doc["features"][2]["properties"]["name_zh"] = "种子文件的新站名"
    _write(path, doc)

    reports = {r.layer: r for r in load(private_engine, load_catalog(seed_copy, MAPS))}

    assert reports["rail_stations"].kept_edits == [code]
    assert reports["rail_stations"].updated == []
    assert code in reports["rail_stations"].summary()
    row = _row(private_engine, code)
    assert row.properties["name_zh"] == "人工核实的站名"
    assert (row.version, row.updated_by) == (edited.version, "someone")
    assert _snapshot(private_engine) == before


def _wrong_type(doc: dict[str, Any]) -> str:
    doc["features"][0]["properties"]["accuracy_m"] = "about 1 km"
    return doc["features"][0]["properties"]["code"]


def _unknown_property(doc: dict[str, Any]) -> str:
    doc["features"][0]["properties"]["colour"] = "red"
    return doc["features"][0]["properties"]["code"]


def _bad_status(doc: dict[str, Any]) -> str:
    doc["features"][0]["properties"]["status"] = "dreamt_of"
    return doc["features"][0]["properties"]["code"]


def _wrong_geometry_type(doc: dict[str, Any]) -> str:
    doc["features"][0]["geometry"] = {"type": "LineString", "coordinates": [[120.7, 30.7], [120.8, 30.8]]}
    return doc["features"][0]["properties"]["code"]


def _self_intersecting(doc: dict[str, Any]) -> str:
    bow_tie = [[120.70, 30.70], [120.80, 30.80], [120.80, 30.70], [120.70, 30.80], [120.70, 30.70]]
    doc["features"][0]["geometry"] = {"type": "MultiPolygon", "coordinates": [[bow_tie]]}
    return doc["features"][0]["properties"]["code"]


def _swapped(doc: dict[str, Any]) -> str:
    lon, lat = doc["features"][0]["geometry"]["coordinates"]
    doc["features"][0]["geometry"]["coordinates"] = [lat, lon]
    return doc["features"][0]["properties"]["code"]


def _duplicate_code(doc: dict[str, Any]) -> str:
    code = doc["features"][0]["properties"]["code"]
    doc["features"][3]["properties"]["code"] = code
    return code


# (file, how to break it, what the message must say besides the file name and the code: each entry a word,
# or a tuple of acceptable phrasings)
BAD_SEEDS: dict[str, tuple[str, Callable[[dict[str, Any]], str], list[str | tuple[str, ...]]]] = {
    "wrong-property-type": ("rail_stations.geojson", _wrong_type, ["accuracy_m", "about 1 km", "type"]),
    "unknown-property": ("rail_stations.geojson", _unknown_property, ["colour"]),
    "bad-status": ("rail_stations.geojson", _bad_status, ["status", "dreamt_of"]),
    "wrong-geometry-type": ("rail_stations.geojson", _wrong_geometry_type, ["LineString", "Point"]),
    "self-intersecting": (
        "g60_platforms.geojson",
        _self_intersecting,
        ["geometry", "valid", "self-intersection"],
    ),
    "swapped-lon-lat": (
        "rail_stations.geojson",
        _swapped,
        [("longitude first", "swapped", "latitude, longitude", "lat, lon", "lat/lon")],
    ),
    "duplicate-code": ("rail_stations.geojson", _duplicate_code, ["twice"]),
}


@pytest.mark.parametrize("case", list(BAD_SEEDS))
def test_bad_seed_is_rejected_and_nothing_changes(private_engine: Engine, seed_copy: Path, case: str) -> None:
    """Bad seed data raises SeedError naming file, feature code and reason; the database stays as it was."""
    load(private_engine, load_catalog(seed_copy, MAPS))
    before = _snapshot(private_engine)
    filename, breaker, words = BAD_SEEDS[case]
    path = seed_copy / filename
    doc = _read(path)
    code = breaker(doc)
    # a valid change elsewhere must not be written either: the load is all or nothing
    other = _read(seed_copy / "road_projects.geojson")
    other["features"][0]["properties"]["name_zh"] = "不应写入"
    _write(seed_copy / "road_projects.geojson", other)
    _write(path, doc)

    with pytest.raises(SeedError) as raised:
        load(private_engine, load_catalog(seed_copy, MAPS))

    message = str(raised.value)
    assert f"layers/{filename}" in message
    assert code in message
    for word in words:
        phrasings = (word,) if isinstance(word, str) else word
        assert any(p.lower() in message.lower() for p in phrasings), f"none of {phrasings!r} in {message!r}"
    assert _snapshot(private_engine) == before


def test_file_that_is_not_json_is_rejected(private_engine: Engine, seed_copy: Path) -> None:
    """A seed file that is not JSON raises SeedError naming the file; the database stays as it was."""
    load(private_engine, load_catalog(seed_copy, MAPS))
    before = _snapshot(private_engine)
    (seed_copy / "rail_lines.geojson").write_text(
        '{"type": "FeatureCollection", "features": [', encoding="utf-8"
    )

    with pytest.raises(SeedError) as raised:
        load(private_engine, load_catalog(seed_copy, MAPS))

    message = str(raised.value)
    assert "layers/rail_lines.geojson" in message
    assert "json" in message.lower()
    assert _snapshot(private_engine) == before


def test_every_problem_is_reported_at_once(private_engine: Engine, seed_copy: Path) -> None:
    """Problems in several features and files are all listed in one SeedError, each with its code."""
    stations = _read(seed_copy / "rail_stations.geojson")
    bad_status = _bad_status(stations)
    stations["features"][5]["properties"]["colour"] = "red"
    unknown = stations["features"][5]["properties"]["code"]
    _write(seed_copy / "rail_stations.geojson", stations)
    platforms = _read(seed_copy / "g60_platforms.geojson")
    bow_tie = _self_intersecting(platforms)
    _write(seed_copy / "g60_platforms.geojson", platforms)

    with pytest.raises(SeedError) as raised:
        load(private_engine, load_catalog(seed_copy, MAPS))

    message = str(raised.value)
    for code in (bad_status, unknown, bow_tie):
        assert code in message
    with private_engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM features")) == 0
        assert conn.scalar(text("SELECT count(*) FROM layers")) == 0
