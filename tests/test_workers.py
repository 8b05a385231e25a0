"""Many service processes on one database: `jxplan run/serve --workers N`, and caches that stay correct across
processes (an edit through one is seen at once through another: feature, ETag, count, page, tile)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import morecantile
import pytest

from geo_service.catalog import Catalog
from geo_service.db.embedded import EmbeddedCluster
from geo_service.db.engine import sync_engine
from geo_service.editing.keys import add_key
from geo_service.loader import load
from tests.conftest import Served, private_database, start_jxplan, wait_until_up

ITEMS = "/collections/rail_stations/items"
FILTERED = {"filter": "status = 'existing'", "limit": "1"}
MERGE = "application/merge-patch+json"
SAME_HOST = {"Host": "gis.example.org"}  # as behind one proxy: the same links (and ETags) from either process
ZOOM = 12


@pytest.fixture(scope="module")
def two_servers(
    server_url: str, catalog: Catalog, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Served, Served, str]]:
    """`jxplan serve --workers 2` (A) and `jxplan serve` (B) on one private loaded database, and an editor's
    token; A is stopped by the last test of the module."""
    folder = tmp_path_factory.mktemp("two")
    with private_database(server_url, "workers") as url:
        engine = sync_engine(url)
        load(engine, catalog)
        token = add_key(engine, "两进程 two processes", "editor")
        engine.dispose()
        served = [
            start_jxplan(folder, "a", "serve", "--workers", "2", DATABASE_URL=url),
            start_jxplan(folder, "b", "serve", DATABASE_URL=url),
        ]
        try:
            for one in served:
                wait_until_up(one)
            yield served[0], served[1], token
        finally:
            for one in served:
                one.stop()


def _tile_path(lon: float, lat: float) -> str:
    tile = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, ZOOM)
    return f"/collections/rail_stations/tiles/WebMercatorQuad/{tile.z}/{tile.y}/{tile.x}"


def _reads(base: str, feature: str, tile: str) -> dict[str, tuple[str, object]]:
    """What B's caches keep, read twice (the second answer from the caches): (ETag, content) per kind."""
    out: dict[str, tuple[str, object]] = {}
    for _ in range(2):
        got = {
            "feature": httpx.get(f"{base}{feature}", headers=SAME_HOST),
            "page": httpx.get(f"{base}{ITEMS}", params=FILTERED, headers=SAME_HOST),
            "tile": httpx.get(f"{base}{tile}", headers=SAME_HOST),
        }
        for kind, response in got.items():
            assert response.status_code == 200, (kind, response.text)
        out = {
            "feature": (got["feature"].headers["etag"], got["feature"].json()),
            "page": (got["page"].headers["etag"], got["page"].json()["numberMatched"]),
            "tile": (got["tile"].headers["etag"], got["tile"].content),
        }
    return out


def test_an_edit_through_one_process_is_served_at_once_by_the_other(
    two_servers: tuple[Served, Served, str],
) -> None:
    """Warm B's tile cache, count cache and feature; PATCH through A (move a station, make it 'existing');
    B's very next answers are the new feature with a new ETag, the new numberMatched and page ETag, the new
    tile bytes, and B's old ETags no longer get a 304."""
    a, b, token = two_servers
    page = httpx.get(f"{a.base}{ITEMS}", params={"filter": "status <> 'existing'", "limit": "1"}).json()
    station = page["features"][0]
    feature = f"{ITEMS}/{station['id']}"
    lon, lat = station["geometry"]["coordinates"]
    tile = _tile_path(lon, lat)
    before = _reads(b.base, feature, tile)
    assert before == _reads(a.base, feature, tile)  # both processes agree before the edit
    assert "jxplan_tile_cache_hits_total 1.0" in httpx.get(f"{b.base}/metrics").text  # B kept the tile

    moved = [lon + 0.002, lat + 0.002]  # within the same z12 tile: only its bytes can tell the change
    assert _tile_path(*moved) == tile
    patch = {"geometry": {"type": "Point", "coordinates": moved}, "properties": {"status": "existing"}}
    answer = httpx.patch(
        f"{a.base}{feature}",
        content=json.dumps(patch),
        headers={"Authorization": f"Bearer {token}", "Content-Type": MERGE},
    )
    assert answer.status_code == 204, answer.text

    after = _reads(b.base, feature, tile)
    assert after["feature"][1]["geometry"]["coordinates"] == pytest.approx(moved)  # type: ignore[index]
    assert after["feature"][1]["properties"]["status"] == "existing"  # type: ignore[index]
    assert after["page"][1] == before["page"][1] + 1  # type: ignore[operator]
    assert after["tile"][1] != before["tile"][1]
    for kind in ("feature", "page", "tile"):
        assert after[kind][0] != before[kind][0], kind
    assert after == _reads(a.base, feature, tile)  # and A agrees
    for kind, path, params in (
        ("feature", feature, None),
        ("page", ITEMS, FILTERED),
        ("tile", tile, None),
    ):
        stale = httpx.get(
            f"{b.base}{path}", params=params, headers=SAME_HOST | {"If-None-Match": before[kind][0]}
        )
        assert stale.status_code == 200, kind


