"""The load generators: wrk (HTTP) and pgbench (SQL), both C, or N concurrent asyncio workers (HTTP with
httpx, or SQL through a psycopg pool), for a fixed time, cycling through a workload's requests; latencies,
bytes and peak memory."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from psycopg import AsyncClientCursor, AsyncConnection
from psycopg_pool import AsyncConnectionPool

from benchmarks.servers import rss_bytes
from benchmarks.workloads import RawQuery
from geo_service.db.embedded import ClusterError, find_pg_bin
from geo_service.db.engine import READ_SETTINGS

OK_STATUS = (200, 204)  # 204: an empty tile


def nearest_rank(values: Sequence[float], p: float) -> float:
    """The value at percentile p (nearest rank); NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


@dataclass
class Sample:
    """What one target did in one workload at one concurrency (all rounds together)."""

    latencies: list[float] = field(default_factory=list)  # seconds, of each completed request
    bytes: int = 0
    errors: int = 0
    elapsed: float = 0.0
    peak_rss: int | None = None
    first_error: str | None = None

    def add(self, other: Sample) -> None:
        """Merge another round into this one."""
        self.latencies += other.latencies
        self.bytes += other.bytes
        self.errors += other.errors
        self.elapsed += other.elapsed
        if other.peak_rss is not None:
            self.peak_rss = max(self.peak_rss or 0, other.peak_rss)
        self.first_error = self.first_error or other.first_error

    @property
    def requests(self) -> int:
        """Completed requests, errors included."""
        return len(self.latencies)

    @property
    def rate(self) -> float:
        """Successful requests per second."""
        return (self.requests - self.errors) / self.elapsed if self.elapsed else 0.0

    def percentile(self, p: float) -> float:
        """The latency (seconds) at percentile p, nearest rank."""
        return nearest_rank(self.latencies, p)

    @property
    def mean_bytes(self) -> float:
        """Mean response size in bytes."""
        ok = self.requests - self.errors
        return self.bytes / ok if ok else math.nan

    def as_dict(self) -> dict[str, Any]:
        """Summary for the JSON results file."""
        return {
            "requests": self.requests,
            "errors": self.errors,
            "elapsed_s": self.elapsed,
            "req_per_s": self.rate,
            "p50_ms": self.percentile(50) * 1000,
            "p99_ms": self.percentile(99) * 1000,
            "bytes_per_response": self.mean_bytes,
            "peak_rss_bytes": self.peak_rss,
            "first_error": self.first_error,
        }


Call = Callable[[int], Awaitable[tuple[bool, int, str | None]]]  # request number → ok, bytes, error


async def _sample_rss(pid: int, sample: Sample, stop: asyncio.Event) -> None:
    while not stop.is_set():
        rss = rss_bytes(pid)
        if rss is not None:
            sample.peak_rss = max(sample.peak_rss or 0, rss)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)


async def _drive(call: Call, concurrency: int, duration: float, pid: int | None) -> Sample:
    """`concurrency` workers calling `call` until `duration` seconds have passed."""
    sample = Sample()
    counter = itertools.count()
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample_rss(pid, sample, stop)) if pid is not None else None
    start = time.perf_counter()
    deadline = start + duration
    last_end = start

    async def worker() -> None:
        nonlocal last_end
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            try:
                ok, size, error = await call(next(counter))
            except Exception as exc:  # counted and reported: the run goes on
                ok, size, error = False, 0, f"{exc.__class__.__name__}: {exc}"
            ended = time.perf_counter()
            last_end = max(last_end, ended)
            sample.latencies.append(ended - began)
            if ok:
                sample.bytes += size
            else:
                sample.errors += 1
                sample.first_error = sample.first_error or error

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    sample.elapsed = last_end - start
    stop.set()
    if sampler is not None:
        await sampler
    return sample


async def run_http(
    base_url: str, paths: Sequence[str], concurrency: int, duration: float, pid: int | None
) -> Sample:
    """GET the paths in turn (a keep-alive connection per worker, no compression asked for)."""
    async with _client(base_url, concurrency) as client:

        async def call(n: int) -> tuple[bool, int, str | None]:
            response = await client.get(paths[n % len(paths)])
            body = response.content
            if response.status_code in OK_STATUS:
                return True, len(body), None
            return False, 0, f"HTTP {response.status_code}: {body[:200]!r}"

        return await _drive(call, concurrency, duration, pid)


