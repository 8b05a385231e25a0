"""Tests of the WGS 84 / GCJ-02 / BD-09 conversions (pure computation, no database)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from pyproj import Geod
from shapely.geometry import MultiPolygon, Polygon

from geo_service.datum import (
    bd09_to_gcj02,
    bd09_to_wgs84,
    convert_geometry,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)

GEOD = Geod(ellps="WGS84")
JIASHAN_SEAT = (120.9164, 30.84525)


def _distance_m(lon1: object, lat1: object, lon2: object, lat2: object) -> np.ndarray:
    return np.asarray(GEOD.inv(lon1, lat1, lon2, lat2)[2])


@pytest.fixture
def jiaxing_grid() -> tuple[np.ndarray, np.ndarray]:
    """A 0.01° grid over Jiaxing and its surroundings."""
    lon, lat = np.meshgrid(np.linspace(120.3, 121.3, 101), np.linspace(30.2, 31.1, 91))
    return lon, lat


def test_jiashan_seat_shifts_about_490_m_east_southeast() -> None:
    lon, lat = JIASHAN_SEAT
    glon, glat = wgs84_to_gcj02(lon, lat)
    azimuth, _, distance = GEOD.inv(lon, lat, glon, glat)
    assert 470 <= distance <= 510
    # East-southeast: the GCJ-02 point lies east and somewhat south of the true one.
    assert 100 <= azimuth <= 135
    assert glon > lon and glat < lat


def test_offset_over_jiaxing_matches_published_size(jiaxing_grid: tuple[np.ndarray, np.ndarray]) -> None:
    lon, lat = jiaxing_grid
    glon, glat = wgs84_to_gcj02(lon, lat)
    assert np.all((glon - lon > 0.0038) & (glon - lon < 0.0048))
    assert np.all((glat - lat > -0.0028) & (glat - lat < -0.0019))


def test_gcj02_round_trip_under_1_cm(jiaxing_grid: tuple[np.ndarray, np.ndarray]) -> None:
    lon, lat = jiaxing_grid
    back_lon, back_lat = gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat))
    assert _distance_m(lon, lat, back_lon, back_lat).max() < 0.01
    # And the other way round: a GCJ-02 grid survives GCJ -> WGS -> GCJ.
    again_lon, again_lat = wgs84_to_gcj02(*gcj02_to_wgs84(lon, lat))
    assert _distance_m(lon, lat, again_lon, again_lat).max() < 0.01


def test_bd09_round_trip_under_1_cm(jiaxing_grid: tuple[np.ndarray, np.ndarray]) -> None:
    lon, lat = jiaxing_grid
    back_lon, back_lat = bd09_to_wgs84(*wgs84_to_bd09(lon, lat))
    assert _distance_m(lon, lat, back_lon, back_lat).max() < 0.01
    g_lon, g_lat = bd09_to_gcj02(*gcj02_to_bd09(lon, lat))
    assert _distance_m(lon, lat, g_lon, g_lat).max() < 0.01


def test_bd09_is_gcj02_shifted_further() -> None:
    lon, lat = JIASHAN_SEAT
    glon, glat = wgs84_to_gcj02(lon, lat)
    blon, blat = wgs84_to_bd09(lon, lat)
    assert (blon, blat) == gcj02_to_bd09(glon, glat)
    # BD-09's constant part is +0.0065° lon, +0.006° lat; its rotation adds a few hundred metres more.
    assert 0.005 < blon - glon < 0.02
    assert 0.005 < blat - glat < 0.01


@pytest.mark.parametrize("point", [(139.6917, 35.6895), (-0.1276, 51.5072), (151.2093, -33.8688)])
def test_points_outside_china_are_unchanged(point: tuple[float, float]) -> None:
    assert wgs84_to_gcj02(*point) == point
    assert gcj02_to_wgs84(*point) == point


def test_scalars_give_floats() -> None:
    lon, lat = wgs84_to_gcj02(*JIASHAN_SEAT)
    assert isinstance(lon, float) and isinstance(lat, float)
    back = gcj02_to_wgs84(lon, lat)
    assert all(isinstance(v, float) for v in back)
    assert all(isinstance(v, float) for v in bd09_to_wgs84(*wgs84_to_bd09(*JIASHAN_SEAT)))


def test_arrays_keep_their_shape_and_match_scalars(jiaxing_grid: tuple[np.ndarray, np.ndarray]) -> None:
    lon, lat = jiaxing_grid
    glon, glat = wgs84_to_gcj02(lon, lat)
    assert glon.shape == lon.shape and glat.shape == lat.shape
    i, j = 40, 60
    assert (glon[i, j], glat[i, j]) == wgs84_to_gcj02(float(lon[i, j]), float(lat[i, j]))


def test_lists_and_broadcasting() -> None:
    glon, glat = wgs84_to_gcj02([120.5, 121.0], 30.7)
    assert glon.shape == glat.shape == (2,)
    assert (glon[1], glat[1]) == wgs84_to_gcj02(121.0, 30.7)


def test_inputs_are_not_modified() -> None:
    lon = np.array([120.5, 121.0])
    lat = np.array([30.5, 30.9])
    gcj02_to_wgs84(lon, lat)
    bd09_to_wgs84(lon, lat)
    assert lon.tolist() == [120.5, 121.0] and lat.tolist() == [30.5, 30.9]


def test_empty_and_nan_inputs() -> None:
    lon, lat = gcj02_to_wgs84(np.array([]), np.array([]))
    assert lon.shape == lat.shape == (0,)
    lon, lat = gcj02_to_wgs84(np.array([np.nan, 120.9]), np.array([np.nan, 30.8]))
    assert math.isnan(lon[0]) and math.isnan(lat[0])
    assert (lon[1], lat[1]) == gcj02_to_wgs84(120.9, 30.8)


def _square(lon: float, lat: float, half: float = 0.01) -> Polygon:
    return Polygon(
        [
            (lon - half, lat - half),
            (lon + half, lat - half),
            (lon + half, lat + half),
            (lon - half, lat + half),
        ]
    )


@pytest.mark.parametrize("source", ["gcj02", "bd09"])
def test_convert_geometry_moves_polygon_like_its_vertices(source: str) -> None:
    to_wgs = gcj02_to_wgs84 if source == "gcj02" else bd09_to_wgs84
    polygon = _square(*JIASHAN_SEAT)
    converted = convert_geometry(polygon, source)
    assert isinstance(converted, Polygon) and converted.is_valid
    before = shapely.get_coordinates(polygon)
    after = shapely.get_coordinates(converted)
    exp_lon, exp_lat = to_wgs(before[:, 0], before[:, 1])
    np.testing.assert_array_equal(after, np.column_stack([exp_lon, exp_lat]))
    # The offset field varies by only a few metres per kilometre, so a 2 km square is in effect translated:
    # the centroid moves by the vertices' mean shift and the shape barely changes.
    vertex_shift = _distance_m(before[:, 0], before[:, 1], after[:, 0], after[:, 1])
    c0, c1 = polygon.centroid, converted.centroid
    centroid_shift = float(_distance_m(c0.x, c0.y, c1.x, c1.y))
    assert np.ptp(vertex_shift) < 10
    assert abs(centroid_shift - vertex_shift.mean()) < 1
    assert abs(converted.area - polygon.area) / polygon.area < 5e-3


def test_convert_geometry_keeps_multipart_type() -> None:
    multi = MultiPolygon([_square(120.8, 30.7), _square(121.0, 30.9)])
    converted = convert_geometry(multi, "gcj02")
    assert isinstance(converted, MultiPolygon) and len(converted.geoms) == 2


def test_convert_geometry_rejects_unknown_datum() -> None:
    with pytest.raises(ValueError, match="unknown source datum"):
        convert_geometry(_square(*JIASHAN_SEAT), "wgs72")
