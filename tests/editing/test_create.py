"""POST of a feature (Part 4): created with Location and ETag, geometry from another CRS transformed; every
bad input refused with an actionable 4xx before anything is written."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pyproj import Transformer
from sqlalchemy import text

from geo_service.editing.body import MAX_BODY
from geo_service.editing.keys import add_key
from geo_service.validation import MAX_VERTICES
from tests.conftest import Writable, database_state

LAYER = "rail_stations"
POINT = [120.80, 30.70]


@pytest.fixture(scope="module")
def token(writable: Writable) -> str:
    """An editor's key on the module's private database."""
    return add_key(writable.engine, "创建测试 creator", "editor")


def _feature(code: str, geometry: Any = None, **changes: Any) -> dict[str, Any]:
    properties = {
        "code": code,
        "name_zh": "测试站",
        "name_en": "Test station",
        "category": "rail_station",
        "status": "planned",
        "county": ["330402"],
        "accuracy": "approximate",
        "accuracy_m": 200,
        "aliases": [],
    } | changes
    return {
        "type": "Feature",
        "geometry": geometry or {"type": "Point", "coordinates": POINT},
        "properties": properties,
    }


def _post(writable: Writable, token: str, body: Any, layer: str = LAYER, **headers: str) -> Any:
    content = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    sent = {"Authorization": f"Bearer {token}", "Content-Type": "application/geo+json"} | headers
    return writable.client.post(f"/collections/{layer}/items", content=content, headers=sent)


def _count(writable: Writable) -> int:
    with writable.engine.connect() as conn:
        return int(
            conn.execute(text("SELECT feature_count FROM layers WHERE id = :l"), {"l": LAYER}).scalar_one()
        )


def test_create_returns_location(writable: Writable, token: str) -> None:
    """A valid feature is created: 201 with Location (which GETs it, with the same properties and point)
    and an ETag naming version 1; it is recorded as made by the key's owner; the layer count grows."""
    count = _count(writable)
    response = _post(writable, token, _feature("test_created") | {"id": 999999})
    assert response.status_code == 201, response.text
    assert '"f' in response.headers["etag"] and "v1-" in response.headers["etag"]
    location = response.headers["location"]
    got = writable.client.get(location).json()
    assert got["properties"]["code"] == "test_created" and got["id"] != 999999
    assert got["geometry"]["coordinates"] == pytest.approx(POINT)
    assert _count(writable) == count + 1
    with writable.engine.connect() as conn:
        who = conn.execute(
            text("SELECT updated_by FROM features WHERE id = :i"), {"i": got["id"]}
        ).scalar_one()
    assert who == "创建测试 creator"


@pytest.mark.parametrize(
    "header", ["http://www.opengis.net/def/crs/EPSG/0/4549", "<http://www.opengis.net/def/crs/EPSG/0/4549>"]
)
def test_content_crs_is_transformed(writable: Writable, token: str, header: str) -> None:
    """A point sent in EPSG:4549 (northing first), with Content-Crs bare (as QGIS sends it) or in angle
    brackets, is stored where pyproj says, within 1 cm."""
    easting, northing = Transformer.from_crs(4326, 4549, always_xy=True).transform(*POINT)
    code = "test_crs_" + str(len(header))
    body = _feature(code, {"type": "Point", "coordinates": [northing, easting]})
    response = _post(writable, token, body, **{"Content-Crs": header})
    assert response.status_code == 201, response.text
    got = writable.client.get(response.headers["location"]).json()["geometry"]["coordinates"]
    assert got == pytest.approx(POINT, abs=1e-7)


