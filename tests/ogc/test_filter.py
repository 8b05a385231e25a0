"""Part 3 filtering: CQL2 text and JSON filters select exactly what the same predicate selects in Python.

Each case is a filter string (including the forms QGIS writes: double-quoted identifiers, CASEI, BBOX) and
a Python function over a seed feature's properties and shapely geometry. The service's answer, followed
through every `next` page, must equal the seeds the function accepts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient
from pyproj import Transformer
from shapely import segmentize
from shapely.geometry import Point, Polygon, box, shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Engine

from geo_service.ogc.crs import epsg_uri
from tests.conftest import database_state

Seeds = dict[str, dict[str, dict[str, Any]]]
Predicate = Callable[[dict[str, Any], BaseGeometry | None], bool]

JIASHAN_BOX = (120.80, 30.75, 121.05, 31.00)
TRIANGLE = [(120.6, 30.6), (121.0, 30.6), (120.8, 30.95), (120.6, 30.6)]
HAIYAN_POINT = (120.92, 30.50)


def _intersects(other: BaseGeometry) -> Predicate:
    return lambda p, g: g is not None and g.intersects(other)


def _wkt_ring(points: list[tuple[float, float]]) -> str:
    return ", ".join(f"{x} {y}" for x, y in points)


CASES: list[tuple[str, str, Predicate]] = [
    ("rail_stations", "status = 'existing'", lambda p, g: p["status"] == "existing"),
    ("rail_stations", "\"status\" <> 'existing'", lambda p, g: p["status"] != "existing"),
    ("rail_lines", "accuracy_m > 2500", lambda p, g: (p.get("accuracy_m") or 0) > 2500),
    (
        "rail_lines",
        "accuracy_m <= 2000",
        lambda p, g: p.get("accuracy_m") is not None and p["accuracy_m"] <= 2000,
    ),
    (
        "rail_stations",
        "accuracy_m BETWEEN 1000 AND 2000",
        lambda p, g: 1000 <= (p.get("accuracy_m") or -1) <= 2000,
    ),
    ("rail_stations", "name_zh LIKE '嘉%'", lambda p, g: p["name_zh"].startswith("嘉")),
    ("rail_stations", "name_zh NOT LIKE '%南站'", lambda p, g: not p["name_zh"].endswith("南站")),
    ("rail_stations", "name_en LIKE '%South_Railway%'", lambda p, g: "South Railway" in p["name_en"]),
    (
        "g60_platforms",
        "CASEI(name_en) LIKE CASEI('%SCIENCE%')",
        lambda p, g: "science" in p["name_en"].lower(),
    ),
    (
        "g60_platforms",
        "CASEI(\"name_en\") = CASEI('swan lake future science city')",
        lambda p, g: p["name_en"].lower() == "swan lake future science city",
    ),
    (
        "strategic_platforms",
        "status IN ('under_construction', 'existing')",
        lambda p, g: p["status"] in ("under_construction", "existing"),
    ),
    ("strategic_platforms", "status NOT IN ('planned')", lambda p, g: p["status"] != "planned"),
    ("demonstration_zone", "stated_area_km2 IS NULL", lambda p, g: p.get("stated_area_km2") is None),
    (
        "demonstration_zone",
        "stated_area_km2 IS NOT NULL AND stated_area_km2 >= 100",
        lambda p, g: (p.get("stated_area_km2") or 0) >= 100,
    ),
    (
        "demonstration_zone",
        "stated_area_km2 * 1000000 < 200000000",
        lambda p, g: p.get("stated_area_km2") is not None and p["stated_area_km2"] * 1e6 < 2e8,
    ),
    (
        "demonstration_zone",
        "accuracy_m / 1000 + 1 >= 5",
        lambda p, g: p.get("accuracy_m") is not None and p["accuracy_m"] / 1000 + 1 >= 5,
    ),
    (
        "demonstration_zone",
        "NOT (status = 'planned') AND (accuracy = 'schematic' OR accuracy = 'unlocated')",
        lambda p, g: p["status"] != "planned" and p["accuracy"] in ("schematic", "unlocated"),
    ),
    ("demonstration_zone", "geometry IS NULL", lambda p, g: g is None),
    ("rail_stations", "TRUE", lambda p, g: True),
    ("rail_stations", "name_zh = name_en", lambda p, g: False),
    ("rail_stations", "name_zh <> name_en", lambda p, g: True),
    (
        "rail_stations",
        f"S_INTERSECTS(geometry, BBOX({','.join(map(str, JIASHAN_BOX))}))",
        _intersects(box(*JIASHAN_BOX)),
    ),
    # QGIS's own form: quoted identifiers, the geometry queryable, CASEI on both sides
    (
        "rail_stations",
        '("status" = \'under_construction\') AND S_INTERSECTS("geometry", BBOX(120.8,30.75,121.05,31))',
        lambda p, g: p["status"] == "under_construction" and _intersects(box(*JIASHAN_BOX))(p, g),
    ),
    ("rail_stations", "CASEI(\"name_zh\") LIKE CASEI('%站%')", lambda p, g: "站" in p["name_zh"]),
    (
        "rail_lines",
        f"S_INTERSECTS(geometry, POLYGON(({_wkt_ring(TRIANGLE)})))",
        _intersects(Polygon(TRIANGLE)),
    ),
    (
        "admin_boundaries",
        f"S_INTERSECTS(geometry, POINT({HAIYAN_POINT[0]} {HAIYAN_POINT[1]}))",
        _intersects(Point(HAIYAN_POINT)),
    ),
    (
        "admin_boundaries",
        f"S_CONTAINS(geometry, POINT({HAIYAN_POINT[0]} {HAIYAN_POINT[1]}))",
        lambda p, g: g is not None and g.contains(Point(HAIYAN_POINT)),
    ),
    (
        "rail_stations",
        f"S_WITHIN(geometry, POLYGON(({_wkt_ring(TRIANGLE)})))",
        lambda p, g: g is not None and g.within(Polygon(TRIANGLE)),
    ),
    (
        "rail_stations",
        f"S_DISJOINT(geometry, BBOX({','.join(map(str, JIASHAN_BOX))}))",
        lambda p, g: g is not None and g.disjoint(box(*JIASHAN_BOX)),
    ),
    (
        "rail_lines",
        "S_CROSSES(geometry, LINESTRING(120.6 30.6, 121.0 30.95))",
        lambda p, g: (
            g is not None
            and g.crosses(shape({"type": "LineString", "coordinates": [[120.6, 30.6], [121.0, 30.95]]}))
        ),
    ),
    ("rail_lines", "A_CONTAINS(county, ('330421'))", lambda p, g: "330421" in p["county"]),
    (
        "rail_lines",
        "A_OVERLAPS(county, ('330424', '330481'))",
        lambda p, g: bool({"330424", "330481"} & set(p["county"])),
    ),
    (
        "rail_lines",
        "A_CONTAINEDBY(county, ('330402', '330421', '330411'))",
        lambda p, g: set(p["county"]) <= {"330402", "330421", "330411"},
    ),
    ("rail_stations", "A_EQUALS(county, ('330402'))", lambda p, g: p["county"] == ["330402"]),
    # text dates compare as ISO text, as the schema documents
    (
        "rail_stations",
        "status_date >= DATE('2010-01-01')",
        lambda p, g: p.get("status_date") is not None and p["status_date"] >= "2010-01-01",
    ),
    # values that look like SQL are only ever values
    ("rail_stations", "name_zh = 'x'' OR ''1''=''1'", lambda p, g: False),
    ("rail_stations", "name_zh LIKE '%''; DROP TABLE features; --'", lambda p, g: False),
]


def _expected(seeds: Seeds, layer: str, predicate: Predicate) -> set[str]:
    out = set()
    for code, feature in seeds[layer].items():
        geometry = shape(feature["geometry"]) if feature["geometry"] else None
        if predicate(feature["properties"], geometry):
            out.add(code)
    return out


def _all_pages(client: TestClient, layer: str, **params: Any) -> tuple[list[str], int | None]:
    """Codes of every feature across all pages (following `next` links), and the first numberMatched."""
    response = client.get(f"/collections/{layer}/items", params={"limit": 4, **params})
    assert response.status_code == 200, response.text
    body = response.json()
    matched = body.get("numberMatched")
    codes = [f["properties"]["code"] for f in body["features"]]
    while nxt := [link["href"] for link in body["links"] if link["rel"] == "next"]:
        response = client.get(nxt[0])
        assert response.status_code == 200, response.text
        body = response.json()
        codes += [f["properties"]["code"] for f in body["features"]]
    return codes, matched


@pytest.mark.parametrize(("layer", "cql", "predicate"), CASES, ids=[c[1][:60] for c in CASES])
def test_cql2_text_matches_python(
    client: TestClient, seeds: Seeds, layer: str, cql: str, predicate: Predicate
) -> None:
    """A cql2-text filter selects exactly the seeds the same predicate selects; numberMatched agrees."""
    codes, matched = _all_pages(client, layer, filter=cql)
    assert len(codes) == len(set(codes))
    assert set(codes) == _expected(seeds, layer, predicate)
    assert matched == len(codes)


def test_cases_are_selective(seeds: Seeds) -> None:
    """The table is not trivially satisfied: most cases select some but not all features of their layer."""
    selective = [
        1 for layer, _, predicate in CASES if 0 < len(_expected(seeds, layer, predicate)) < len(seeds[layer])
    ]
    assert len(selective) >= len(CASES) - 6


JSON_CASES: list[tuple[str, dict[str, Any], Predicate]] = [
    (
        "rail_stations",
        {"op": "=", "args": [{"property": "status"}, "existing"]},
        lambda p, g: p["status"] == "existing",
    ),
    (
        "rail_stations",
        {
            "op": "and",
            "args": [
                {"op": "like", "args": [{"op": "casei", "args": [{"property": "name_en"}]}, "%south%"]},
                {"op": "s_intersects", "args": [{"property": "geometry"}, {"bbox": list(JIASHAN_BOX)}]},
            ],
        },
        lambda p, g: "south" in p["name_en"].lower() and _intersects(box(*JIASHAN_BOX))(p, g),
    ),
    (
        "rail_lines",
        {
            "op": "s_intersects",
            "args": [{"property": "geometry"}, {"type": "Polygon", "coordinates": [TRIANGLE]}],
        },
        _intersects(Polygon(TRIANGLE)),
    ),
    (
        "demonstration_zone",
        {"op": "between", "args": [{"property": "accuracy_m"}, 2000, 4000]},
        lambda p, g: 2000 <= (p.get("accuracy_m") or -1) <= 4000,
    ),
    (
        "rail_lines",
        {"op": "in", "args": [{"property": "status"}, ["planned"]]},
        lambda p, g: p["status"] == "planned",
    ),
    (
        "rail_lines",
        {"op": "a_contains", "args": [{"property": "county"}, ["330402"]]},
        lambda p, g: "330402" in p["county"],
    ),
]


@pytest.mark.parametrize(
    ("layer", "document", "predicate"), JSON_CASES, ids=[str(i) for i in range(len(JSON_CASES))]
)
def test_cql2_json_matches_python(
    client: TestClient, seeds: Seeds, layer: str, document: dict[str, Any], predicate: Predicate
) -> None:
    """A cql2-json filter selects exactly the seeds the same predicate selects."""
    codes, matched = _all_pages(client, layer, filter=json.dumps(document), **{"filter-lang": "cql2-json"})
    assert set(codes) == _expected(seeds, layer, predicate)
    assert matched == len(codes)


def _to(code: int) -> Transformer:
    return Transformer.from_crs(4326, code)  # authority axis order on output: lat/lon, northing/easting


@pytest.mark.parametrize("code", [4326, 4490, 4549, 3857])
def test_filter_crs_bbox_and_polygon(client: TestClient, seeds: Seeds, code: int) -> None:
    """Literals in `filter-crs` are read in that CRS's axis order and select what the same shape selects
    in CRS84 (a BBOX, and a polygon with densified edges, as in the service)."""
    forward = _to(code)
    west, south, east, north = JIASHAN_BOX
    (a0, b0), (a1, b1) = forward.transform(south, west), forward.transform(north, east)
    bbox = f"BBOX({min(a0, a1)},{min(b0, b1)},{max(a0, a1)},{max(b0, b1)})"
    ring = [forward.transform(lat, lon) for lon, lat in TRIANGLE]
    polygon = f"POLYGON(({', '.join(f'{a} {b}' for a, b in ring)}))"

    box_codes, _ = _all_pages(
        client, "rail_stations", filter=f"S_INTERSECTS(geometry, {bbox})", **{"filter-crs": epsg_uri(code)}
    )
    back = Transformer.from_crs(code, 4326, always_xy=False)
    corners = box(min(a0, a1), min(b0, b1), max(a0, a1), max(b0, b1))
    step = 0.001 if code in (4326, 4490) else 100
    in_crs84 = shapely.transform(
        segmentize(corners, step), lambda xy: np.column_stack(back.transform(xy[:, 0], xy[:, 1])[::-1])
    )
    assert set(box_codes) == _expected(seeds, "rail_stations", _intersects(in_crs84))
    assert box_codes

    poly_codes, _ = _all_pages(
        client, "rail_lines", filter=f"S_INTERSECTS(geometry, {polygon})", **{"filter-crs": epsg_uri(code)}
    )
    assert set(poly_codes) == _expected(seeds, "rail_lines", _intersects(Polygon(TRIANGLE)))


def test_filter_with_bbox_and_paging(client: TestClient, seeds: Seeds) -> None:
    """`filter` and `bbox` combine with AND; pages of 2 add up to numberMatched with no repeats."""
    codes, matched = _all_pages(
        client,
        "rail_stations",
        limit=2,
        filter="status = 'under_construction'",
        bbox=",".join(map(str, JIASHAN_BOX)),
    )
    want = _expected(
        seeds,
        "rail_stations",
        lambda p, g: p["status"] == "under_construction" and _intersects(box(*JIASHAN_BOX))(p, g),
    )
    assert sorted(codes) == sorted(want) and matched == len(want) and len(want) > 2


def test_next_link_keeps_the_filter(client: TestClient) -> None:
    """`next` links carry filter, filter-lang and filter-crs, so a client following them stays filtered."""
    body = client.get(
        "/collections/rail_stations/items",
        params={
            "limit": 1,
            "filter": "status = 'existing'",
            "filter-lang": "cql2-text",
            "filter-crs": epsg_uri(4326),
        },
    ).json()
    [nxt] = [link["href"] for link in body["links"] if link["rel"] == "next"]
    assert "filter=status" in nxt and "filter-lang=cql2-text" in nxt and "filter-crs=" in nxt


def test_cursor_from_another_filter_is_400(client: TestClient, problem: Any) -> None:
    """A cursor taken under one filter is refused under another (it would skip or repeat features)."""
    body = client.get(
        "/collections/rail_stations/items", params={"limit": 1, "filter": "status = 'existing'"}
    ).json()
    [nxt] = [link["href"] for link in body["links"] if link["rel"] == "next"]
    cursor = nxt.split("cursor=")[1].split("&")[0]
    problem(
        client.get(
            "/collections/rail_stations/items",
            params={"limit": 1, "filter": "status = 'under_construction'", "cursor": cursor},
        ),
        400,
        "cursor",
    )


BAD_FILTERS: list[tuple[dict[str, str], list[str]]] = [
    ({"filter": "status = "}, ["filter", "1:"]),
    ({"filter": "status = 'planned' AND"}, ["filter"]),
    ({"filter": "plan_year = 2025"}, ["plan_year", "queryables"]),
    ({"filter": '"status"" OR 1=1 --" = \'x\''}, ["queryable"]),
    ({"filter": "status = 1"}, ["text", "number"]),
    ({"filter": "accuracy_m = 'far'"}, ["number", "text"]),
    ({"filter": "county = '330421'"}, ["list"]),
    ({"filter": "geometry = 'x'"}, ["geometry"]),
    ({"filter": "CASEI(accuracy_m) = CASEI('x')"}, ["CASEI"]),
    ({"filter": "status LIKE 5"}, ["LIKE"]),
    ({"filter": "status = 'x'; DROP TABLE features"}, ["filter"]),
    ({"filter": "S_INTERSECTS(geometry, BBOX(120,30,121))"}, ["BBOX", "4"]),
    ({"filter": "S_INTERSECTS(geometry, BBOX(120,31,121,30))"}, ["BBOX"]),
    ({"filter": "S_INTERSECTS(geometry, POLYGON((120 30, 121 31, 121 30, 120 31, 120 30)))"}, ["not valid"]),
    ({"filter": "S_INTERSECTS(status, POINT(120 30))"}, ["geometry"]),
    ({"filter": "T_BEFORE(status_date, TIMESTAMP('2020-01-01T00:00:00Z'))"}, ["temporal"]),
    ({"filter": "status_date > TIMESTAMP('2020-13-01T00:00:00Z')"}, ["timestamp"]),
    ({"filter": "ACCENTI(name_en) = ACCENTI('x')"}, ["ACCENTI"]),
    ({"filter": "myfunc(status) = 'x'"}, ["myfunc"]),
    ({"filter": "accuracy_m ^ 400 > 1"}, ["filter"]),
    ({"filter": "(" * 60 + "status = 'x'" + ")" * 60}, ["nested"]),
    ({"filter": "NOT " * 20_00 + "status = 'x'"}, ["nested"]),
    ({"filter": "status = '" + "x" * 20_000 + "'"}, ["longer"]),
    ({"filter": ""}, ["empty"]),
    ({"filter": "name_zh = 'a\x00b'"}, ["NUL"]),
    ({"status": "a\x00b"}, ["NUL"]),
    ({"status": "planned", "filter": "status = 'planned'", "accuracy_m": "far"}, ["accuracy_m", "number"]),
    ({"filter": "status = 'x'", "filter-lang": "cql3"}, ["filter-lang"]),
    ({"filter": "{not json", "filter-lang": "cql2-json"}, ["JSON"]),
    ({"filter": json.dumps({"op": "drop", "args": []}), "filter-lang": "cql2-json"}, ["drop"]),
    (
        {"filter": json.dumps({"op": "=", "args": [{"property": "status"}]}), "filter-lang": "cql2-json"},
        ["2"],
    ),
    ({"filter": json.dumps({"op": "and", "args": [True]}), "filter-lang": "cql2-json"}, ["AND"]),
    ({"filter": "status = 'x'", "filter-crs": "http://www.opengis.net/def/crs/EPSG/0/9999"}, ["filter-crs"]),
    ({"filter-lang": "cql2-text"}, ["filter"]),
    ({"filter-crs": epsg_uri(4326)}, ["filter"]),
    # found by fuzzing (tests/ogc/test_fuzz.py): a NUL escaped in CQL2 JSON was a 500
    (
        {
            "filter": json.dumps({"op": "=", "args": [{"property": "code"}, "\x00"]}),
            "filter-lang": "cql2-json",
        },
        ["filter", "NUL"],
    ),
    (
        {
            "filter": json.dumps({"op": "in", "args": [{"property": "code"}, ["a\x00"]]}),
            "filter-lang": "cql2-json",
        },
        ["filter", "NUL"],
    ),
    # ... and the detail of a wrong part of a filter did not always name the parameter
    ({"filter": json.dumps({"op": "=", "args": []}), "filter-lang": "cql2-json"}, ["filter", "2"]),
    ({"filter": "S_INTERSECTS(geometry, BBOX(120,95,121,96))"}, ["filter", "BBOX", "latitudes"]),
    # a number too large for the parser's own conversion (found by fuzzing) was a 500
    ({"filter": "S_INTERSECTS(geometry,POINT(120.8 9" + "9" * 400 + "))"}, ["filter", "number"]),
    ({"filter": "accuracy_m > 1" + "0" * 400}, ["filter"]),
]


@pytest.mark.parametrize(("params", "words"), BAD_FILTERS, ids=[str(i) for i in range(len(BAD_FILTERS))])
def test_bad_filter_is_400(
    client: TestClient, engine: Engine, problem: Any, params: dict[str, str], words: list[str]
) -> None:
    """A malformed, unknown, mistyped, unsupported or hostile filter is a 400 that says what is wrong;
    nothing in the database changes."""
    before = database_state(engine)
    body = problem(client.get("/collections/rail_stations/items", params=params), 400, *words)
    assert body["instance"] == "/collections/rail_stations/items"
    assert database_state(engine) == before


def test_parse_error_says_where(client: TestClient, problem: Any) -> None:
    """A syntax error points at the position in the filter where parsing failed."""
    body = problem(
        client.get("/collections/rail_stations/items", params={"filter": "status = 'a' ANDD x"}), 400
    )
    assert "1:" in body["detail"] and "^" in body["detail"]


def test_server_survives_hostile_filters(client: TestClient) -> None:
    """After deep nesting and oversized filters the service still answers normally."""
    for hostile in ("(" * 5000 + "a=1" + ")" * 5000, "NOT " * 3000 + "a=1"):
        assert client.get("/collections/rail_stations/items", params={"filter": hostile}).status_code == 400
    assert client.get("/collections/rail_stations/items", params={"filter": "TRUE"}).status_code == 200


@pytest.mark.parametrize(
    ("layer", "params", "predicate"),
    [
        ("rail_stations", {"status": "existing"}, lambda p, g: p["status"] == "existing"),
        ("rail_lines", {"accuracy_m": "2500"}, lambda p, g: p.get("accuracy_m") == 2500),
        (
            "rail_stations",
            {"status": "under_construction", "filter": "name_zh LIKE '%南%'"},
            lambda p, g: p["status"] == "under_construction" and "南" in p["name_zh"],
        ),
        (
            "rail_stations",
            {"name_zh": "嘉兴南站(嘉兴高铁南站)"},
            lambda p, g: p["name_zh"] == "嘉兴南站(嘉兴高铁南站)",
        ),
    ],
)
def test_property_parameters_filter(
    client: TestClient, seeds: Seeds, layer: str, params: dict[str, str], predicate: Predicate
) -> None:
    """Part 1 property parameters (`?status=existing`, as GDAL sends for `-where`) are equality filters,
    typed by the schema, ANDed with each other and with `filter`; next links keep them."""
    codes, matched = _all_pages(client, layer, limit=2, **params)
    want = _expected(seeds, layer, predicate)
    assert want and sorted(codes) == sorted(want) and matched == len(want)


def test_equals_touches_overlaps(client: TestClient, seeds: Seeds) -> None:
    """S_EQUALS, S_TOUCHES and S_OVERLAPS select what shapely's predicates select: the station at its exact
    point, the station at the end of a line drawn from it, and the districts a box partly covers."""
    lon, lat = seeds["rail_stations"]["c01_jiaxing_south_stn"]["geometry"]["coordinates"]
    for cql, layer, other in [
        (f"S_EQUALS(geometry, POINT({lon!r} {lat!r}))", "rail_stations", Point(lon, lat)),
        (
            f"S_TOUCHES(geometry, LINESTRING({lon!r} {lat!r}, {lon + 0.01!r} {lat + 0.01!r}))",
            "rail_stations",
            shape({"type": "LineString", "coordinates": [[lon, lat], [lon + 0.01, lat + 0.01]]}),
        ),
        (
            f"S_OVERLAPS(geometry, BBOX({','.join(map(str, JIASHAN_BOX))}))",
            "admin_boundaries",
            box(*JIASHAN_BOX),
        ),
    ]:
        name = cql.split("(")[0].lower().removeprefix("s_")
        codes, _ = _all_pages(client, layer, filter=cql)
        want = {
            c for c, f in seeds[layer].items() if f["geometry"] and getattr(shape(f["geometry"]), name)(other)
        }
        assert want and set(codes) == want, cql
