"""Tests of the committed plan layers (demonstration zone, platforms, roads, rail) and their builder."""

from __future__ import annotations

import json
import shutil
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import shapely
import yaml
from jsonschema import Draft202012Validator
from pyproj import Transformer
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from geo_service.catalog import Layer
from geo_service.sources import outlines, plan_layers

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ROOT / "layers"
SEEDS = LAYERS / "sources" / "seeds"
PLAN_REFS = LAYERS / "sources" / "plan_refs.yaml"
ADMIN_PATH = LAYERS / "admin_boundaries.geojson"
LAYER_IDS = list(plan_layers.LAYER_ROWS)
STATED_AREA_TOLERANCE = 0.30

TO_4549 = Transformer.from_crs("EPSG:4326", "EPSG:4549", always_xy=True)


@cache
def catalog_layers() -> dict[str, Layer]:
    """The catalogue entries of the plan layers."""
    raw = yaml.safe_load((LAYERS / "catalog.yaml").read_text(encoding="utf-8"))
    return {entry["id"]: Layer.model_validate(entry) for entry in raw["layers"] if entry["id"] in LAYER_IDS}


@cache
def features(layer_id: str) -> list[dict[str, Any]]:
    """The committed features of a layer."""
    layer = catalog_layers()[layer_id]
    data = json.loads((LAYERS / layer.file).read_text(encoding="utf-8"))
    assert data["type"] == "FeatureCollection"
    return list(data["features"])


def all_features() -> list[tuple[str, dict[str, Any]]]:
    """(layer id, feature) for every committed plan-layer feature."""
    return [(layer_id, f) for layer_id in LAYER_IDS for f in features(layer_id)]


@cache
def counties() -> dict[str, BaseGeometry]:
    """Jiaxing county polygons by adcode (the city outline left out)."""
    data = json.loads(ADMIN_PATH.read_text(encoding="utf-8"))
    return {
        f["properties"]["adcode"]: shape(f["geometry"])
        for f in data["features"]
        if f["properties"]["adcode"] != plan_layers.JIAXING_ADCODE
    }


def projected(geometry: BaseGeometry) -> BaseGeometry:
    """A WGS 84 geometry in EPSG:4549 (metres)."""
    return shapely.transform(geometry, TO_4549.transform, interleaved=False)


def test_every_layer_has_features() -> None:
    """Each plan layer file exists and holds the rows the builder assigns to it."""
    for layer_id, keys in plan_layers.LAYER_ROWS.items():
        codes = [f["properties"]["code"] for f in features(layer_id)]
        assert [plan_layers.short_id(c) for c in codes] == sorted(keys), layer_id


@pytest.mark.parametrize("layer_id", LAYER_IDS)
def test_properties_validate_against_layer_schema(layer_id: str) -> None:
    """Every feature's properties validate against its layer's JSON Schema, with every key written."""
    layer = catalog_layers()[layer_id]
    validator = Draft202012Validator(layer.json_schema)
    for feature in features(layer_id):
        props = feature["properties"]
        errors = [e.message for e in validator.iter_errors(props)]
        assert not errors, (props["code"], errors)
        assert list(props) == layer.property_names, props["code"]


def test_codes_unique_across_layers() -> None:
    """No code occurs twice, within or across layers."""
    codes = [f["properties"]["code"] for _, f in all_features()]
    assert len(codes) == len(set(codes))


def test_plan_text_occurs_verbatim_in_its_seed() -> None:
    """Every quoted plan sentence occurs byte for byte in the named seed copy."""
    for _, feature in all_features():
        props = feature["properties"]
        if props["plan_text"] is None:
            assert props["plan_source"] is None and props["plan_section"] is None, props["code"]
            continue
        seed = SEEDS / props["plan_source"]
        assert props["plan_text"] in seed.read_text(encoding="utf-8"), props["code"]


def test_plan_refs_cover_every_feature() -> None:
    """plan_refs.yaml has an entry (possibly null) for exactly the features built."""
    refs = yaml.safe_load(PLAN_REFS.read_text(encoding="utf-8"))
    assert set(refs) == {f["properties"]["code"] for _, f in all_features()}


