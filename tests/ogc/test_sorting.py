"""`sortby` and `properties` on `/collections/{id}/items` (and `properties` on `/items/{id}`).

The expected order is computed here, in Python, from the seed files under `layers/`: each key in turn
(NULL or absent values last whether ascending or descending, text in code-point order), ties broken by
the feature id ascending. Ids come from an unsorted fetch (they are assigned by the database at load).
"""

from __future__ import annotations

import base64
import functools
import html
import json
import math
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlsplit

import pytest
from fastapi.testclient import TestClient
from shapely.geometry import box, shape

from geo_service.catalog import Catalog

Seeds = dict[str, dict[str, dict[str, Any]]]
Walk = Callable[..., list[dict[str, Any]]]
ProblemCheck = Callable[..., dict[str, Any]]
SortSpec = list[tuple[str, bool]]  # (property, descending)

JIASHAN = (120.85, 30.80, 121.00, 30.95)  # 嘉善 town and the pilot area


# -- helpers ------------------------------------------------------------------------------------------------


def _links(page: dict[str, Any], rel: str) -> list[dict[str, str]]:
    return [link for link in page["links"] if link["rel"] == rel]


def _query_of(href: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(href).query, keep_blank_values=True)


def _cursor_of(page: dict[str, Any]) -> str:
    [nxt] = _links(page, "next")
    return _query_of(nxt["href"])["cursor"][0]


def _decode(cursor: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))


