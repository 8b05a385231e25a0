"""Property-based fuzzing of the read parameters of `/items` and of feature ids: whatever a client sends, the
answer is never a 5xx, and a refusal is `application/problem+json` whose detail names the parameter at fault.

Each parameter is fuzzed with the others valid, from a fixed seed: near-valid values (valid ones with edits,
where parsers break) and garbage (see tests/hostile.py).
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from hypothesis import given, settings
from hypothesis import strategies as st

from geo_service.ogc.crs import SUPPORTED
from tests.conftest import check_problem
from tests.hostile import FUZZ, deep_json, garbage_json, garbage_text, json_text, near, number_text

# The app's connection pool draws on `random` (reconnection jitter) in its own thread while the next example
# is generated; Hypothesis mistakes that for a strategy using `random`. Generation itself is seeded.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module:hypothesis.errors.HypothesisDeprecationWarning"
)
LAYER = "rail_stations"
ITEMS = f"/collections/{LAYER}/items"
STRINGS = ["code", "name_zh", "name_en", "category", "status", "accuracy", "plan_text", "note"]
NUMBERS = ["accuracy_m", "stated_area_km2"]
ARRAYS = ["county", "aliases"]
CRS_URIS = list(SUPPORTED)
EXAMPLES = 120


def answered(response: Response, parameter: str) -> None:
    """The property: a success, or a problem (never a 5xx) whose detail names `parameter`."""
    assert response.status_code < 500, f"{response.status_code} for {response.request.url}: {response.text}"
    if response.status_code >= 400:
        try:
            check_problem(response, response.status_code, parameter)
        except AssertionError as exc:
            raise AssertionError(f"{response.request.url}: {exc}") from None


def _items(client: TestClient, **params: str) -> Response:
    return client.get(ITEMS, params=params)


@pytest.fixture(scope="module")
def station_id(client: TestClient) -> int:
    """The id of a real feature of the layer."""
    return int(client.get(ITEMS, params={"limit": "1"}).json()["features"][0]["id"])


# -- CQL2 --------------------------------------------------------------------------------------------------


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


NUMBER_LITERAL = st.one_of(number_text(), st.sampled_from(["0", "1", "-2.5", "1e3", "200"]))
STRING_LITERAL = st.one_of(
    st.sampled_from(["planned", "completed", "嘉兴南站", "%站", "_", ""]), st.text(max_size=12)
).map(_quoted)
COORD = st.one_of(st.sampled_from(["120.8", "30.7", "121", "-180", "90", "180.5"]), number_text())


@st.composite
def _spatial_text(draw: st.DrawFn) -> str:
    op = draw(
        st.sampled_from(["S_INTERSECTS", "S_WITHIN", "S_CONTAINS", "S_DISJOINT", "S_EQUALS", "S_TOUCHES"])
    )
    x, y, x2, y2 = (draw(COORD) for _ in range(4))
    literal = draw(
        st.sampled_from(
            [
                f"BBOX({x},{y},{x2},{y2})",
                f"POINT({x} {y})",
                f"POLYGON(({x} {y},{x2} {y},{x2} {y2},{x} {y}))",
                f"LINESTRING({x} {y},{x2} {y2})",
                "POLYGON((120 30,121 30,120 30))",
                "BBOX(120,30)",
            ]
        )
    )
    return f"{op}(geometry,{literal})"


@st.composite
def _comparison_text(draw: st.DrawFn) -> str:
    shape = draw(st.integers(0, 9))
    string_prop = draw(st.sampled_from(STRINGS))
    number_prop = draw(st.sampled_from(NUMBERS))
    op = draw(st.sampled_from(["=", "<>", "<", ">", "<=", ">="]))
    if shape == 0:
        return f"{string_prop} {op} {draw(STRING_LITERAL)}"
    if shape == 1:
        return f"{number_prop} {op} {draw(NUMBER_LITERAL)}"
    if shape == 2:
        return f"{string_prop} {draw(st.sampled_from(['LIKE', 'NOT LIKE']))} {draw(STRING_LITERAL)}"
    if shape == 3:
        return f"{number_prop} BETWEEN {draw(NUMBER_LITERAL)} AND {draw(NUMBER_LITERAL)}"
    if shape == 4:
        values = draw(st.lists(STRING_LITERAL, min_size=1, max_size=3))
        return f"{string_prop} IN ({','.join(values)})"
    if shape == 5:
        subject = draw(st.sampled_from([*STRINGS, *NUMBERS, *ARRAYS]))
        return f"{subject} IS {draw(st.sampled_from(['', 'NOT ']))}NULL"
    if shape == 6:
        return f"CASEI({string_prop}) = CASEI({draw(STRING_LITERAL)})"
    if shape == 7:
        arithmetic = draw(st.sampled_from(["+", "-", "*", "/", "%", "^", "div"]))
        return f"{number_prop} {arithmetic} {draw(NUMBER_LITERAL)} {op} {draw(NUMBER_LITERAL)}"
    if shape == 8:
        array_op = draw(st.sampled_from(["A_CONTAINS", "A_EQUALS", "A_OVERLAPS", "A_CONTAINEDBY"]))
        return f"{array_op}({draw(st.sampled_from(ARRAYS))},({draw(STRING_LITERAL)}))"
    return draw(
        st.sampled_from(
            [
                "status_date > DATE('2021-01-01')",
                "status_date = TIMESTAMP('2021-01-01T00:00:00Z')",
                "\"status\" = 'planned'",
                "unknown_property = 1",
                "T_AFTER(status_date, DATE('2021-01-01'))",
                "ACCENTI(name_zh) = 'x'",
                "TRUE",
            ]
        )
    )


def _cql2_text() -> st.SearchStrategy[str]:
    atoms = st.one_of(_comparison_text(), _spatial_text())
    return st.recursive(
        atoms,
        lambda inner: st.one_of(
            st.tuples(inner, st.sampled_from([" AND ", " OR "]), inner).map("".join),
            inner.map(lambda c: f"NOT ({c})"),
            inner.map(lambda c: f"({c})"),
        ),
        max_leaves=4,
    )


@given(
    text=st.one_of(
        near(_cql2_text()), garbage_text(), st.sampled_from(["(" * 50 + "TRUE" + ")" * 50, "NOT " * 60])
    )
)
@settings(FUZZ, max_examples=250)
def test_cql2_text(client: TestClient, text: str) -> None:
    """CQL2 text: valid, mutated and garbage filters."""
    answered(_items(client, filter=text), "filter")


HOSTILE_TEXT_VALUES = st.one_of(
    st.sampled_from(["planned", "", "\x00", "a\x00b", "\ud800", "x" * 5000, "%站%", "\\", "'; DROP TABLE x"]),
    st.text(max_size=10),
)
HOSTILE_NUMBER_VALUES = st.one_of(
    st.sampled_from([0, -1, 1.5, 10**400, -(2**64), 2**63, float("nan"), float("inf"), 1e-320]), st.floats()
)


@st.composite
def _comparison_json(draw: st.DrawFn) -> dict[str, Any]:
    """A comparison that is valid but for its (hostile) values."""
    shape = draw(st.integers(0, 6))
    string_prop = {"property": draw(st.sampled_from(STRINGS))}
    number_prop = {"property": draw(st.sampled_from(NUMBERS))}
    op = draw(st.sampled_from(["=", "<>", "<", ">", "<=", ">="]))
    if shape == 0:
        return {"op": op, "args": [string_prop, draw(HOSTILE_TEXT_VALUES)]}
    if shape == 1:
        return {"op": op, "args": [number_prop, draw(HOSTILE_NUMBER_VALUES)]}
    if shape == 2:
        return {"op": "like", "args": [{"op": "casei", "args": [string_prop]}, draw(HOSTILE_TEXT_VALUES)]}
    if shape == 3:
        low, high = draw(HOSTILE_NUMBER_VALUES), draw(HOSTILE_NUMBER_VALUES)
        return {"op": "between", "args": [number_prop, low, high]}
    if shape == 4:
        return {
            "op": "in",
            "args": [string_prop, draw(st.lists(HOSTILE_TEXT_VALUES, min_size=1, max_size=3))],
        }
    if shape == 5:
        values = draw(st.lists(st.one_of(HOSTILE_TEXT_VALUES, HOSTILE_NUMBER_VALUES), max_size=3))
        return {"op": "a_overlaps", "args": [{"property": draw(st.sampled_from(ARRAYS))}, values]}
    x, y = draw(HOSTILE_NUMBER_VALUES), draw(st.sampled_from([30.7, 91, -90]))
    literal = draw(
        st.sampled_from(
            [
                {"bbox": [x, y, 121, 31]},
                {"type": "Point", "coordinates": [x, y]},
                {"type": "Polygon", "coordinates": [[[120, 30], [x, 30], [120, y], [120, 30]]]},
            ]
        )
    )
    return {"op": "s_intersects", "args": [{"property": "geometry"}, literal]}


def _value_json() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(STRINGS + NUMBERS + ARRAYS + ["geometry", "nope"]).map(lambda p: {"property": p}),
        HOSTILE_TEXT_VALUES,
        HOSTILE_NUMBER_VALUES,
        st.lists(st.floats(), min_size=0, max_size=7).map(lambda n: {"bbox": n}),
        st.sampled_from(
            [
                {"type": "Point", "coordinates": [120.8, 30.7]},
                {"type": "Polygon", "coordinates": [[[120, 30], [121, 30], [120, 30]]]},
                {"type": "LineString", "coordinates": []},
                {"type": "Polygon"},
                {"date": "2021-13-01"},
                {"timestamp": 5},
                {"interval": ["..", ".."]},
            ]
        ),
    )


def _cql2_json() -> st.SearchStrategy[Any]:
    """Valid trees of comparisons with hostile values, and trees of any operator over any arguments."""
    ops = ["=", "<>", "<", ">", "<=", ">=", "like", "between", "in", "isnull", "casei", "+", "^", "/"]
    ops += ["s_intersects", "s_within", "a_contains", "t_after", "accenti", "nope"]
    anything = st.builds(
        lambda op, args: {"op": op, "args": args},
        st.sampled_from(ops),
        st.lists(_value_json(), min_size=0, max_size=3),
    )
    return st.recursive(
        st.one_of(_comparison_json(), _comparison_json(), anything),
        lambda inner: st.builds(
            lambda op, args: {"op": op, "args": args},
            st.sampled_from(["and", "or", "not", "and", "or"]),
            st.lists(inner, min_size=1, max_size=3),
        ),
        max_leaves=4,
    )


@given(
    text=st.one_of(
        json_text(_cql2_json()),
        near(json_text(_cql2_json())),
        json_text(garbage_json()),
        garbage_text(),
        st.sampled_from([deep_json(60), deep_json(5000), '{"op":"not","args":[' * 100 + "true" + "]}" * 100]),
    )
)
@settings(FUZZ, max_examples=250)
def test_cql2_json(client: TestClient, text: str) -> None:
    """CQL2 JSON: trees of known and unknown operators over hostile values, mutated JSON text, garbage."""
    answered(_items(client, filter=text, **{"filter-lang": "cql2-json"}), "filter")


@given(lang=near(st.sampled_from(["cql2-text", "cql2-json"])))
@settings(FUZZ, max_examples=40)
def test_filter_lang(client: TestClient, lang: str) -> None:
    """An unknown filter-lang is named; with cql2-json, a text filter is the filter's fault."""
    answered(_items(client, filter="status = 'planned'", **{"filter-lang": lang}), "filter")


