"""Bad input to the processes: a 4xx problem that says what to change, and nothing written (no feature, no
history, no job), whether run synchronously or asked for as a job."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text

from tests.conftest import Writable, database_state

SQUARE = [[120.76, 30.70], [120.77, 30.70], [120.77, 30.71], [120.76, 30.71], [120.76, 30.70]]
BOWTIE = [[120.76, 30.70], [120.77, 30.71], [120.77, 30.70], [120.76, 30.71], [120.76, 30.70]]


def _many_vertices(n: int) -> dict[str, Any]:
    ring = [[120.7 + 0.05 * i / n, 30.7 + 0.0001 * (i % 2)] for i in range(n)]
    ring += [[120.75, 30.72], ring[0]]
    return {"type": "Polygon", "coordinates": [ring]}


# (process, execute request, status, words the detail must hold)
BAD: list[tuple[str, Any, int, tuple[str, ...]]] = [
    (
        "site-check",
        {"inputs": {"site": {"type": "Polygon", "coordinates": [BOWTIE]}}},
        400,
        ("not valid", "self"),
    ),
    ("site-check", {"inputs": {"site": {"type": "Polygon", "coordinates": [SQUARE[:-1]]}}}, 400, ("site",)),
    (
        "site-check",
        {"inputs": {"site": {"type": "Point", "coordinates": ["120.7", "30.7"]}}},
        400,
        ("numbers",),
    ),
    (
        "site-check",
        {"inputs": {"site": {"type": "Point", "coordinates": [121.47, 31.23]}}},
        400,
        ("outside Jiaxing",),
    ),
    ("site-check", {"inputs": {"site": {"type": "Point", "coordinates": [116.4, 39.9]}}}, 400, ("outside",)),
    (
        "site-check",
        {"inputs": {"site": {"type": "Point", "coordinates": [30.75, 120.75]}}},
        400,
        ("latitude",),
    ),
    ("site-check", {"inputs": {"site": _many_vertices(100_001)}}, 413, ("100,000", "simplify")),
    ("site-check", {"inputs": {"site": {"type": "GeometryCollection", "geometries": []}}}, 400, ("site",)),
    ("site-check", {"inputs": {}}, 400, ("site",)),
    (
        "site-check",
        {"inputs": {"site": {"type": "Point", "coordinates": [120.75, 30.75]}, "radius": 5}},
        400,
        ("radius", "inputs"),
    ),
    (
        "site-check",
        {"inputs": {"site": {"type": "Point", "coordinates": [120.75, 30.75]}, "crs": "EPSG:9999"}},
        400,
        ("crs",),
    ),
    (
        "site-check",
        {"inputs": {"site": {"type": "Point", "coordinates": [120.75, 30.75]}, "layers": ["parcels"]}},
        400,
        ("layers",),
    ),
    (
        "site-check",
        {"inputs": {"site": {"href": "/collections/rail_stations/items/999999"}}},
        400,
        ("999999",),
    ),
    ("site-check", {"inputs": {"site": {"href": "/collections/nowhere/items/1"}}}, 400, ("nowhere",)),
    ("site-check", {"inputs": {"site": {"href": "https://example.org/other"}}}, 400, ("not a feature",)),
    (
        "site-check",
        {"inputs": {"site": {"type": "Point", "coordinates": [120.75, 30.75]}}, "response": "everything"},
        400,
        ("response",),
    ),
    (
        "site-check",
        {"inputs": {"site": {"type": "Point", "coordinates": [120.75, 30.75]}}, "outputs": {"map": {}}},
        400,
        ("output",),
    ),
    ("site-check", [1, 2], 400, ("execute request",)),
    ("county-summary", {"inputs": {"format": "xlsx"}}, 400, ("format",)),
    ("county-summary", {"inputs": [], "mode": "async"}, 400, ("mode",)),
    (
        "nearby",
        {"inputs": {"site": {"type": "Point", "coordinates": [120.75, 30.75]}, "distance": -1}},
        400,
        ("distance",),
    ),
    (
        "nearby",
        {"inputs": {"site": {"type": "Point", "coordinates": [120.75, 30.75]}, "distance": 1e9}},
        400,
        ("distance",),
    ),
    (
        "nearby",
        {"inputs": {"site": {"type": "Point", "coordinates": [120.75, 30.75]}, "limit": 0}},
        400,
        ("limit",),
    ),
    ("buffer", {"inputs": {}}, 404, ("buffer", "site-check")),
]


def _jobs(writable: Writable) -> int:
    with writable.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM jobs")).scalar_one())


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(("process", "body", "status", "words"), BAD)
def test_bad_input_is_refused_and_writes_nothing(
    writable: Writable,
    problem: Callable[..., dict[str, Any]],
    process: str,
    body: Any,
    status: int,
    words: tuple[str, ...],
    asynchronous: bool,
) -> None:
    """Each bad request answers its 4xx problem naming what to change; no job, feature or history row."""
    before, jobs = database_state(writable.engine), _jobs(writable)
    headers = {"Prefer": "respond-async"} if asynchronous else {}
    response = writable.client.post(f"/processes/{process}/execution", json=body, headers=headers)
    problem(response, status, *words)
    assert database_state(writable.engine) == before
    assert _jobs(writable) == jobs


def test_not_json(writable: Writable, problem: Callable[..., dict[str, Any]]) -> None:
    """A body that is not JSON is a 400; one sent as another media type a 415."""
    url = "/processes/site-check/execution"
    problem(
        writable.client.post(url, content=b"{inputs", headers={"Content-Type": "application/json"}),
        400,
        "JSON",
    )
    problem(
        writable.client.post(url, content=json.dumps({"inputs": {}}), headers={"Content-Type": "text/plain"}),
        415,
        "application/json",
    )


@pytest.mark.parametrize("job_id", ["not-a-uuid", "3f2c1c1e-0000-4000-8000-000000000000"])
def test_unknown_job(writable: Writable, problem: Callable[..., dict[str, Any]], job_id: str) -> None:
    """An unknown job is a 404 on its status, results and dismissal, and nothing changes."""
    jobs = _jobs(writable)
    for method, path in (("GET", ""), ("GET", "/results"), ("DELETE", "")):
        body = problem(writable.client.request(method, f"/jobs/{job_id}{path}"), 404, "job")
        assert body["type"].endswith("no-such-job")
    assert _jobs(writable) == jobs


def test_unknown_process_description(client: Any, problem: Callable[..., dict[str, Any]]) -> None:
    """An unknown process is a 404 of the OGC type no-such-process, listing the processes."""
    body = problem(client.get("/processes/buffer"), 404, "site-check")
    assert body["type"].endswith("no-such-process")