def _forged(data: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _parse_spec(decoded: str) -> SortSpec:
    """The keys of a sortby value as the server receives it (a leading space is an unescaped `+`)."""
    spec: SortSpec = []
    for part in decoded.split(","):
        token = part.strip()
        spec.append((token.lstrip("+-"), token.startswith("-")))
    return spec


def _ids_by_code(client: TestClient, layer_id: str) -> dict[str, int]:
    """Feature ids by code, from one unsorted page holding the whole layer."""
    page = client.get(f"/collections/{layer_id}/items", params={"limit": 10000}).json()
    assert not _links(page, "next")
    return {f["properties"]["code"]: f["id"] for f in page["features"]}


def _expected_order(features: dict[str, dict[str, Any]], ids: dict[str, int], spec: SortSpec) -> list[str]:
    """Codes of `features` in sortby order: NULL/absent last in either direction, then by id."""

    def compare(a: str, b: str) -> int:
        pa, pb = features[a]["properties"], features[b]["properties"]
        for name, descending in spec:
            va, vb = pa.get(name), pb.get(name)
            if va is None and vb is None:
                continue
            if va is None:
                return 1
            if vb is None:
                return -1
            if va != vb:
                result = -1 if va < vb else 1
                return -result if descending else result
        return ids[a] - ids[b]

    return sorted(features, key=functools.cmp_to_key(compare))


def _codes(pages: list[dict[str, Any]]) -> list[str]:
    return [f["properties"]["code"] for page in pages for f in page["features"]]


def _check_walk(pages: list[dict[str, Any]], expected: list[str], limit: int, sortby: str) -> None:
    """The pages hold `expected` in order, in full pages, each counting all and linking on with sortby."""
    codes = _codes(pages)
    assert len(codes) == len(set(codes)), "a feature came twice"
    assert set(codes) == set(expected), "features missing or extra"
    assert codes == expected
    for index, page in enumerate(pages):
        assert page["numberMatched"] == len(expected)
        assert page["numberReturned"] == len(page["features"])
        if index < len(pages) - 1:
            assert len(page["features"]) == limit
            [nxt] = _links(page, "next")
            assert _query_of(nxt["href"])["sortby"] == [sortby], nxt["href"]
        else:
            assert not _links(page, "next")


# -- order across pages -------------------------------------------------------------------------------------

# (layer, sortby as written in the URL)
SORTS = [
    ("rail_stations", "name_zh"),
    ("rail_stations", "-name_zh"),
    ("rail_stations", "%2Bstatus"),  # an escaped +: ascending, and most stations tie
    ("rail_stations", "+accuracy_m"),  # an unescaped + arrives as a space
    ("rail_stations", "status,-accuracy_m"),
    ("rail_stations", "category"),  # every station ties: id order
    ("rail_stations", "-gazetteer_confidence,%2Bname_en"),
    ("demonstration_zone", "stated_area_km2"),  # NULLs (and absent values) last ascending
    ("demonstration_zone", "-stated_area_km2"),  # … and descending
    ("demonstration_zone", "-accuracy_m,name_en"),
    ("demonstration_zone", "gazetteer_confidence,-status_date"),
    ("g60_platforms", "-stated_area_km2,status"),
    ("g60_platforms", "-status_date"),  # a text key with NULLs
    ("admin_boundaries", "level,-area_km2"),
    ("admin_boundaries", "-official_area_km2"),
    ("rail_lines", "-status,accuracy_m"),
    ("road_projects", "accuracy,-code"),
    ("strategic_platforms", "category,-accuracy_m"),
]


@pytest.mark.parametrize("limit", [1, 3])
@pytest.mark.parametrize(("layer_id", "sortby"), SORTS)
def test_sorted_pages_follow_the_seed_order(
    client: TestClient,
    seeds: Seeds,
    catalog: Catalog,
    walk: Walk,
    layer_id: str,
    sortby: str,
    limit: int,
) -> None:
    """Following `next` with sortby yields every feature once, in the order the seeds give (NULLs last
    both ways, ties by id), with numberMatched the layer size and `sortby` kept in every next link."""
    decoded = unquote_plus(sortby)
    spec = _parse_spec(decoded)
    features = seeds[layer_id]
    assert {name for name, _ in spec} <= set(catalog.layers[layer_id].property_names)
    expected = _expected_order(features, _ids_by_code(client, layer_id), spec)
    pages = walk(client, f"/collections/{layer_id}/items?limit={limit}&sortby={sortby}")
    _check_walk(pages, expected, limit, decoded)


def test_the_sort_specs_exercise_nulls_and_ties(seeds: Seeds) -> None:
    """The SORTS table really contains leading keys with NULLs among values and keys with ties, so the
    paging tests above cover those cases (guards against the seed data changing under them)."""
    with_nulls = 0
    with_ties = 0
    for layer_id, sortby in SORTS:
        name, _ = _parse_spec(unquote_plus(sortby))[0]
        values = [f["properties"].get(name) for f in seeds[layer_id].values()]
        non_null = [v for v in values if v is not None]
        with_nulls += len(non_null) < len(values) and len(non_null) > 0
        with_ties += len(set(non_null)) < len(non_null)
    assert with_nulls >= 3
    assert with_ties >= 3


def test_descending_is_the_reverse_of_ascending_apart_from_nulls(client: TestClient, seeds: Seeds) -> None:
    """`-key` reverses `key` for the non-NULL values, and the NULL rows stay at the end in id order."""
    values = {c: f["properties"].get("stated_area_km2") for c, f in seeds["demonstration_zone"].items()}
    nulls = [c for c, v in values.items() if v is None]
    assert nulls and len(nulls) < len(values)
    url = "/collections/demonstration_zone/items?limit=100&sortby="
    up = [f["properties"]["code"] for f in client.get(url + "stated_area_km2").json()["features"]]
    down = [f["properties"]["code"] for f in client.get(url + "-stated_area_km2").json()["features"]]
    count = len(values) - len(nulls)
    assert up[:count] == down[:count][::-1]
    assert up[count:] == down[count:]
    assert set(up[count:]) == set(nulls)
    ids = _ids_by_code(client, "demonstration_zone")
    assert [ids[c] for c in up[count:]] == sorted(ids[c] for c in nulls)


def test_sortby_with_filter_pages_correctly(client: TestClient, seeds: Seeds, walk: Walk) -> None:
    """A CQL2 filter and a sortby together page through exactly the matching features in sort order."""
    for layer_id, sortby in [
        ("rail_lines", "-accuracy_m,name_zh"),
        ("demonstration_zone", "stated_area_km2"),
    ]:
        matching = {c: f for c, f in seeds[layer_id].items() if f["properties"]["status"] == "planned"}
        assert len(matching) > 3
        spec = _parse_spec(sortby)
        expected = _expected_order(matching, _ids_by_code(client, layer_id), spec)
        first = client.get(
            f"/collections/{layer_id}/items",
            params={"limit": 3, "sortby": sortby, "filter": "status='planned'"},
        )
        assert first.status_code == 200, first.text
        [nxt] = _links(first.json(), "next")
        assert _query_of(nxt["href"])["filter"] == ["status='planned'"]
        pages = [first.json(), *walk(client, nxt["href"])]
        _check_walk(pages, expected, 3, sortby)


def test_sortby_with_bbox_pages_correctly(client: TestClient, seeds: Seeds, walk: Walk) -> None:
    """A bbox and a sortby together page through exactly the intersecting features in sort order."""
    area = box(*JIASHAN)
    sortby = "-accuracy_m,name_zh"
    for layer_id in ("rail_stations", "demonstration_zone"):
        inside = {
            c: f
            for c, f in seeds[layer_id].items()
            if f["geometry"] is not None and shape(f["geometry"]).intersects(area)
        }
        assert len(inside) > 3
        expected = _expected_order(inside, _ids_by_code(client, layer_id), _parse_spec(sortby))
        bbox = ",".join(map(str, JIASHAN))
        pages = walk(client, f"/collections/{layer_id}/items?limit=3&bbox={bbox}&sortby={sortby}")
        _check_walk(pages, expected, 3, sortby)
        for page in pages[:-1]:
            assert _query_of(_links(page, "next")[0]["href"])["bbox"] == [bbox]


def test_html_pages_keep_sortby(client: TestClient, seeds: Seeds) -> None:
    """The HTML pages list the features in the sorted order, and their next links keep sortby."""
    ids = _ids_by_code(client, "rail_stations")
    expected = [ids[c] for c in _expected_order(seeds["rail_stations"], ids, [("name_zh", True)])]
    url = "/collections/rail_stations/items"
    response = client.get(url, params={"limit": 4, "sortby": "-name_zh", "f": "html"})
    assert response.status_code == 200
    assert _row_ids(response.text) == expected[:4]
    next_hrefs = [html.unescape(h) for h in _hrefs_with_cursor(response.text)]
    assert next_hrefs
    for href in next_hrefs:
        assert _query_of(href)["sortby"] == ["-name_zh"]
        assert _query_of(href)["f"] == ["html"]
    second = client.get(next_hrefs[0])
    assert second.status_code == 200
    assert _row_ids(second.text) == expected[4:8]


def _row_ids(page: str) -> list[int]:
    """Feature ids of an HTML items page, in the order of its rows."""
    return [int(i) for i in re.findall(r'/items/(\d+)\?f=html"', page)]


def _hrefs_with_cursor(page: str) -> list[str]:
    return re.findall(r'href="([^"]*cursor=[^"]*)"', page)


# -- bad sortby and cursors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("sortby=colour", ["sortby", "colour"]),
        ("sortby=-colour", ["sortby", "colour"]),
        ("sortby=county", ["sortby", "county"]),  # an array: not sortable
        ("sortby=aliases", ["sortby", "aliases"]),
        ("sortby=geometry", ["sortby", "geometry"]),
        ("sortby=status,-status", ["sortby", "status", "twice"]),
        ("sortby=name_zh,%2Bname_zh", ["sortby", "name_zh", "twice"]),
        ("sortby=", ["sortby"]),
        ("sortby=-", ["sortby"]),
        ("sortby=status,", ["sortby"]),
        ("sortby=status&sortby=name_zh", ["sortby"]),
        ("properties=colour", ["properties", "colour"]),
        ("properties=name_zh,colour,size", ["properties", "colour", "size"]),
        ("properties=name_zh&properties=status", ["properties"]),
    ],
)
def test_bad_sortby_or_properties_is_400(
    client: TestClient, problem: ProblemCheck, query: str, words: list[str]
) -> None:
    """An unknown, unsortable, repeated or empty sort key, or an unknown property, is a 400 problem naming
    the parameter (and the offending name)."""
    body = problem(client.get(f"/collections/rail_stations/items?{query}"), 400, *words)
    assert body["instance"] == "/collections/rail_stations/items"