@pytest.mark.parametrize("layer_id", LAYER_IDS)
def test_geometry_valid_and_of_layer_type(layer_id: str) -> None:
    """Non-null geometries are valid, non-empty, of the declared type and on the 7-decimal grid."""
    expected = catalog_layers()[layer_id].geometry_type
    for feature in features(layer_id):
        data = feature["geometry"]
        if data is None:
            continue
        geometry = shape(data)
        code = feature["properties"]["code"]
        assert data["type"] == expected, code
        assert geometry.is_valid and not geometry.is_empty, code
        coords = shapely.get_coordinates(geometry)
        assert (abs(coords * 1e7 - (coords * 1e7).round()) < 1e-3).all(), code


def test_unlocated_iff_geometry_is_null() -> None:
    """accuracy "unlocated" is used exactly for the features without geometry."""
    for _, feature in all_features():
        props = feature["properties"]
        assert (feature["geometry"] is None) == (props["accuracy"] == "unlocated"), props["code"]


def test_geometry_meets_claimed_counties() -> None:
    """Every drawn geometry touches the union of the Jiaxing counties it claims.

    The one allowed exception is a proxy point the gazetteer puts just across a boundary: the builder keeps
    it as given, says so in geometry_method, and the miss must be within the row's own estimated error.
    """
    polygons = counties()
    for _, feature in all_features():
        props = feature["properties"]
        claimed = [c for c in props["county"] if c in polygons]
        if feature["geometry"] is None or not claimed:
            continue
        geometry = shape(feature["geometry"])
        area = shapely.union_all([polygons[c] for c in claimed])
        if area.intersects(geometry):
            continue
        distance = projected(area).distance(projected(geometry))
        assert "outside the claimed" in props["geometry_method"], props["code"]
        assert props["accuracy_m"] is not None and distance <= props["accuracy_m"], props["code"]


def test_drawn_zones_have_their_stated_area() -> None:
    """Every drawn zone with a stated area has it within ±30 % (EPSG:4549), however it was constructed."""
    checked = 0
    for _, feature in all_features():
        props = feature["properties"]
        stated = props.get("stated_area_km2")
        if feature["geometry"] is None or stated is None:
            continue
        checked += 1
        area = projected(shape(feature["geometry"])).area / 1e6
        assert abs(area - stated) <= STATED_AREA_TOLERANCE * stated, (props["code"], area, stated)
    assert checked == len(plan_layers.STATED_AREAS)


def test_schematic_circles_stay_inside_claimed_counties() -> None:
    """A schematic circle never spills over a county it does not claim (or outside Jiaxing)."""
    polygons = counties()
    for _, feature in all_features():
        props = feature["properties"]
        if feature["geometry"] is None or "schematic circle" not in (props["geometry_method"] or ""):
            continue
        claimed = shapely.union_all([polygons[c] for c in props["county"] if c in polygons])
        spill = projected(shape(feature["geometry"]).difference(claimed)).area
        assert spill < 1.0, (props["code"], spill)


def test_rebuild_is_byte_identical(tmp_path: Path) -> None:
    """Running the builder again reproduces the committed files byte for byte."""
    written = plan_layers.write(tmp_path)
    assert written
    for path in written:
        assert path.read_bytes() == (LAYERS / path.name).read_bytes(), path.name


def feature_by_code(code: str) -> dict[str, Any]:
    """The committed feature with a code."""
    found = [f for _, f in all_features() if f["properties"]["code"] == code]
    assert len(found) == 1, code
    return found[0]


def feature_by_key(key: str) -> dict[str, Any]:
    """The committed feature with a short id."""
    found = [f for _, f in all_features() if plan_layers.short_id(f["properties"]["code"]) == key]
    assert len(found) == 1, key
    return found[0]


def sources_copy(tmp_path: Path) -> Path:
    """A copy of the builder's inputs (the layers folder with its sources), to change one of them."""
    shutil.copytree(LAYERS, tmp_path / "layers")
    return tmp_path


