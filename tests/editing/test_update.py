"""PUT and PATCH (Part 4): QGIS's request sequence replayed, If-Match under concurrency, history of each
change, and the checks a changed feature must pass."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from geo_service.app import create_app
from geo_service.catalog import Catalog
from geo_service.editing.keys import add_key
from geo_service.settings import Settings
from tests.conftest import Writable, running_server

LAYER = "rail_stations"
WGS84_URI = "http://www.opengis.net/def/crs/EPSG/0/4326"
MERGE = "application/merge-patch+json"


@pytest.fixture(scope="module")
def token(writable: Writable) -> str:
    """An editor's key on the module's private database."""
    return add_key(writable.engine, "更新测试 updater", "editor")


def _history(writable: Writable, fid: int) -> list[Any]:
    with writable.engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT version, operation, changed_by, properties FROM feature_history"
                    " WHERE feature_id = :i ORDER BY version"
                ),
                {"i": fid},
            )
        )


def test_qgis_editing_sequence(writable: Writable, token: str) -> None:
    """What QGIS 3.32+ sends, in order: OPTIONS on items (POST allowed), POST a Feature without id
    (→ Location), GET it, OPTIONS on it (PUT, PATCH, DELETE), PATCH the geometry with a bare Content-Crs
    in EPSG:4326 (latitude first), PATCH one property, GET then PUT the whole feature, DELETE. Each step
    lands, and history keeps every earlier version."""
    client = writable.client
    auth = {"Authorization": f"Bearer {token}"}
    items = f"/collections/{LAYER}/items"
    assert "POST" in client.options(items, headers=auth).headers["allow"]
    new = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [120.81, 30.71]},
        "properties": {
            "code": "qgis_seq",
            "name_zh": "序列站",
            "name_en": "Sequence station",
            "category": "rail_station",
            "status": "planned",
            "accuracy": "approximate",
            "county": ["330402"],
            "aliases": [],
        },
    }
    created = client.post(items, json=new, headers=auth | {"Content-Type": "application/geo+json"})
    assert created.status_code == 201, created.text
    path = created.headers["location"].replace("http://testserver", "")
    fid = int(path.rsplit("/", 1)[1])
    assert client.get(path).json()["properties"]["name_zh"] == "序列站"
    assert {"PUT", "PATCH", "DELETE"} <= set(client.options(path, headers=auth).headers["allow"].split(", "))

    moved = client.patch(
        path,
        content=json.dumps({"geometry": {"type": "Point", "coordinates": [30.72, 120.82]}}),
        headers=auth | {"Content-Type": MERGE, "Content-Crs": WGS84_URI},
    )
    assert moved.status_code == 204, moved.text
    assert client.get(path).json()["geometry"]["coordinates"] == pytest.approx([120.82, 30.72])

    renamed = client.patch(
        path,
        content=json.dumps({"properties": {"name_zh": "序列站(改)", "note": None}}, ensure_ascii=False),
        headers=auth | {"Content-Type": MERGE},
    )
    assert renamed.status_code == 204, renamed.text
    current = client.get(path).json()
    assert current["properties"]["name_zh"] == "序列站(改)" and current["properties"]["status"] == "planned"

    current["properties"]["status"] = "under_construction"
    replaced = client.put(path, json=current, headers=auth | {"Content-Type": "application/geo+json"})
    assert replaced.status_code == 204, replaced.text
    assert "v4-" in replaced.headers["etag"]
    assert client.get(path).json()["properties"]["status"] == "under_construction"

    assert client.delete(path, headers=auth).status_code == 204
    history = _history(writable, fid)
    assert [(h.version, h.operation) for h in history] == [
        (1, "update"),
        (2, "update"),
        (3, "update"),
        (4, "delete"),
    ]
    assert all(h.changed_by == "更新测试 updater" for h in history)
    assert history[1].properties["name_zh"] == "序列站" and history[2].properties["name_zh"] == "序列站(改)"


def _station(writable: Writable, index: int) -> tuple[str, str]:
    page = writable.client.get(f"/collections/{LAYER}/items", params={"limit": 40}).json()
    fid = page["features"][index]["id"]
    path = f"/collections/{LAYER}/items/{fid}"
    return path, writable.client.get(path).headers["etag"]


@pytest.fixture(scope="module")
def live_writable(writable: Writable, settings: Settings, catalog: Catalog) -> Iterator[str]:
    """The module's private database served on a real socket, for concurrent clients."""
    private = settings.model_copy(update={"database_url": str(writable.engine.url.render_as_string(False))})
    with running_server(create_app(private, catalog)) as base:
        yield base


def _patch_all(base: str, token: str, targets: list[tuple[str, str]], name: str) -> list[int]:
    async def run() -> list[int]:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            body = json.dumps({"properties": {"note": name}})
            responses = await asyncio.gather(
                *(
                    client.patch(
                        path,
                        content=body,
                        headers={"Authorization": f"Bearer {token}", "Content-Type": MERGE, "If-Match": etag},
                    )
                    for path, etag in targets
                )
            )
        return [r.status_code for r in responses]

    return asyncio.run(run())


def test_sixteen_clients_one_version(writable: Writable, live_writable: str, token: str) -> None:
    """16 clients PATCH the same feature with the same If-Match at once: exactly one succeeds, 15 get 412,
    and history holds exactly one new version."""
    path, etag = _station(writable, 5)
    fid = int(path.rsplit("/", 1)[1])
    before = len(_history(writable, fid))
    statuses = _patch_all(live_writable, token, [(path, etag)] * 16, "concurrent")
    assert sorted(statuses) == [204] + [412] * 15
    assert len(_history(writable, fid)) == before + 1