def test_unknown_property_on_a_feature_is_400(client: TestClient, problem: ProblemCheck) -> None:
    """`properties` naming a property the layer lacks is a 400 on the single-feature endpoint too."""
    feature_id = next(iter(_ids_by_code(client, "rail_stations").values()))
    problem(
        client.get(f"/collections/rail_stations/items/{feature_id}", params={"properties": "name_zh,colour"}),
        400,
        "properties",
        "colour",
    )


def test_sortby_is_checked_against_the_layer(client: TestClient, problem: ProblemCheck) -> None:
    """A property of one layer is no sort key on a layer that lacks it (area_km2 is admin_boundaries' own)."""
    assert client.get("/collections/admin_boundaries/items", params={"sortby": "area_km2"}).status_code == 200
    problem(client.get("/collections/rail_stations/items", params={"sortby": "area_km2"}), 400, "sortby")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("status", "-status"),
        ("status", None),
        (None, "status"),
        ("status,-accuracy_m", "status,accuracy_m"),
        ("status,-accuracy_m", "status"),
        ("accuracy_m", "name_en"),
    ],
)
def test_cursor_from_another_sortby_is_400(
    client: TestClient, problem: ProblemCheck, first: str | None, second: str | None
) -> None:
    """A cursor made for one sort order is refused with another: it would skip or repeat features."""
    params: dict[str, Any] = {"limit": 3}
    made = params | ({"sortby": first} if first is not None else {})
    cursor = _cursor_of(client.get("/collections/rail_stations/items", params=made).json())
    again = params | {"cursor": cursor}
    if second is not None:
        again["sortby"] = second
    problem(client.get("/collections/rail_stations/items", params=again), 400, "cursor")