def crs_values() -> st.SearchStrategy[str]:
    """Supported CRS URIs, the same with edits (https, brackets, a digit changed), and garbage."""
    return st.one_of(
        near(st.sampled_from(CRS_URIS)), st.sampled_from(CRS_URIS).map(lambda u: f"<{u}>"), garbage_text()
    )


@given(crs=crs_values(), box=st.sampled_from(["BBOX(120.8,30.7,121,31)", "BBOX(30.7,120.8,31,121)"]))
@settings(FUZZ, max_examples=EXAMPLES)
def test_filter_crs(client: TestClient, crs: str, box: str) -> None:
    """filter-crs: any value, with a box literal that suits one axis order or the other."""
    answered(_items(client, filter=f"S_INTERSECTS(geometry,{box})", **{"filter-crs": crs}), "filter")


@given(
    name=st.sampled_from(["status", "accuracy_m", "name_zh", "stated_area_km2"]),
    value=st.one_of(
        near(st.sampled_from(["planned", "200", "嘉兴南站", "1.5"])), number_text(), garbage_text()
    ),
)
@settings(FUZZ, max_examples=EXAMPLES)
def test_property_filters(client: TestClient, name: str, value: str) -> None:
    """Part 1 equality filters (`?status=planned`) on text and number properties: any value."""
    answered(_items(client, **{name: value}), name)


