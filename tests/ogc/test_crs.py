"""Part 2, CRS by reference: coordinates in each offered CRS and its axis order, `bbox-crs`, `Content-Crs`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient
from pyproj import Transformer
from shapely import segmentize
from shapely.geometry import box, shape

from geo_service.ogc.crs import CRS84, SUPPORTED, epsg_uri

EPSG_CODES = [4326, 4490, 3857, 4549]
# 1 cm: in degrees (≈ 1.1e-7 at this latitude) or in metres
TOLERANCE = {4326: 2e-7, 4490: 2e-7, 3857: 0.01, 4549: 0.01}
Seeds = dict[str, dict[str, dict[str, Any]]]


def _expected(code: int, lon: float, lat: float) -> tuple[float, float]:
    """pyproj's coordinates of a WGS 84 point in EPSG:code, in the authority axis order."""
    return Transformer.from_crs(4326, code).transform(lat, lon)


def _feature_by_code(client: TestClient, layer: str, code: str, **params: str) -> tuple[dict[str, Any], Any]:
    response = client.get(f"/collections/{layer}/items", params={"limit": 1000, **params})
    assert response.status_code == 200, response.text
    [feature] = [f for f in response.json()["features"] if f["properties"]["code"] == code]
    return feature, response


@pytest.mark.parametrize("code", EPSG_CODES)
def test_station_in_each_crs(client: TestClient, seeds: Seeds, code: int) -> None:
    """嘉兴南站 comes back within 1 cm of pyproj's answer, in the CRS's axis order, with Content-Crs."""
    lon, lat = seeds["rail_stations"]["c01_jiaxing_south_stn"]["geometry"]["coordinates"]
    feature, response = _feature_by_code(client, "rail_stations", "c01_jiaxing_south_stn", crs=epsg_uri(code))
    got = feature["geometry"]["coordinates"]
    want = _expected(code, lon, lat)
    assert got == pytest.approx(list(want), abs=TOLERANCE[code])
    assert response.headers["content-crs"] == f"<{epsg_uri(code)}>"
    if code in (4326, 4490):
        assert 30 < got[0] < 31 and 120 < got[1] < 121  # latitude first
    if code == 4549:
        assert got[0] > 3_000_000 and got[1] < 1_000_000  # northing first


@pytest.mark.parametrize("code", EPSG_CODES)
def test_boundary_vertex_in_each_crs(client: TestClient, seeds: Seeds, code: int) -> None:
    """A vertex of 嘉善县's boundary, through the single-feature endpoint, matches pyproj within 1 cm."""
    lon, lat = seeds["admin_boundaries"]["cn-330421"]["geometry"]["coordinates"][0][0][0]
    feature, _ = _feature_by_code(client, "admin_boundaries", "cn-330421")
    response = client.get(
        f"/collections/admin_boundaries/items/{feature['id']}", params={"crs": epsg_uri(code)}
    )
    assert response.status_code == 200
    assert response.headers["content-crs"] == f"<{epsg_uri(code)}>"
    got = response.json()["geometry"]["coordinates"][0][0][0]
    assert got == pytest.approx(list(_expected(code, lon, lat)), abs=TOLERANCE[code])


def test_default_is_crs84(client: TestClient) -> None:
    """Without `crs` the answer is CRS84 (longitude first) and says so."""
    response = client.get("/collections/rail_stations/items", params={"limit": 1})
    assert response.headers["content-crs"] == f"<{CRS84}>"
    lon, lat = response.json()["features"][0]["geometry"]["coordinates"]
    assert 120 < lon < 122 and 30 < lat < 31


def test_crs_accepted_with_angle_brackets(client: TestClient) -> None:
    """`crs=<uri>` is the same as `crs=uri`."""
    bare = client.get("/collections/rail_stations/items", params={"limit": 2, "crs": epsg_uri(4549)}).json()
    bracketed = client.get(
        "/collections/rail_stations/items", params={"limit": 2, "crs": f"<{epsg_uri(4549)}>"}
    ).json()
    assert [f["geometry"] for f in bare["features"]] == [f["geometry"] for f in bracketed["features"]]