def test_rail_lines_run_through_their_stations_in_order() -> None:
    """Each line with stops has, in order, exactly the committed points of its stations as vertices."""
    for key, stops in plan_layers.LINE_STOPS.items():
        line = feature_by_key(key)
        (vertices,) = line["geometry"]["coordinates"]
        assert len(vertices) == len(stops), key
        for stop, vertex in zip(stops, vertices, strict=True):
            if stop in (plan_layers.START, plan_layers.END):
                continue
            assert feature_by_key(stop)["geometry"]["coordinates"] == vertex, (key, stop)
        assert "Line through the points of its stations in order" in line["properties"]["geometry_method"]


def test_a_moved_station_moves_its_line(tmp_path: Path) -> None:
    """A station given a new position by the research file takes the lines through it along."""
    root = sources_copy(tmp_path)
    moved = (120.82, 30.72)
    entry = {
        "c46_stn": {
            "lon": str(moved[0]),
            "lat": str(moved[1]),
            "confidence": "low",
            "est_error_m": "2000",
            "source_title": "test",
            "source_url": "https://example.org/",
            "method": "test position",
            "evidence": "test",
        }
    }
    (root / plan_layers.RESEARCH).write_text(yaml.safe_dump(entry, allow_unicode=True), encoding="utf-8")
    built = plan_layers.Builder(root).collections()
    line = next(
        f for f in built["rail_lines"]["features"] if f["properties"]["code"] == "c22_hujia_intercity"
    )
    station = next(f for f in built["rail_stations"]["features"] if f["properties"]["code"] == "c46_stn")
    assert station["geometry"]["coordinates"] == list(moved)
    assert line["geometry"]["coordinates"][0][1] == list(moved)
    committed = feature_by_code("c22_hujia_intercity")["geometry"]["coordinates"][0]
    assert committed[1] != list(moved) and line["geometry"]["coordinates"][0][2:] == committed[2:]