# -- bbox, datetime, crs -----------------------------------------------------------------------------------


BOXES = st.sampled_from(
    [
        "120.8,30.7,121,31",
        "30.7,120.8,31,121",
        "177,65,-177,70",
        "-180,-90,180,90",
        "120.8,30.7,0,121,31,100",
        "13400000,3590000,13500000,3650000",
        "3400000,400000,3450000,500000",
    ]
)


@given(
    bbox=st.one_of(
        near(BOXES), st.lists(number_text(), min_size=0, max_size=7).map(",".join), garbage_text()
    ),
    crs=st.one_of(st.none(), st.sampled_from(CRS_URIS)),
)
@settings(FUZZ, max_examples=250)
def test_bbox(client: TestClient, bbox: str, crs: str | None) -> None:
    """bbox: mutated boxes in each CRS, lists of hostile numbers, garbage."""
    params = {"bbox": bbox} | ({"bbox-crs": crs} if crs else {})
    answered(_items(client, **params), "bbox")


@given(crs=crs_values(), bbox=BOXES)
@settings(FUZZ, max_examples=EXAMPLES)
def test_bbox_crs(client: TestClient, crs: str, bbox: str) -> None:
    """bbox-crs: any value, with boxes of every CRS (each out of range in most of the others)."""
    answered(_items(client, bbox=bbox, **{"bbox-crs": crs}), "bbox")