def _box_in(code: int, west: float, south: float, east: float, north: float) -> tuple[list[float], Any]:
    """A box in EPSG:code (axis order of the CRS) around a WGS 84 box, and its outline back in WGS 84."""
    to_crs = Transformer.from_crs(4326, code, always_xy=True)
    xs, ys = to_crs.transform([west, east, west, east], [south, south, north, north])
    native = box(min(xs), min(ys), max(xs), max(ys))
    back = Transformer.from_crs(code, 4326, always_xy=True)
    step = 0.001 if code in (4326, 4490) else 100.0
    outline = shapely.transform(segmentize(native, step), lambda xy: np.column_stack(back.transform(*xy.T)))
    x1, y1, x2, y2 = native.bounds
    flipped = code in (4326, 4490, 4549)
    numbers = [y1, x1, y2, x2] if flipped else [x1, y1, x2, y2]
    return numbers, outline


@pytest.mark.parametrize("code", EPSG_CODES)
@pytest.mark.parametrize("layer", ["rail_stations", "g60_platforms", "admin_boundaries"])
def test_bbox_in_each_crs(client: TestClient, seeds: Seeds, code: int, layer: str) -> None:
    """A bbox given in any offered CRS returns exactly the features that intersect it (shapely predicts)."""
    numbers, outline = _box_in(code, 120.70, 30.60, 120.95, 30.85)
    expected = {
        c for c, f in seeds[layer].items() if f["geometry"] and shape(f["geometry"]).intersects(outline)
    }
    response = client.get(
        f"/collections/{layer}/items",
        params={"bbox": ",".join(f"{n:.3f}" for n in numbers), "bbox-crs": epsg_uri(code), "limit": 1000},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert {f["properties"]["code"] for f in body["features"]} == expected
    assert body["numberMatched"] == len(expected)


def test_next_links_keep_the_crs(client: TestClient) -> None:
    """Following `next` keeps the requested CRS."""
    first = client.get("/collections/rail_stations/items", params={"limit": 2, "crs": epsg_uri(3857)}).json()
    [next_link] = [link for link in first["links"] if link["rel"] == "next"]
    page = client.get(next_link["href"])
    assert page.headers["content-crs"] == f"<{epsg_uri(3857)}>"
    assert page.json()["features"][0]["geometry"]["coordinates"][0] > 1e6


def test_collections_list_the_crs(client: TestClient) -> None:
    """Every collection lists CRS84 first, the other offered CRSs, and its storage CRS among them."""
    for collection in client.get("/collections").json()["collections"]:
        assert collection["crs"][0] == CRS84
        assert set(collection["crs"]) == set(SUPPORTED)
        assert collection["storageCrs"] in collection["crs"]
        assert all(uri.startswith("http://www.opengis.net/def/crs/") for uri in collection["crs"])


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"crs": "EPSG:4326"}, "crs 'EPSG:4326' is not supported"),
        ({"crs": epsg_uri(2000)}, "is not supported"),
        ({"bbox": "120,30,121,31", "bbox-crs": "urn:ogc:def:crs:EPSG::4326"}, "bbox-crs"),
        ({"bbox": "120.7,30.6,120.9,30.8", "bbox-crs": epsg_uri(4326)}, "minLat,minLon,maxLat,maxLon"),
        ({"bbox": "3400000,580000,3390000,590000", "bbox-crs": epsg_uri(4549)}, "greater than maximum"),
    ],
)
def test_bad_crs_is_400(client: TestClient, params: dict[str, str], fragment: str) -> None:
    """Unsupported CRSs and boxes that do not fit the bbox-crs's axis order are 400 with a useful message."""
    response = client.get("/collections/rail_stations/items", params=params)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert fragment in response.json()["detail"]


def test_feature_rejects_bbox_crs(client: TestClient) -> None:
    """The single-feature endpoint knows `crs` but not `bbox-crs`."""
    response = client.get("/collections/rail_stations/items/1", params={"bbox-crs": epsg_uri(4326)})
    assert response.status_code == 400