def test_equivalent_sortby_spellings_share_cursors(client: TestClient) -> None:
    """`status`, `+status` and `%2Bstatus` are one order: a cursor of one continues with the others."""
    cursor = _cursor_of(client.get("/collections/rail_stations/items?limit=3&sortby=status").json())
    for spelling in ("%2Bstatus", "+status"):
        response = client.get(f"/collections/rail_stations/items?limit=3&sortby={spelling}&cursor={cursor}")
        assert response.status_code == 200, (spelling, response.text)


@pytest.mark.parametrize(
    ("sortby", "replace"),
    [
        ("accuracy_m", lambda p: ["3000", *p[1:]]),  # a string where the key is numeric
        ("accuracy_m", lambda p: [True, *p[1:]]),
        ("accuracy_m", lambda p: [[3000], *p[1:]]),
        ("accuracy_m", lambda p: [{"v": 3000}, *p[1:]]),
        ("name_zh", lambda p: [42, *p[1:]]),  # a number where the key is text
        ("name_zh", lambda p: [False, *p[1:]]),
        ("status,-accuracy_m", lambda p: [p[0], "10", p[2]]),
        ("status,-accuracy_m", lambda p: [p[0], p[2]]),  # a key missing
        ("status", lambda p: [p[0], p[0], p[1]]),  # a key too many
        ("status", lambda p: [p[0]]),  # no id
        ("status", lambda p: [p[0], str(p[1])]),  # the id as text
        ("status", lambda p: [p[0], 1.5]),
    ],
)
def test_forged_cursor_with_wrong_types_is_400(
    client: TestClient, problem: ProblemCheck, sortby: str, replace: Callable[[list[Any]], list[Any]]
) -> None:
    """A cursor whose position does not fit the sort keys' types (or count) is a 400 about the cursor,
    never a 500 from the database."""
    cursor = _cursor_of(
        client.get("/collections/rail_stations/items", params={"limit": 3, "sortby": sortby}).json()
    )
    data = _decode(cursor)
    forged = _forged({**data, "p": replace(data["p"])})
    problem(
        client.get(
            "/collections/rail_stations/items", params={"limit": 3, "sortby": sortby, "cursor": forged}
        ),
        400,
        "cursor",
    )