BOWTIE = {
    "type": "Polygon",
    "coordinates": [[[120.7, 30.7], [120.8, 30.8], [120.8, 30.7], [120.7, 30.8], [120.7, 30.7]]],
}
BAD: list[tuple[str, Any, dict[str, str], int, list[str]]] = [
    ("malformed JSON", b'{"type": "Feature", ', {}, 400, ["JSON"]),
    ("not a feature", {"type": "FeatureCollection", "features": []}, {}, 400, ["Feature"]),
    ("no properties", {"type": "Feature", "geometry": None}, {}, 400, ["properties"]),
    (
        "wrong geometry type",
        _feature("b1", {"type": "LineString", "coordinates": [[120.7, 30.7], [120.8, 30.8]]}),
        {},
        400,
        ["LineString", "Point"],
    ),
    ("polygon in a point layer", _feature("b2", BOWTIE), {}, 400, ["Polygon", "Point"]),
    ("out of range", _feature("b3", {"type": "Point", "coordinates": [200, 30.7]}), {}, 400, ["range"]),
    (
        "swapped lon/lat",
        _feature("b4", {"type": "Point", "coordinates": [30.7, 120.8]}),
        {},
        400,
        ["latitude, longitude"],
    ),
    (
        "outside Jiaxing",
        _feature("b5", {"type": "Point", "coordinates": [116.4, 39.9]}),
        {},
        400,
        ["outside"],
    ),
    ("unknown property", _feature("b6", colour="red"), {}, 400, ["colour"]),
    ("wrong type", _feature("b7", accuracy_m="far"), {}, 400, ["accuracy_m"]),
    ("bad status", _feature("b8", status="done"), {}, 400, ["status", "planned"]),
    (
        "missing name",
        {"type": "Feature", "geometry": None, "properties": {"code": "b9"}},
        {},
        400,
        ["name_zh"],
    ),
    ("duplicate code", _feature("c01_jiaxing_south_stn"), {}, 409, ["c01_jiaxing_south_stn", "unique"]),
    ("not GeoJSON", _feature("b10"), {"Content-Type": "text/plain"}, 415, ["application/geo+json"]),
    ("bad Content-Crs", _feature("b11"), {"Content-Crs": "EPSG:9999"}, 400, ["Content-Crs"]),
    ("NUL in a property", _feature("b12", note="\x00"), {}, 400, ["note", "NUL"]),
    ("infinite number", json.dumps(_feature("b13", accuracy_m=float("inf"))).encode(), {}, 400, ["finite"]),
]


@pytest.mark.parametrize(("name", "body", "headers", "status", "words"), BAD, ids=[b[0] for b in BAD])
def test_bad_features_are_refused(
    writable: Writable,
    token: str,
    problem: Any,
    name: str,
    body: Any,
    headers: dict[str, str],
    status: int,
    words: list[str],
) -> None:
    """Each bad input gets its status and a message saying where and why; nothing is written."""
    before = database_state(writable.engine)
    problem(_post(writable, token, body, **headers), status, *words)
    assert database_state(writable.engine) == before


def test_self_intersection_reason_says_where(writable: Writable, token: str, problem: Any) -> None:
    """A self-intersecting polygon in a polygon layer is 400 with the validity reason and the point where it
    fails; nothing is written."""
    before = database_state(writable.engine)
    body = problem(_post(writable, token, _feature("b12", BOWTIE), layer="demonstration_zone"), 400)
    assert "Self-intersection" in body["detail"] and "120.75 30.75" in body["detail"]
    assert body["violations"][0]["where"] == "geometry"
    assert database_state(writable.engine) == before


def test_too_large_and_too_many_vertices(writable: Writable, token: str, problem: Any) -> None:
    """A body over the size limit is 413; a line with more vertices than allowed is 400; nothing written."""
    before = database_state(writable.engine)
    problem(_post(writable, token, b"{" + b" " * (MAX_BODY + 10) + b"}"), 413, "limit")
    line = [[round(120.7 + i * 1e-6, 6), 30.7] for i in range(MAX_VERTICES + 1)]
    many = _feature("b13", {"type": "LineString", "coordinates": line})
    problem(_post(writable, token, many, layer="rail_lines"), 400, "vertices")
    assert database_state(writable.engine) == before


def test_create_needs_a_key_and_an_editable_layer(writable: Writable, token: str, problem: Any) -> None:
    """Without a key: 401; on reference data: 405; nothing written."""
    before = database_state(writable.engine)
    response = writable.client.post(
        f"/collections/{LAYER}/items", json=_feature("b14"), headers={"Content-Type": "application/geo+json"}
    )
    problem(response, 401, "Bearer")
    problem(
        writable.client.post(
            "/collections/admin_boundaries/items",
            json=_feature("b15"),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/geo+json"},
        ),
        405,
        "reference",
    )
    assert database_state(writable.engine) == before