def test_sixteen_clients_sixteen_features(writable: Writable, live_writable: str, token: str) -> None:
    """16 clients editing 16 different features at once all succeed: no write is lost."""
    targets = [_station(writable, i) for i in range(10, 26)]
    assert sorted(_patch_all(live_writable, token, targets, "parallel")) == [204] * 16
    for path, _ in targets:
        assert writable.client.get(path).json()["properties"]["note"] == "parallel"


BAD_PATCHES: list[tuple[str, Any, dict[str, str], int, list[str]]] = [
    ("bad status", {"properties": {"status": "done"}}, {}, 400, ["status"]),
    ("unknown member", {"colour": "red"}, {}, 400, ["colour"]),
    ("remove a required property", {"properties": {"name_zh": None}}, {}, 400, ["name_zh"]),
    (
        "swapped lon/lat",
        {"geometry": {"type": "Point", "coordinates": [30.7, 120.8]}},
        {},
        400,
        ["latitude, longitude"],
    ),
    (
        "line into a point layer",
        {"geometry": {"type": "LineString", "coordinates": [[120.7, 30.7], [120.8, 30.8]]}},
        {},
        400,
        ["LineString"],
    ),
    ("contradicting id", {"id": 1, "properties": {"note": "x"}}, {}, 400, ["contradicts"]),
    ("duplicate code", {"properties": {"code": "c01_jiaxing_south_stn"}}, {}, 409, ["c01_jiaxing_south_stn"]),
    ("not JSON", b"{", {}, 400, ["JSON"]),
    ("wrong media type", {"properties": {"note": "x"}}, {"Content-Type": "text/plain"}, 415, ["merge-patch"]),
    ("stale If-Match", {"properties": {"note": "x"}}, {"If-Match": '"f1v999-x"'}, 412, ["version"]),
    # found by fuzzing (tests/editing/test_fuzz_patch.py): each of these was a 500
    ("NUL in a property", {"properties": {"note": "a\x00b"}}, {}, 400, ["note", "NUL"]),
    ("lone surrogate", {"properties": {"name_en": "\ud800"}}, {}, 400, ["name_en", "surrogate"]),
    ("NaN", b'{"properties": {"accuracy_m": NaN}}', {}, 400, ["accuracy_m", "finite"]),
    ("a number beyond double", b'{"properties": {"accuracy_m": 1e400}}', {}, 400, ["accuracy_m", "finite"]),
    ("NUL in a list", {"properties": {"aliases": ["\x00"]}}, {}, 400, ["aliases", "NUL"]),
    ("NUL in the comment", {"properties": {"note": "x"}}, {"X-Edit-Comment": "%00"}, 400, ["X-Edit-Comment"]),
    (
        "a point nested as a line",  # shapely read it, PostGIS did not: a 500
        {"geometry": {"type": "Point", "coordinates": [[120.8, 30.7]]}},
        {},
        400,
        ["coordinates", "one position"],
    ),
    (
        "numbers as text",
        {"geometry": {"type": "Point", "coordinates": ["120.8", "30.7"]}},
        {},
        400,
        ["coordinates", "numbers"],
    ),
    (
        "nested, in another CRS",
        {"geometry": {"type": "Point", "coordinates": [[13450000, 3590000]]}},
        {"Content-Crs": "http://www.opengis.net/def/crs/EPSG/0/3857"},
        400,
        ["coordinates"],
    ),
]


@pytest.mark.parametrize(
    ("name", "body", "headers", "status", "words"), BAD_PATCHES, ids=[b[0] for b in BAD_PATCHES]
)
def test_bad_patches_change_nothing(
    writable: Writable,
    token: str,
    problem: Any,
    name: str,
    body: Any,
    headers: dict[str, str],
    status: int,
    words: list[str],
) -> None:
    """A patch that would make the feature invalid, or that is malformed or stale, is refused with what to
    fix; the feature, its version and its history are unchanged."""
    path, _ = _station(writable, 26)
    before = writable.client.get(path)
    fid = int(path.rsplit("/", 1)[1])
    history = _history(writable, fid)
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = {"Authorization": f"Bearer {token}", "Content-Type": MERGE} | headers
    if "If-Match" in headers:
        sent["If-Match"] = headers["If-Match"].replace("f1", f"f{fid}")
    problem(writable.client.patch(path, content=content, headers=sent), status, *words)
    after = writable.client.get(path)
    assert after.json() == before.json() and after.headers["etag"] == before.headers["etag"]
    assert _history(writable, fid) == history


def test_put_checks_the_whole_feature(writable: Writable, token: str, problem: Any) -> None:
    """PUT needs a whole valid Feature whose id, if given, is the URL's; otherwise nothing changes."""
    path, _ = _station(writable, 27)
    before = writable.client.get(path).json()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/geo+json"}
    problem(
        writable.client.put(path, json=before | {"id": before["id"] + 1}, headers=headers), 400, "contradicts"
    )
    problem(
        writable.client.put(path, json={"type": "Feature", "geometry": None}, headers=headers),
        400,
        "properties",
    )
    no_name = before | {"properties": {k: v for k, v in before["properties"].items() if k != "name_en"}}
    problem(writable.client.put(path, json=no_name, headers=headers), 400, "name_en")
    assert writable.client.get(path).json() == before