@dataclass(frozen=True)
class PostRequest:
    """One POST: its path, its body (sent as it is) and its headers (Content-Type among them)."""

    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def _client(base_url: str, concurrency: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Accept-Encoding": "identity"}
    return httpx.AsyncClient(base_url=base_url, limits=limits, headers=headers, timeout=120)


async def run_http_post(
    base_url: str, requests: Sequence[PostRequest], concurrency: int, duration: float, pid: int | None
) -> Sample:
    """POST the requests in turn (a keep-alive connection per worker, no compression asked for), each
    response's whole body read; a 200 counts as a success."""
    async with _client(base_url, concurrency) as client:

        async def call(n: int) -> tuple[bool, int, str | None]:
            request = requests[n % len(requests)]
            response = await client.post(request.path, content=request.body, headers=request.headers)
            body = response.content
            if response.status_code == 200:
                return True, len(body), None
            return False, 0, f"HTTP {response.status_code}: {body[:200]!r}"

        return await _drive(call, concurrency, duration, pid)


async def run_http_jobs(
    base_url: str,
    requests: Sequence[PostRequest],
    concurrency: int,
    duration: float,
    pid: int | None,
    poll_s: float = 0.01,
) -> Sample:
    """Asynchronous round trips, each timed whole: POST with `Prefer: respond-async` (201 and a job),
    GET /jobs/{id} every `poll_s` until the job is successful, then GET its results (bytes: the results)."""
    async with _client(base_url, concurrency) as client:

        async def call(n: int) -> tuple[bool, int, str | None]:
            request = requests[n % len(requests)]
            headers = {**request.headers, "Prefer": "respond-async"}
            created = await client.post(request.path, content=request.body, headers=headers)
            if created.status_code != 201:
                return False, 0, f"POST HTTP {created.status_code}: {created.content[:200]!r}"
            job = "/jobs/" + str(created.json()["jobID"])
            while True:
                polled = await client.get(job)
                if polled.status_code != 200:
                    return False, 0, f"GET {job} HTTP {polled.status_code}: {polled.content[:200]!r}"
                status = polled.json().get("status")
                if status == "successful":
                    break
                if status not in ("accepted", "running"):
                    return False, 0, f"job {status}: {polled.content[:200]!r}"
                await asyncio.sleep(poll_s)
            results = await client.get(job + "/results")
            if results.status_code != 200:
                return False, 0, f"GET results HTTP {results.status_code}: {results.content[:200]!r}"
            return True, len(results.content), None

        return await _drive(call, concurrency, duration, pid)


def _size(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, bytes | bytearray | memoryview):
        return len(value)
    return 0


async def _configure(conn: AsyncConnection[Any]) -> None:
    # the session settings of the service's read pool, so raw runs what it runs
    for setting in READ_SETTINGS:
        await conn.execute(f"SET {setting}")


async def open_pool(conninfo: str, size: int) -> AsyncConnectionPool[AsyncConnection[Any]]:
    """A pool of `size` autocommit connections, all open."""
    pool: AsyncConnectionPool[AsyncConnection[Any]] = AsyncConnectionPool(
        conninfo, min_size=size, max_size=size, kwargs={"autocommit": True}, open=False, configure=_configure
    )
    await pool.open(wait=True)
    return pool


async def execute(pool: AsyncConnectionPool[AsyncConnection[Any]], query: RawQuery) -> list[tuple[Any, ...]]:
    """Run one statement and fetch all its rows (a page: chunks of features, then its end)."""
    async with pool.connection() as conn:
        cursor = await conn.execute(query.sql, query.params)
        return await cursor.fetchall()


async def run_sql(
    pool: AsyncConnectionPool[AsyncConnection[Any]],
    queries: Sequence[RawQuery],
    concurrency: int,
    duration: float,
) -> Sample:
    """Run the statements in turn and fetch each result; bytes are those of its text and bytea values."""

    async def call(n: int) -> tuple[bool, int, str | None]:
        rows = await execute(pool, queries[n % len(queries)])
        return True, sum(_size(v) for row in rows for v in row), None

    return await _drive(call, concurrency, duration, None)


# -- wrk: a load generator in C, so that the client does not cap what the servers show ----------------------

WRK_SCRIPT = """
local paths = {%s}
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[(n - 1) %% #paths + 1], {["Accept-Encoding"] = "identity"})
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("SUMMARY %%d %%d %%d %%d\\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status))
  for i = 1, #latency do
    local value, count = latency(i)
    io.write(string.format("LATENCY %%d %%d\\n", value, count))
  end
end
"""


def wrk_path() -> str | None:
    """The `wrk` executable, or None."""
    return shutil.which("wrk")


def ensure_wrk() -> str | None:
    """`wrk`, installed with apt-get (Debian's package) when missing and this process may; None otherwise."""
    if (found := wrk_path()) is not None:
        return found
    if shutil.which("apt-get") is None:
        return None
    command = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"]
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            return None
        command = ["sudo", "-n", *command]
    print("Installing wrk with apt-get …", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(command, capture_output=True, env=env, check=False)
    if done.returncode != 0:
        print(f"Could not install wrk ({done.stderr.decode(errors='replace').strip()[-200:]}); using httpx.")
    return wrk_path()


def body_sizes(base_url: str, paths: Sequence[str]) -> float:
    """Mean body size of the paths, each asked once (wrk counts headers too)."""
    sizes = []
    with httpx.Client(base_url=base_url, headers={"Accept-Encoding": "identity"}, timeout=120) as client:
        for path in paths:
            response = client.get(path)
            if response.status_code in OK_STATUS:
                sizes.append(len(response.content))
    return sum(sizes) / len(sizes) if sizes else 0.0


async def run_wrk(
    wrk: str, base_url: str, paths: Sequence[str], concurrency: int, duration: float, pid: int | None
) -> Sample:
    """GET the paths in turn with wrk (`concurrency` keep-alive connections on up to two threads); the
    latency of every request comes back as wrk's histogram, so rounds merge exactly."""
    quoted = ", ".join(json.dumps(p) for p in paths)
    return await _wrk(
        wrk, base_url, WRK_SCRIPT % quoted, body_sizes(base_url, paths), concurrency, duration, pid
    )


WRK_POST_SCRIPT = """
local posts = {%s}
local n = 0
request = function()
  n = n + 1
  local post = posts[(n - 1) %% #posts + 1]
  return wrk.format("POST", post[1], post[2], post[3])
end
""" + WRK_SCRIPT.split("end\n", 1)[1]  # the same `done` as for GETs


def lua_string(value: str | bytes) -> str:
    """A Lua string literal of `value`'s bytes (every byte but plain ASCII letters, digits and a few marks as
    a decimal escape: LuaJIT, wrk's Lua, has no \\u escapes)."""
    data = value.encode() if isinstance(value, str) else value
    plain = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 /.,:-_[]{}"
    return '"' + "".join(chr(b) if b in plain else f"\\{b:03d}" for b in data) + '"'


async def run_wrk_post(
    wrk: str,
    base_url: str,
    requests: Sequence[PostRequest],
    concurrency: int,
    duration: float,
    pid: int | None,
    mean_body: float,
) -> Sample:
    """POST the requests in turn with wrk, as `run_wrk` GETs (keep-alive, `Accept-Encoding: identity`, every
    body read by wrk); a status of 400 or more is an error. `mean_body`: the mean size of the answers'
    bodies (wrk counts headers too), as measured once by the caller."""
    posts = []
    for request in requests:
        headers = {"Accept-Encoding": "identity", **request.headers}
        fields = ", ".join(f"[{lua_string(k)}] = {lua_string(v)}" for k, v in headers.items())
        posts.append(f"{{{lua_string(request.path)}, {{{fields}}}, {lua_string(request.body)}}}")
    script = WRK_POST_SCRIPT % ", ".join(posts)
    return await _wrk(wrk, base_url, script, mean_body, concurrency, duration, pid)


async def _wrk(
    wrk: str, base_url: str, lua: str, mean_body: float, concurrency: int, duration: float, pid: int | None
) -> Sample:
    """Run wrk with the Lua script `lua` (it makes the requests and prints the summary and histogram)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua)
    sample = Sample()
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample_rss(pid, sample, stop)) if pid is not None else None
    try:
        process = await asyncio.create_subprocess_exec(
            wrk,
            f"-t{min(2, concurrency)}",
            f"-c{concurrency}",
            f"-d{max(1, round(duration))}s",
            "--timeout",
            "120s",
            "-s",
            script.name,
            base_url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
    finally:
        stop.set()
        if sampler is not None:
            await sampler
        os.unlink(script.name)
    total: int | None = None
    failed = 0
    for line in out.decode().splitlines():
        fields = line.split()
        if fields[:1] == ["SUMMARY"]:
            total, micros, broken, status = map(int, fields[1:])
            sample.elapsed = micros / 1e6 if total else duration
            failed = broken + status
        elif fields[:1] == ["LATENCY"]:
            sample.latencies += [int(fields[1]) / 1e6] * int(fields[2])
    if total is None:  # no summary at all (0 requests is a result: a slow target in a short run)
        raise RuntimeError(f"wrk gave no results: {err.decode(errors='replace').strip()[-300:]}")
    # wrk's histogram holds completed requests; socket errors are counted apart
    sample.errors = failed
    sample.bytes = round(mean_body * (len(sample.latencies) - min(failed, len(sample.latencies))))
    if failed:
        sample.first_error = f"wrk: {failed} failed requests (socket errors or HTTP status >= 400)"
    return sample


# -- pgbench: PostgreSQL's own load generator, in C, for the raw statements ----------------------------------

# pgbench reads `:name` in a script as a variable; a rendered statement must hold none (`::` casts are fine)
_PGBENCH_VARIABLE = re.compile(r"(?<!:):(?!:)[A-Za-z0-9_\x80-\uffff]")


def pgbench_path() -> str | None:
    """`pgbench` of the PostgreSQL the embedded cluster uses (its bin directory), else the one on PATH."""
    try:
        found = find_pg_bin() / "pgbench"
    except ClusterError:
        return shutil.which("pgbench")
    return str(found) if found.exists() else shutil.which("pgbench")


async def pgbench_scripts(
    pool: AsyncConnectionPool[AsyncConnection[Any]], queries: Sequence[RawQuery]
) -> tuple[list[str], float]:
    """Each statement with its parameters rendered as SQL literals by psycopg (one pgbench script each),
    and the mean bytes of the text and bytea values of its result (each run once)."""
    scripts, sizes = [], []
    async with pool.connection() as conn:
        for query in queries:
            rendered = AsyncClientCursor(conn).mogrify(query.sql, query.params)
            if _PGBENCH_VARIABLE.search(rendered):
                raise ValueError("a rendered statement holds `:name`, which pgbench would read as a variable")
            scripts.append(rendered.strip().rstrip(";") + ";\n")
            cursor = await conn.execute(query.sql, query.params)
            sizes.append(sum(_size(v) for row in await cursor.fetchall() for v in row))
    return scripts, sum(sizes) / len(sizes)


async def run_pgbench(
    pgbench: str, conninfo: str, scripts: Sequence[str], mean_bytes: float, concurrency: int, duration: float
) -> Sample:
    """Run the scripts with pgbench: `concurrency` connections on up to two threads, each running its next
    statement as soon as the previous one is answered, the script drawn at random with equal weights, in
    the extended protocol with prepared statements (`-M prepared`); latencies from its per-transaction log."""
    sample = Sample()
    with tempfile.TemporaryDirectory() as scratch:
        files = []
        for i, script in enumerate(scripts):
            path = os.path.join(scratch, f"statement{i}.sql")
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(script)
            files += ["-f", f"{path}@1"]
        seconds = max(1, round(duration))
        options = " ".join(f"-c {setting.replace(' ', '')}" for setting in READ_SETTINGS)
        process = await asyncio.create_subprocess_exec(
            pgbench,
            "-n",
            "-M",
            "prepared",
            f"-c{concurrency}",
            f"-j{min(2, concurrency)}",
            f"-T{seconds}",
            "-l",
            f"--log-prefix={os.path.join(scratch, 'log')}",
            *files,
            conninfo,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PGOPTIONS": options},
        )
        out, err = await process.communicate()
        for name in os.listdir(scratch):
            if not name.startswith("log."):
                continue
            with open(os.path.join(scratch, name), encoding="utf-8") as log:
                for line in log:
                    # client_id transaction_no time script_no time_epoch time_us: time is the latency in µs
                    fields = line.split()
                    if len(fields) < 3:
                        continue
                    if fields[2].isdigit():
                        sample.latencies.append(int(fields[2]) / 1e6)
                    else:  # "failed" (or "skipped"): counted, with no latency of its own
                        sample.latencies.append(0.0)
                        sample.errors += 1
    sample.elapsed = float(seconds)
    if process.returncode != 0:
        message = err.decode(errors="replace").strip()[-300:] or out.decode(errors="replace")[-300:]
        sample.first_error = f"pgbench exited with {process.returncode}: {message}"
        sample.errors += 1
        sample.latencies.append(0.0)
    sample.bytes = round(mean_bytes * (sample.requests - sample.errors))
    return sample