def test_a_line_stop_must_be_a_located_point(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stop with no position (an unlocated row) fails the build instead of bending the line somewhere."""
    monkeypatch.setitem(plan_layers.LINE_STOPS, "c21", ("c09", "a09", "c04"))
    with pytest.raises(plan_layers.PlanLayerError, match="c21_hzh_rail: stop a09"):
        plan_layers.Builder(ROOT).collections()


def test_canal_park_is_the_stated_band_around_its_line() -> None:
    """The Grand Canal park is an area: the 2000 m band either side of its canal line, clipped.

    The band holds nothing farther than 2000 m from the line, covers the line within the counties, and stays
    inside them.
    """
    feature = feature_by_key("e17")
    assert feature["geometry"]["type"] == "MultiPolygon"
    assert "e17" in plan_layers.LAYER_ROWS["ecology_culture"]
    assert "e17" not in plan_layers.LAYER_ROWS["water_lines"]
    props = feature["properties"]
    width = plan_layers.CORRIDORS["e17"].value
    assert width == 2000.0 and "within 2000 m" in props["geometry_method"]
    assert "核心监控区" in props["note"] and "https://" in props["note"]
    line = projected(plan_layers.shapely_wkt.loads(plan_layers.read_gazetteer(ROOT)["e17"]["wkt"]))
    band = projected(shape(feature["geometry"]))
    claimed = projected(shapely.union_all([counties()[c] for c in props["county"]]))
    assert band.difference(line.buffer(width + 1.0)).area < 1.0
    assert line.intersection(claimed).difference(band.buffer(1.0)).length < 1.0
    assert band.difference(claimed.buffer(1.0)).area < 1.0


def test_a_corridor_needs_a_positive_width() -> None:
    """A band of no width is refused rather than drawn as nothing."""
    metric = outlines.Metric()
    line = plan_layers.LineString([(120.7, 30.7), (120.8, 30.8)])
    with pytest.raises(outlines.OutlineError, match="positive width"):
        outlines.corridor(metric, line, line.buffer(1), 0.0)


def test_a_stated_figure_must_be_quoted_in_the_sources(tmp_path: Path) -> None:
    """A figure whose evidence is in neither the row nor the notes fails the build; no file is rewritten."""
    root = sources_copy(tmp_path)
    notes = root / plan_layers.GAZETTEER_NOTES
    evidence = plan_layers.STATED_AREAS["e07"].evidence
    notes.write_text(notes.read_text(encoding="utf-8").replace(evidence, "(removed)"), encoding="utf-8")
    before = (root / "layers" / "strategic_platforms.geojson").read_bytes()
    with pytest.raises(plan_layers.PlanLayerError, match="e07_xiushui_new_area: stated text"):
        plan_layers.write(root / "layers", root)
    assert (root / "layers" / "strategic_platforms.geojson").read_bytes() == before


def test_stated_sources_and_unplaced_bounds_reach_the_feature() -> None:
    """A figure found after the gazetteer names its source in the note; bounds no source places are said."""
    xiushui = feature_by_key("e07")["properties"]
    assert xiushui["stated_area_km2"] == 190.3
    assert "0573vdy.7192.com" in xiushui["note"]
    park = feature_by_key("a11")["properties"]["geometry_method"]
    assert "stated bounds not placed: 伍子塘 (west), 茜泾塘 (north)" in park


def _research() -> dict[str, dict[str, Any]]:
    raw = yaml.safe_load((LAYERS / "sources" / "research.yaml").read_text(encoding="utf-8")) or {}
    return dict(raw)


def test_researched_features_carry_the_new_point_and_both_sources() -> None:
    """Each research entry is applied: the point is the entry's, its source comes first and the gazetteer's
    after it, the earlier method is kept, and the gazetteer's own confidence is still reported."""
    research = _research()
    assert research, "research.yaml holds entries"
    gazetteer = plan_layers.read_gazetteer(ROOT)
    built = {f["properties"]["code"]: f for _, f in all_features()}
    for code, entry in research.items():
        props = built[code]["properties"]
        geometry = shape(built[code]["geometry"])
        point = geometry if geometry.geom_type == "Point" else None
        if point is not None:
            assert (point.x, point.y) == pytest.approx((float(entry["lon"]), float(entry["lat"])), abs=1e-7)
        assert props["source"].startswith(entry["source_title"].strip())
        assert props["location_confidence"] == entry["confidence"]
        assert props["accuracy_m"] == entry["est_error_m"]
        assert "Earlier (gazetteer" in props["geometry_method"]
        row = gazetteer.get(plan_layers.short_id(code))
        if row is not None:
            assert props["gazetteer_confidence"] == row["confidence"]
            assert row["source_title"] in props["source"]


_GOOD = {
    "lon": "120.8",
    "lat": "30.7",
    "confidence": "low",
    "est_error_m": 1000,
    "source_title": "a title",
    "source_url": "a url",
    "method": "a method",
    "evidence": "a figure",
}
_STATION = "c01_jiaxing_south_stn"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({_STATION: {k: v for k, v in _GOOD.items() if k != "evidence"}}, "missing ['evidence']"),
        ({_STATION: _GOOD | {"confidence": "certain"}}, "unknown confidence"),
        ({"c99_nowhere": _GOOD}, "not a row"),
        ({_STATION: _GOOD | {"status": "completed"}}, "unknown ['status']"),
    ],
)
def test_research_without_source_or_for_an_unknown_row_is_refused(
    tmp_path: Path, entry: dict[str, Any], message: str
) -> None:
    """An entry lacking its evidence, with an unknown confidence, naming no row or changing a field research
    may not touch stops the build with the entry named; nothing is read from it."""
    target = tmp_path / plan_layers.RESEARCH
    target.parent.mkdir(parents=True)
    target.write_text(yaml.safe_dump(entry, allow_unicode=True), encoding="utf-8")
    rows = plan_layers.read_gazetteer(ROOT)
    before = {key: dict(row) for key, row in rows.items()}
    with pytest.raises(plan_layers.PlanLayerError, match=message.replace("[", r"\[").replace("]", r"\]")):
        plan_layers.read_research(tmp_path, rows)
    assert rows == before