def _workers(parent: int) -> list[int]:
    """The worker processes uvicorn spawned under `parent` (their command line runs multiprocessing's
    spawn_main)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if ppid == parent and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return sorted(found)


def _each_worker_serves(served: Served, workers: list[int]) -> None:
    """With every other worker stopped (SIGSTOP), a new connection is answered: by this one, from the
    database."""
    for worker in workers:
        others = [pid for pid in workers if pid != worker]
        for pid in others:
            os.kill(pid, signal.SIGSTOP)
        try:
            response = httpx.get(f"{served.base}{ITEMS}", params={"limit": "1"}, timeout=10)
        finally:
            for pid in others:
                os.kill(pid, signal.SIGCONT)
        assert response.status_code == 200, (worker, response.text)
        assert response.json()["features"]


def _stops(served: Served, workers: list[int], sig: signal.Signals) -> str:
    output = served.stop(sig)
    assert served.process.returncode == 0, output
    deadline = time.monotonic() + 5
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers), output
    return output


def test_run_with_two_workers_starts_the_cluster_once_and_stops_on_sigterm(tmp_path: Path) -> None:
    """`jxplan run --workers 2` on a fresh data dir: the parent starts the embedded cluster, migrates and
    loads; two spawned workers each find the cluster (its state file) and answer from it; SIGTERM stops the
    workers, then the cluster, and exits 0."""
    env = {"JXPLAN_LOG_FORMAT": "text"}
    assert "DATABASE_URL" not in os.environ, "this tests the embedded cluster"
    served = start_jxplan(tmp_path, "run", "run", "--workers", "2", **env)
    try:
        wait_until_up(served, timeout_s=120)
        workers = _workers(served.process.pid)
        assert len(workers) == 2, served.output.read_text()
        assert httpx.get(f"{served.base}/ready").status_code == 200
        _each_worker_serves(served, workers)
    except BaseException:
        served.stop(signal.SIGKILL)
        raise
    output = _stops(served, workers, signal.SIGTERM)
    assert output.count("Embedded PostGIS started") == 1 and "Embedded PostGIS stopped" in output, output
    assert EmbeddedCluster(tmp_path / "data").running_port() is None
    lines = output.splitlines()
    # uvicorn's messages go through our logging set-up; our access log (request ids), not uvicorn's as well
    assert any("Started parent process" in line and "uvicorn.error" in line for line in lines), output
    assert any("geo_service.access" in line and "/ready" in line for line in lines), output
    assert not any("uvicorn.access" in line for line in lines), output


def test_serve_with_two_workers_answers_from_both_and_stops_on_ctrl_c(
    two_servers: tuple[Served, Served, str],
) -> None:
    """A, `jxplan serve --workers 2` on a database URL: two worker processes, each answering from the
    database; SIGINT (Ctrl-C) stops both and the parent exits 0."""
    served = two_servers[0]
    workers = _workers(served.process.pid)
    assert len(workers) == 2, served.output.read_text()
    _each_worker_serves(served, workers)
    output = _stops(served, workers, signal.SIGINT)
    assert "Received SIGINT" in output and "died" not in output, output