def _sorts_after(key: Any, value: Any) -> bool:
    """Whether a row whose key is `key` comes after a cursor at `value` (ascending; NULLs last,
    NaN above every number as in PostgreSQL)."""
    if key is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return False
    return bool(key > value)


@pytest.mark.parametrize(
    ("sortby", "value"),
    [
        ("accuracy_m", 1e300),
        ("accuracy_m", -1e300),
        ("accuracy_m", 2500.5),
        ("accuracy_m", 10**40),
        ("accuracy_m", float("inf")),
        ("accuracy_m", float("-inf")),
        ("accuracy_m", float("nan")),
        ("name_zh", "嘉兴"),
        ("name_zh", ""),
        ("name_zh", "\U0010ffff" * 3),
        ("name_zh", "x" * 5000),
        ("name_zh", "a\u0000b"),
    ],
)
def test_forged_cursor_with_odd_values(client: TestClient, seeds: Seeds, sortby: str, value: Any) -> None:
    """A cursor of the right shape but with an extreme or unusual key value gives exactly the features
    sorting after that value (or a 400 about the cursor), never a 500."""
    url = "/collections/rail_stations/items"
    data = _decode(_cursor_of(client.get(url, params={"limit": 3, "sortby": sortby}).json()))
    keys = {c: f["properties"].get(sortby) for c, f in seeds["rail_stations"].items()}
    assert value not in keys.values()  # no tie with the cursor: the id part does not matter
    forged = _forged({**data, "p": [value, data["p"][-1]]})
    response = client.get(url, params={"limit": 100, "sortby": sortby, "cursor": forged})
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert "cursor" in response.json()["detail"]
        return
    got = {f["properties"]["code"] for f in response.json()["features"]}
    assert got == {c for c, k in keys.items() if _sorts_after(k, value)}


def test_forged_cursor_with_an_id_beyond_bigint_is_400(client: TestClient, problem: ProblemCheck) -> None:
    """An id no bigint can hold (above or below) in a sorted or unsorted cursor is a 400 about the
    cursor, not a 500 from the database's range check."""
    url = "/collections/rail_stations/items"
    for sortby in ("status", "accuracy_m", None):
        params: dict[str, Any] = {"limit": 3} | ({"sortby": sortby} if sortby else {})
        data = _decode(_cursor_of(client.get(url, params=params).json()))
        for bad_id in (2**63, 10**30, -(2**63) - 1):
            forged = _forged({**data, "p": [*data["p"][:-1], bad_id]})
            problem(client.get(url, params=params | {"cursor": forged}), 400, "cursor")
        # the largest bigint is a valid position (nothing follows it but NULL keys)
        largest = _forged({**data, "p": [*data["p"][:-1], 2**63 - 1]})
        assert client.get(url, params=params | {"cursor": largest}).status_code == 200


# -- properties ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layer_id", "selected"),
    [
        ("rail_stations", "name_zh,status"),
        ("rail_stations", "status, name_zh"),
        ("demonstration_zone", "stated_area_km2,name_en"),  # null and absent values
        ("admin_boundaries", "adcode,county,aliases"),
        ("g60_platforms", "status_date,status_date,code"),
    ],
)
def test_properties_selects_members(
    client: TestClient, seeds: Seeds, walk: Walk, layer_id: str, selected: str
) -> None:
    """With `properties`, each feature carries exactly the named members it has in the seed (values
    unchanged), and still its id and geometry; the next links keep `properties`."""
    names = {n.strip() for n in selected.split(",")}
    ids = _ids_by_code(client, layer_id)
    code_of = {i: c for c, i in ids.items()}
    full = {
        f["id"]: f
        for f in client.get(f"/collections/{layer_id}/items", params={"limit": 10000}).json()["features"]
    }
    pages = walk(client, f"/collections/{layer_id}/items?limit=3&properties={selected}")
    features = [f for page in pages for f in page["features"]]
    assert len(features) == len(seeds[layer_id])
    for feature in features:
        seed = seeds[layer_id][code_of[feature["id"]]]
        assert feature["properties"] == {k: v for k, v in seed["properties"].items() if k in names}
        assert feature["type"] == "Feature"
        assert feature["geometry"] == full[feature["id"]]["geometry"]
    for page in pages[:-1]:
        assert _query_of(_links(page, "next")[0]["href"])["properties"] == [selected]