def _instants() -> st.SearchStrategy[str]:
    stamps = st.tuples(st.datetimes(), st.sampled_from(["Z", "+08:00", "-23:59", ""])).map(
        lambda parts: parts[0].isoformat() + parts[1]
    )
    return st.one_of(
        st.sampled_from(
            [
                "2021-01-01",
                "2021-01-01T00:00:00Z",
                "2021-01-01T08:00:00+08:00",
                "0000-01-01T00:00:00Z",
                "9999-12-31T23:59:59Z",
                "2020-02-29",
                "2021-12-31T23:59:60Z",
            ]
        ),
        st.dates().map(str),
        stamps,
    )


def _datetimes() -> st.SearchStrategy[str]:
    ends = st.one_of(_instants(), st.sampled_from(["..", "", "P2D", "PT1H", "P1Y2M", "P", "PT"]))
    return st.one_of(_instants(), st.tuples(ends, ends).map("/".join))


@given(value=st.one_of(near(_datetimes()), garbage_text()))
@settings(FUZZ, max_examples=EXAMPLES)
def test_datetime(client: TestClient, value: str) -> None:
    """datetime: instants, intervals and durations (open, inverted, year 0 and 9999), mutated, garbage."""
    answered(_items(client, datetime=value), "datetime")


@given(crs=crs_values())
@settings(FUZZ, max_examples=EXAMPLES)
def test_crs(client: TestClient, station_id: int, crs: str) -> None:
    """crs of the returned geometries, on a page and on one feature."""
    answered(_items(client, crs=crs, limit="3"), "crs")
    answered(client.get(f"{ITEMS}/{station_id}", params={"crs": crs}), "crs")


# -- sortby, properties, limit -----------------------------------------------------------------------------


def _name_lists(names: list[str]) -> st.SearchStrategy[str]:
    token = st.tuples(st.sampled_from(["", "+", "-", " ", "--", "+-"]), st.sampled_from(names)).map("".join)
    lists = st.lists(
        st.one_of(token, st.sampled_from(["", " ", "geometry", "id", "NAME_ZH"])), min_size=1, max_size=4
    )
    return st.one_of(near(lists.map(",".join)), garbage_text())


@given(sortby=_name_lists([*STRINGS, *NUMBERS, *ARRAYS]))
@settings(FUZZ, max_examples=EXAMPLES)
def test_sortby(client: TestClient, sortby: str) -> None:
    """sortby: sortables with every prefix, arrays (not sortable), repeats, unknowns, garbage."""
    answered(_items(client, sortby=sortby, limit="5"), "sortby")


@given(properties=_name_lists([*STRINGS, *NUMBERS, *ARRAYS]))
@settings(FUZZ, max_examples=EXAMPLES)
def test_properties(client: TestClient, station_id: int, properties: str) -> None:
    """properties: known and unknown names, empty items, garbage; on a page and on one feature."""
    answered(_items(client, properties=properties, limit="3"), "properties")
    answered(client.get(f"{ITEMS}/{station_id}", params={"properties": properties}), "properties")


WHOLE_NUMBERS = st.one_of(
    near(st.integers(-5, 20_000).map(str)),
    number_text(),
    st.sampled_from(["²", "١٢", "１２", "9" * 25, str(2**31), str(2**63)]),
    garbage_text(),
)


@given(version=WHOLE_NUMBERS)
@settings(FUZZ, max_examples=EXAMPLES)
def test_version(client: TestClient, station_id: int, version: str) -> None:
    """version of one feature: small, large, signed, other digits, huge, garbage."""
    answered(client.get(f"{ITEMS}/{station_id}", params={"version": version}), "version")


@given(limit=WHOLE_NUMBERS)
@settings(FUZZ, max_examples=EXAMPLES)
def test_limit(client: TestClient, limit: str) -> None:
    """limit: small, large, signed, padded, non-decimal digits, huge, garbage."""
    answered(_items(client, limit=limit, properties="code"), "limit")


# -- cursors -----------------------------------------------------------------------------------------------

