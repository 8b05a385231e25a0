"""Database faults, for real (geo_service.db.faults and the pools of geo_service.db.engine): PostgreSQL
stopped and started again under a running service, its postmaster killed with SIGKILL in the middle of writes,
a COMMIT whose answer is lost, a read past its time limit, an exhausted pool, clients that leave half-way
through a download, a backend that dies half-way through a streamed page.

Stopping and killing use a dedicated embedded cluster in a temporary directory (never the suite's shared one);
the other faults use a private database of the shared cluster holding a generated bench layer. Every server
listens on 127.0.0.1 and stops with its fixture.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, text

from geo_service.app import create_app
from geo_service.bench import BENCH_LAYER, load_bench_layer
from geo_service.catalog import Catalog, load_catalog
from geo_service.db import migrate
from geo_service.db.embedded import EmbeddedCluster, free_port
from geo_service.db.engine import ReadPool, ensure_database, sync_engine
from geo_service.editing.keys import add_key
from geo_service.loader import load
from geo_service.settings import PROJECT_ROOT, Settings
from tests.conftest import check_problem, database_state, private_database, running_server
from tests.editing.test_create import _feature

LINES = "rail_lines"
STATIONS = "rail_stations"
BOUND_S = 2.0  # every answer while the database is away comes within this
WAIT_MS = 500  # the services' JXPLAN_DB_WAIT_MS here (default 1500): room for a busy machine
BENCH_ROWS = 20_000


# -- helpers -------------------------------------------------------------------------------------------------


def _station(code: str) -> dict[str, Any]:
    """A valid new rail station (the create tests' own), named after its code."""
    return _feature(code, name_en=code)


def _timed(method: str, url: str, **kwargs: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.request(method, url, timeout=30, **kwargs)
    return response, time.monotonic() - started


def _check_unavailable(response: httpx.Response, seconds: float, *words: str) -> dict[str, Any]:
    """A 503 problem with Retry-After, answered within the bound."""
    assert seconds < BOUND_S, f"{response.request.url} took {seconds:.2f} s"
    body = check_problem(response, 503, *words)
    assert int(response.headers["retry-after"]) >= 1
    return body


def _wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(0.05)


def _other_backends(engine: Engine, *states: str) -> list[tuple[int, str, str | None]]:
    """The backends of the engine's database (other than the asking one, and the job runner's, which looks
    for jobs every second) in one of `states`."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT pid, state, wait_event FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND state = ANY(:states) AND application_name <> 'jxplan jobs'"
            ),
            {"states": list(states)},
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def _pool_whole(app: FastAPI) -> bool:
    """Every connection of both pools is back: none in use, nobody waiting."""
    stats = app.state.reads.get_stats()
    reads_idle = stats["pool_available"] == stats["pool_size"] and stats.get("requests_waiting", 0) == 0
    return bool(reads_idle and app.state.engine.sync_engine.pool.checkedout() == 0)


# -- a dedicated cluster, stopped and killed -----------------------------------------------------------------


class Service(NamedTuple):
    """A dedicated embedded cluster, loaded, and the service on it (the embedded way: no DATABASE_URL)."""

    cluster: EmbeddedCluster
    base: str
    app: FastAPI
    token: str

    def engine(self) -> Engine:
        """A fresh engine on the cluster as it is now (its port may change)."""
        return sync_engine(self.cluster.url())


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, catalog: Catalog) -> Iterator[Service]:
    """The plan in its own embedded cluster (created here, destroyed after), served on a real socket."""
    cluster = EmbeddedCluster(tmp_path_factory.mktemp("faults-cluster"))
    try:
        cluster.start()
        url = cluster.url()
        ensure_database(url)
        migrate.upgrade(url)
        engine = sync_engine(url)
        load(engine, catalog, [LINES, STATIONS])
        token = add_key(engine, "故障测试 faults", "editor")
        engine.dispose()
        settings = Settings(database_url=None, data_dir=cluster.data_dir, db_wait_ms=WAIT_MS, retry_after_s=3)
        app = create_app(settings, catalog)
        with running_server(app) as base:
            yield Service(cluster, base, app, token)
    finally:
        cluster.destroy()


def _first_feature(engine: Engine, layer: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(text("SELECT min(id) FROM features WHERE layer_id = :l"), {"l": layer}).scalar_one()
        )


def _querying(fid: int) -> list[str]:
    """Paths whose answer needs the database: pages, streamed pages, features, tiles, collections, files,
    history and map pages."""
    items = f"/collections/{LINES}/items"
    return [
        "/collections",
        f"/collections/{LINES}",
        items,
        f"{items}?f=html",
        f"{items}?limit=600",
        f"{items}?f=csv",
        f"{items}/{fid}",
        f"{items}/{fid}?f=html",
        f"{items}/{fid}?version=1",
        f"{items}/{fid}/history",
        f"{items}/{fid}/map",
        f"/collections/{LINES}/tiles/WebMercatorQuad/9/214/428",
    ]


# what needs no database answers as always
DATABASE_FREE = ["/", "/conformance", f"/collections/{LINES}/queryables", "/api", "/maps/overview"]


def _writes(service: Service, fid: int, code: str) -> list[tuple[str, str, dict[str, Any]]]:
    auth = {"Authorization": f"Bearer {service.token}"}
    geojson = auth | {"Content-Type": "application/geo+json"}
    patch = auth | {"Content-Type": "application/merge-patch+json"}
    station_fid = fid
    return [
        ("POST", f"/collections/{STATIONS}/items", {"headers": geojson, "json": _station(code)}),
        (
            "PATCH",
            f"/collections/{STATIONS}/items/{station_fid}",
            {"headers": patch, "json": {"properties": {"name_en": code}}},
        ),
        ("DELETE", f"/collections/{STATIONS}/items/{station_fid}", {"headers": auth}),
    ]


def _failing(service: Service, paths: list[str]) -> list[tuple[str, int]]:
    """The paths that do not answer 200 or 204, with their status."""
    answers = [(p, httpx.get(service.base + p, timeout=10).status_code) for p in paths]
    return [(p, status) for p, status in answers if status not in (200, 204)]


def _all_answer(service: Service, paths: list[str]) -> bool:
    return not _failing(service, paths)


def test_stopped_database_is_503_and_the_service_recovers_by_itself(service: Service) -> None:
    """With PostgreSQL stopped under the running service, every request that needs it answers a 503 problem
    with Retry-After within 2 s (none hangs, none is a 500), writes change nothing, and what needs no
    database still answers; `start` brings the cluster back on the same port, and the service serves again
    by itself, without a restart."""
    cluster = service.cluster
    engine = service.engine()
    fid = _first_feature(engine, LINES)
    station = _first_feature(engine, STATIONS)
    querying = _querying(fid)
    assert not _failing(service, querying)  # and the pools now hold connections the stop will break
    before = database_state(engine)
    port = cluster.running_port()
    # another client's session (an operator's psql, say) still open across the restart: the old server's
    # side of it lingers on the port
    session = engine.connect()

    cluster.stop()
    try:
        requests = [("GET", p, {}) for p in querying] + _writes(service, station, "while-stopped")
        answers = [_timed(method, service.base + path, **kwargs) for method, path, kwargs in requests]
        for (method, path, _), (response, seconds) in zip(requests, answers, strict=True):
            body = _check_unavailable(response, seconds, "try again")
            assert body["title"] == "Service unavailable 服务暂不可用", (method, path)
            if method != "GET":
                assert "Nothing was changed" in body["detail"]
        for path in DATABASE_FREE:
            response, seconds = _timed("GET", service.base + path)
            assert response.status_code == 200 and seconds < BOUND_S, path
    finally:
        cluster.start()

    assert cluster.running_port() == port  # the old server's closing connections do not move it
    session.invalidate()
    engine.dispose()
    _wait_for(lambda: _all_answer(service, querying), 10, "every path answers again")
    engine = service.engine()
    try:
        assert database_state(engine) == before  # the refused writes changed nothing
    finally:
        engine.dispose()
    for method, path, kwargs in _writes(service, station, "after-restart"):
        assert httpx.request(method, service.base + path, timeout=10, **kwargs).status_code in (201, 204)
    engine = service.engine()
    try:
        with engine.connect() as conn:
            codes = set(conn.scalars(text("SELECT code FROM features")))
            names = set(conn.scalars(text("SELECT properties->>'name_en' FROM feature_history")))
        assert "while-stopped" not in codes | names and "after-restart" in codes | names
    finally:
        engine.dispose()


def test_a_cluster_back_on_another_port_is_found(service: Service) -> None:
    """Even when the cluster comes back on another port (the old one taken), the service finds it: it reads
    where the cluster listens again for each new connection."""
    cluster = service.cluster
    paths = _querying(_first_feature(service.engine(), LINES))
    cluster.stop()
    state = cluster.state()
    assert state is not None
    old = state.port
    state.port = free_port()
    state.save(cluster.state_file)
    cluster.start()
    assert cluster.running_port() == state.port != old
    _wait_for(lambda: _all_answer(service, paths), 10, "every path answers from the new port")


# -- kill -9 in the middle of writes -------------------------------------------------------------------------


@dataclass
class Write:
    """One write a writer sent, and what the service answered."""

    kind: str  # create or patch
    marker: str  # the code created, or the name_en patched in
    feature_id: int | None
    status: int
    title: str | None


def _writer(service: Service, number: int, stop: threading.Event, log: list[Write]) -> None:
    """Create a station, patch it three times, again and again, until told to stop."""
    auth = {"Authorization": f"Bearer {service.token}"}
    with httpx.Client(base_url=service.base, timeout=30, headers=auth) as http:
        n = 0
        while not stop.is_set():
            n += 1
            code = f"kill9-{number}-{n}"
            response = http.post(
                f"/collections/{STATIONS}/items",
                content=json.dumps(_station(code)),
                headers={"Content-Type": "application/geo+json"},
            )
            created = response.status_code == 201
            fid = int(response.headers["location"].rsplit("/", 1)[1]) if created else None
            log.append(Write("create", code, fid, response.status_code, _title(response)))
            if not created:
                time.sleep(0.05)
                continue
            for k in range(3):
                marker = f"{code}-p{k}"
                response = http.patch(
                    f"/collections/{STATIONS}/items/{fid}",
                    content=json.dumps({"properties": {"name_en": marker}}),
                    headers={"Content-Type": "application/merge-patch+json"},
                )
                log.append(Write("patch", marker, fid, response.status_code, _title(response)))
                if response.status_code != 204:
                    break


def _title(response: httpx.Response) -> str | None:
    if response.status_code < 400:
        return None
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    title: str = response.json()["title"]
    return title


def _cluster_processes(pgdata: str) -> list[int]:
    """The processes working in the cluster's data directory (the postmaster and its children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(entry / "cwd") == pgdata:
                    found.append(int(entry.name))
    return found


def test_kill_9_under_writes_keeps_every_answered_write(service: Service) -> None:
    """Four editors create and patch stations while the postmaster is killed with SIGKILL. Every write is
    answered (2xx, or a 503 problem); after a restart every write answered 2xx is there with its history
    (versions contiguous), and no write answered 503 is there, except one whose COMMIT lost its answer,
    which the service says is of unknown outcome."""
    cluster = service.cluster
    state = cluster.state()
    assert state is not None
    stop = threading.Event()
    log: list[Write] = []
    writers = [threading.Thread(target=_writer, args=(service, n, stop, log)) for n in range(4)]
    for thread in writers:
        thread.start()
    try:
        _wait_for(lambda: sum(w.status < 300 for w in log) >= 40, 30, "40 writes before the kill")
        postmaster = int((Path(state.pgdata) / "postmaster.pid").read_text().split()[0])
        os.kill(postmaster, signal.SIGKILL)
        killed_at = len(log)
        _wait_for(lambda: len(log) >= killed_at + 8, 15, "writes after the kill are answered")
    finally:
        stop.set()
        for thread in writers:
            thread.join(timeout=30)
    _wait_for(lambda: not _cluster_processes(state.pgdata), 20, "the killed cluster's processes exit")
    cluster.start()  # crash recovery
    _wait_for(
        lambda: _all_answer(service, [f"/collections/{STATIONS}/items"]), 10, "the service serves again"
    )

    unknown = "Outcome unknown 保存结果未知"
    assert {w.status for w in log} <= {201, 204, 503}
    assert all(w.title in (None, "Service unavailable 服务暂不可用", unknown) for w in log)
    assert any(w.status == 503 for w in log[killed_at:]), "the kill was noticed"
    engine = service.engine()
    try:
        with engine.connect() as conn:
            features = {
                r.code: r
                for r in conn.execute(
                    text("SELECT id, code, version, properties->>'name_en' AS name FROM features")
                )
            }
            history: dict[int, dict[int, str]] = {}
            for r in conn.execute(
                text("SELECT feature_id, version, properties->>'name_en' AS name FROM feature_history")
            ):
                history.setdefault(r.feature_id, {})[r.version] = r.name
    finally:
        engine.dispose()
    by_id = {r.id: r for r in features.values()}
    for write in log:
        if write.title == unknown:
            continue
        if write.kind == "create":
            assert (write.marker in features) == (write.status == 201), write
            if write.status == 201:
                assert features[write.marker].id == write.feature_id
            continue
        assert write.feature_id is not None
        current = by_id[write.feature_id]
        names = {current.name, *history.get(write.feature_id, {}).values()}
        assert (write.marker in names) == (write.status == 204), write
    for code, row in features.items():
        if code.startswith("kill9-"):  # every earlier version of every station in history
            assert sorted(history.get(row.id, {})) == list(range(1, row.version)), code


# -- on a private database of the shared cluster ------------------------------------------------------------


class Bench(NamedTuple):
    """A private database with rail stations and generated parcels, its settings and catalogue."""

    url: str
    engine: Engine
    settings: Settings
    catalog: Catalog


@pytest.fixture(scope="module")
def bench(server_url: str, catalog: Catalog, settings: Settings) -> Iterator[Bench]:
    """Rail stations and BENCH_ROWS generated parcels in a private database (dropped after)."""
    with private_database(server_url, "faults") as url:
        engine = sync_engine(url)
        load(engine, catalog, [STATIONS])
        bench_catalog = load_catalog(PROJECT_ROOT / "layers", PROJECT_ROOT / "maps", bench_layers=True)
        load_bench_layer(engine, bench_catalog.layers[BENCH_LAYER], BENCH_ROWS)
        private = settings.model_copy(
            update={"database_url": url, "bench_layers": True, "max_limit": BENCH_ROWS, "db_wait_ms": WAIT_MS}
        )
        yield Bench(url, engine, private, bench_catalog)
        engine.dispose()


@contextlib.contextmanager
def _served(bench: Bench, **changes: Any) -> Iterator[tuple[str, FastAPI]]:
    app = create_app(bench.settings.model_copy(update=changes), bench.catalog)
    with running_server(app) as base:
        yield base, app


# a slow COMMIT (a deferred trigger sleeps for one code), so its backend can be ended mid-COMMIT
SLOW_COMMIT = [
    "CREATE FUNCTION faults_slow_commit() RETURNS trigger LANGUAGE plpgsql"
    " AS $$ BEGIN PERFORM pg_sleep(20); RETURN NULL; END $$",
    "CREATE CONSTRAINT TRIGGER faults_slow_commit AFTER INSERT ON features DEFERRABLE INITIALLY DEFERRED"
    " FOR EACH ROW WHEN (NEW.properties->>'code' = 'commit-lost') EXECUTE FUNCTION faults_slow_commit()",
]


def _create(base: str, token: str) -> httpx.Response:
    return httpx.post(
        f"{base}/collections/{STATIONS}/items",
        json=_station("commit-lost"),
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )


def _import(base: str, token: str) -> httpx.Response:
    collection = {"type": "FeatureCollection", "features": [_station("commit-lost")]}
    return httpx.post(
        f"{base}/collections/{STATIONS}/import",
        files={"file": ("stations.geojson", json.dumps(collection).encode())},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )


@pytest.mark.parametrize("write", [_create, _import], ids=["create", "import"])
def test_a_commit_that_loses_its_answer_is_of_unknown_outcome(
    bench: Bench, write: Callable[[str, str], httpx.Response]
) -> None:
    """The backend dies while it runs the COMMIT of a create or an import: the service cannot know whether
    the change was saved and says exactly that (a 503 of its own, telling the editor to reload before trying
    again), never "nothing was changed"; the pool replaces the lost connection."""
    token = add_key(bench.engine, f"提交测试 commit {write.__name__}", "editor")
    with bench.engine.begin() as conn:
        for statement in SLOW_COMMIT:
            conn.execute(text(statement))
    try:
        with _served(bench) as (base, app), ThreadPoolExecutor(max_workers=1) as workers:
            sent = workers.submit(write, base, token)
            committing: list[int] = []

            def in_commit() -> bool:
                committing[:] = [b[0] for b in _other_backends(bench.engine, "active") if b[2] == "PgSleep"]
                return bool(committing)

            _wait_for(in_commit, 10, "the COMMIT is under way")
            with bench.engine.connect() as conn:
                assert conn.scalar(text("SELECT pg_terminate_backend(:p)"), {"p": committing[0]})
            response = sent.result()
            body = check_problem(response, 503, "may or may not", "reload")
            assert body["title"] == "Outcome unknown 保存结果未知"
            assert "Nothing was changed" not in body["detail"] and "retry-after" in response.headers
            _wait_for(lambda: _pool_whole(app), 5, "the pools are whole")
        with bench.engine.connect() as conn:  # here the COMMIT never finished: nothing was saved
            assert not conn.scalar(text("SELECT count(*) FROM features WHERE code = 'commit-lost'"))
    finally:
        with bench.engine.begin() as conn:
            conn.execute(text("DROP TRIGGER faults_slow_commit ON features"))
            conn.execute(text("DROP FUNCTION faults_slow_commit()"))


SLOW_FILTER = "filter=area_m2 > 1e12"  # no parcel matches, every one is looked at


def test_a_read_past_its_time_limit_is_stopped_in_postgresql(bench: Bench) -> None:
    """A read that runs past JXPLAN_READ_TIMEOUT_MS is cancelled in PostgreSQL (no backend of the service
    still runs it) and answered with a problem saying what took too long and how to narrow it; a file
    download too. The same read within the limit answers."""
    with _served(bench, read_timeout_ms=20) as (base, app):
        for query in (SLOW_FILTER, f"{SLOW_FILTER}&f=csv"):
            response = httpx.get(f"{base}/collections/{BENCH_LAYER}/items?{query}", timeout=30)
            body = check_problem(response, 503, "took longer", "bbox", "filter", "limit")
            assert body["title"] == "Query took too long 查询超时"
            assert "retry-after" in response.headers
            assert not _other_backends(bench.engine, "active", "idle in transaction")
        _wait_for(lambda: _pool_whole(app), 5, "the pools are whole")
    with _served(bench) as (base, _):
        response = httpx.get(f"{base}/collections/{BENCH_LAYER}/items?{SLOW_FILTER}", timeout=30)
        assert response.status_code == 200 and response.json()["numberReturned"] == 0


def test_an_exhausted_pool_is_503_after_a_bounded_wait(bench: Bench) -> None:
    """With pool size 1 (two read connections), two reads held up by a lock take both; a third read waits
    JXPLAN_DB_WAIT_MS, not for ever, and is answered 503 with Retry-After; once the lock goes the held reads
    answer and the pool is whole."""
    with _served(bench, pool_size=1, db_wait_ms=500, read_timeout_ms=10_000) as (base, app):
        items = f"{base}/collections/{STATIONS}/items"
        with bench.engine.connect() as locker, ThreadPoolExecutor(max_workers=2) as workers:
            locker.execute(text("LOCK TABLE features IN ACCESS EXCLUSIVE MODE"))
            held = [workers.submit(httpx.get, items, timeout=30) for _ in range(2)]
            _wait_for(
                lambda: len([b for b in _other_backends(bench.engine, "active") if b[2] == "relation"]) == 2,
                10,
                "two reads wait for the lock",
            )
            response, seconds = _timed("GET", f"{items}?limit=2")
            locker.rollback()
            assert 0.4 < seconds < BOUND_S
            body = _check_unavailable(response, seconds, "busy")
            assert body["title"] == "Service unavailable 服务暂不可用"
            assert [f.result().status_code for f in held] == [200, 200]
        _wait_for(lambda: _pool_whole(app), 5, "the pool is whole")


def _abort(base: str, path: str) -> None:
    """GET `path`, read the first bytes of the answer, and drop the connection (a reset, as a closed tab)."""
    parts = urlsplit(base)
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
        first = sock.recv(4096)
        assert first.startswith(b"HTTP/1.1 200"), first[:200]
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_aborted_downloads_give_their_connections_back(bench: Bench) -> None:
    """100 downloads dropped after their first bytes (streamed pages of 5,000 parcels and files), ten at a
    time: afterwards both pools are whole, PostgreSQL shows no backend of the service still active or idle
    in a transaction, and a whole streamed page still arrives."""
    with _served(bench) as (base, app):
        page = f"/collections/{BENCH_LAYER}/items?limit=5000"
        files = [f"/collections/{BENCH_LAYER}/items?f={f}&limit=1000" for f in ("csv", "gpkg", "fgb", "kml")]
        paths = [page if i % 2 else files[i // 2 % len(files)] for i in range(100)]
        with ThreadPoolExecutor(max_workers=10) as workers:
            list(workers.map(lambda p: _abort(base, p), paths))
        _wait_for(lambda: _pool_whole(app), 10, "the pools are whole")
        assert not _other_backends(
            bench.engine, "active", "idle in transaction", "idle in transaction (aborted)"
        )
        reads: ReadPool = app.state.reads
        assert reads.get_stats()["pool_size"] <= 2 * bench.settings.pool_size
        whole = httpx.get(base + page, timeout=60)
        assert whole.status_code == 200 and whole.json()["numberReturned"] == 5000


def _frozen_mid_page(engine: Engine, sock: socket.socket) -> tuple[int, bytes] | None:
    """Stop the backend building the page as soon as it is seen running, then let it run in slices of a few
    milliseconds until the client has the response's first bytes: the backend is then stopped mid-page, its
    first rows sent and the rest not yet built. Its pid and those bytes, or None if it was never seen."""
    deadline = time.monotonic() + 10
    while not (active := _other_backends(engine, "active")):
        if time.monotonic() > deadline:
            return None
    pid = active[0][0]
    os.kill(pid, signal.SIGSTOP)
    sock.settimeout(0.05)
    try:
        while True:
            try:
                if first := sock.recv(4096):
                    return pid, first
            except TimeoutError:
                pass
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGCONT)
                return None
            os.kill(pid, signal.SIGCONT)
            time.sleep(0.003)
            os.kill(pid, signal.SIGSTOP)
    finally:
        sock.settimeout(30)


def _read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    sock.settimeout(30)
    while chunk := sock.recv(1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


class _Records(logging.Handler):
    """Keeps the records of the loggers it is added to (uvicorn's does not propagate to pytest's)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_backend_dying_mid_stream_cuts_the_page_and_returns_the_connection(bench: Bench) -> None:
    """The backend streaming a page dies after the headers went out (frozen with SIGSTOP so it is surely
    mid-page, terminated, let go): the client sees the transfer cut short (no final chunk, the document
    unfinished), never a complete-looking page; the service logs it in one line, no traceback; the connection
    goes back (the pool replaces it) and the next page arrives whole."""
    loggers = [logging.getLogger(name) for name in ("uvicorn.error", "geo_service")]
    records = _Records()
    for logger in loggers:
        logger.addHandler(records)
    try:
        _stream_cut(bench)
    finally:
        for logger in loggers:
            logger.removeHandler(records)
    assert not [r for r in records.records if r.exc_info], "a traceback was logged"
    assert any("cut short" in r.getMessage() for r in records.records if r.name == "geo_service")


def _stream_cut(bench: Bench) -> None:
    with _served(bench) as (base, app):
        parts = urlsplit(base)
        path = f"/collections/{BENCH_LAYER}/items?limit={BENCH_ROWS}"
        for _attempt in range(5):
            with socket.create_connection((parts.hostname, parts.port)) as sock:
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
                frozen = _frozen_mid_page(bench.engine, sock)
                if frozen is None:
                    _read_until_closed(sock)
                    continue  # the page was produced before its backend was seen: try again
                pid, first = frozen
                assert first.startswith(b"HTTP/1.1 200"), first[:200]
                try:
                    with bench.engine.connect() as conn:
                        assert conn.scalar(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
                finally:
                    os.kill(pid, signal.SIGCONT)
                rest = first + _read_until_closed(sock)
                if rest.endswith(b"0\r\n\r\n"):
                    continue  # every row had left the backend before it was stopped: the page is whole
                break
        else:
            pytest.fail("the page was always produced before its backend could be stopped")
        assert b"\r\n\r\n" in rest
        assert b'"numberReturned"' not in rest  # the page's end never came
        _wait_for(lambda: _pool_whole(app), 10, "the pool is whole")
        whole = httpx.get(base + path, timeout=60)
        assert whole.status_code == 200 and whole.json()["numberReturned"] == BENCH_ROWS