@pytest.mark.parametrize("selected", ["", ",", " "])
def test_empty_properties_gives_empty_objects(client: TestClient, seeds: Seeds, selected: str) -> None:
    """`properties=` (no name) gives every feature an empty properties object, with id and geometry."""
    page = client.get("/collections/demonstration_zone/items", params={"limit": 100, "properties": selected})
    assert page.status_code == 200, page.text
    features = page.json()["features"]
    assert len(features) == len(seeds["demonstration_zone"])
    for feature in features:
        assert feature["properties"] == {}
        assert isinstance(feature["id"], int)
        assert "geometry" in feature
    assert any(f["geometry"] is not None for f in features)


def test_properties_with_sortby_on_an_unselected_key(client: TestClient, seeds: Seeds, walk: Walk) -> None:
    """Sorting by a property that `properties` leaves out still sorts by it (and pages correctly)."""
    ids = _ids_by_code(client, "demonstration_zone")
    expected = _expected_order(seeds["demonstration_zone"], ids, [("accuracy_m", True), ("code", False)])
    pages = walk(
        client, "/collections/demonstration_zone/items?limit=3&sortby=-accuracy_m,code&properties=name_zh"
    )
    code_of = {i: c for c, i in ids.items()}
    assert [code_of[f["id"]] for p in pages for f in p["features"]] == expected
    for page in pages:
        for feature in page["features"]:
            assert set(feature["properties"]) == {"name_zh"}


def test_properties_on_a_single_feature(client: TestClient, seeds: Seeds) -> None:
    """`/items/{id}?properties=…` keeps only those members, with id, geometry and links that keep it."""
    ids = _ids_by_code(client, "rail_stations")
    for code, feature_id in list(ids.items())[:5]:
        seed = seeds["rail_stations"][code]
        response = client.get(
            f"/collections/rail_stations/items/{feature_id}", params={"properties": "name_zh,status"}
        )
        assert response.status_code == 200, response.text
        feature = response.json()
        assert feature["id"] == feature_id
        assert feature["properties"] == {
            "name_zh": seed["properties"]["name_zh"],
            "status": seed["properties"]["status"],
        }
        assert feature["geometry"]["type"] == seed["geometry"]["type"]
        [self_link] = _links(feature, "self")
        assert _query_of(self_link["href"])["properties"] == ["name_zh,status"]
        empty = client.get(f"/collections/rail_stations/items/{feature_id}", params={"properties": ""}).json()
        assert empty["properties"] == {}
        assert empty["geometry"] == feature["geometry"]


def test_properties_with_html(client: TestClient, seeds: Seeds) -> None:
    """`properties` works with `f=html` on both endpoints (200, the selected name shown), even when
    the properties a page shows by default are left out."""
    code, feature_id = next(iter(_ids_by_code(client, "rail_stations").items()))
    name = seeds["rail_stations"][code]["properties"]["name_zh"]
    for path in ("/collections/rail_stations/items", f"/collections/rail_stations/items/{feature_id}"):
        for selected in ("name_zh,status", "status", ""):
            if path.endswith("items"):
                response = client.get(path, params={"properties": selected, "f": "html", "limit": 5})
            else:
                response = client.get(path, params={"properties": selected, "f": "html"})
            assert response.status_code == 200, (path, selected, response.text)
            assert response.headers["content-type"].startswith("text/html")
            text = html.unescape(response.text)
            assert (name in text) == ("name_zh" in selected), (path, selected)