QUERIES: list[dict[str, str]] = [
    {"limit": "2"},
    {"limit": "2", "sortby": "-accuracy_m,name_zh"},
    {"limit": "2", "sortby": "status", "filter": "accuracy_m > 0"},
    {"limit": "2", "bbox": "120.5,30.5,121.2,31.1", "sortby": "name_en"},
]


@pytest.fixture(scope="module")
def cursors(client: TestClient) -> list[tuple[dict[str, str], str]]:
    """Real cursors of each query above, from the `next` links of its first pages."""
    found = []
    for query in QUERIES:
        params = dict(query)
        for _ in range(3):
            page = client.get(ITEMS, params=params).json()
            nexts = [link["href"] for link in page["links"] if link["rel"] == "next"]
            cursor = parse_qs(urlsplit(nexts[0]).query)["cursor"][0]
            found.append((query, cursor))
            params = query | {"cursor": cursor}
    return found


def _decoded(cursor: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    return document


def _recoded(cursor: str, position: Any) -> str:
    """The cursor with its position replaced and its query fingerprint kept: what a forger would send."""
    raw = json.dumps({"p": position, "q": _decoded(cursor)["q"]}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


HOSTILE_STRINGS = st.sampled_from(["\ud800", "a\x00", "x" * 10_000, "", "中\\%'"])
HOSTILE_NUMBERS = st.sampled_from(
    [1e308, -1e308, float("nan"), float("inf"), 2**63, -(2**63) - 1, 10**400, 0.5]
)
HOSTILE_VALUES = st.one_of(
    HOSTILE_STRINGS, HOSTILE_NUMBERS, st.sampled_from([None, True, [], {}]), garbage_json()
)


@st.composite
def _forged_position(draw: st.DrawFn, cursor: str) -> list[Any]:
    """The real position with one value replaced by a hostile one (mostly of the same type), or one added or
    dropped."""
    position = list(_decoded(cursor)["p"])
    at = draw(st.integers(0, len(position) - 1))
    edit = draw(st.sampled_from(["same kind", "same kind", "same kind", "any", "insert", "drop"]))
    if edit == "drop":
        return position[:at] + position[at + 1 :]
    if edit == "same kind":  # the nearest forgery: a value of the type the key holds
        value = draw(HOSTILE_STRINGS if isinstance(position[at], str) else HOSTILE_NUMBERS)
    else:
        value = draw(HOSTILE_VALUES)
    return [*position[:at], value, *position[at + (edit != "insert") :]]


@given(data=st.data())
@settings(FUZZ, max_examples=250)
def test_cursor(client: TestClient, cursors: list[tuple[dict[str, str], str]], data: st.DataObject) -> None:
    """cursor: real ones tampered with, truncated, re-encoded with hostile positions, or used with another
    query; and garbage."""
    query, cursor = data.draw(st.sampled_from(cursors))
    how = data.draw(
        st.sampled_from(["edit", "truncate", "forge", "forge", "forge", "replace", "garbage", "other"])
    )
    if how == "edit":
        tampered = data.draw(near(st.just(cursor)))
    elif how == "truncate":
        tampered = cursor[: data.draw(st.integers(0, len(cursor)))]
    elif how == "forge":
        tampered = _recoded(cursor, data.draw(_forged_position(cursor)))
    elif how == "replace":
        tampered = _recoded(
            cursor, data.draw(st.one_of(HOSTILE_VALUES, st.lists(HOSTILE_VALUES, max_size=4)))
        )
    elif how == "garbage":
        tampered = data.draw(garbage_text())
    else:  # a valid cursor of another query
        tampered, query = cursor, data.draw(st.sampled_from(QUERIES))
    answered(client.get(ITEMS, params=query | {"cursor": tampered}), "cursor")


# -- feature ids -------------------------------------------------------------------------------------------


@given(
    feature_id=st.one_of(
        near(st.integers(1, 60).map(str)),
        st.integers(-(2**70), 2**70).map(str),
        st.sampled_from(["0", "01", "1.0", "1e3", "0x1", "+1", " 1", "9" * 19, "9" * 400, "١", "NaN", "%00"]),
        garbage_text(),
    ).filter(lambda s: s.strip("/") and "/" not in s and s not in (".", "..")),
    method=st.sampled_from(["json", "html"]),
)
@settings(FUZZ, max_examples=EXAMPLES)
def test_feature_id(client: TestClient, feature_id: str, method: str) -> None:
    """Feature ids in the path: real ones (200), and every other string an id is not (404 naming it)."""
    response = client.get(f"{ITEMS}/{quote(feature_id, safe='')}", params={"f": method})
    answered(response, "feature")
