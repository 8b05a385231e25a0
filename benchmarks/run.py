"""`python -m benchmarks.run`: the service, the raw SQL it runs and tipg, in one interleaved run on the
same database and rows; writes benchmarks/RESULTS.md (and every number to benchmarks/output/results.json).

See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import uvicorn
from sqlalchemy import Engine

from benchmarks import database, report
from benchmarks.loadgen import (
    Sample,
    ensure_wrk,
    execute,
    open_pool,
    pgbench_path,
    pgbench_scripts,
    run_http,
    run_pgbench,
    run_sql,
    run_wrk,
)
from benchmarks.report import Cell, RowCountResult
from benchmarks.servers import OUTPUT, Server, ensure_tipg, service_server, tipg_server
from benchmarks.workloads import DEEP_OFFSET, SERVICE_ITEMS, Dataset, Workload, build_workloads
from geo_service.bench import BENCH_LAYER
from geo_service.catalog import read_bench_layer
from geo_service.db.engine import sync_engine
from geo_service.settings import PROJECT_ROOT, Settings

DEFAULT_DURATION = 10.0
RESULTS = PROJECT_ROOT / "benchmarks" / "RESULTS.md"
ALL_TARGETS = ("service", "raw", "tipg", "tipg-all")
ITEM_WORKLOADS = ("items-100", "items-1000", "items-10000", "bbox-2km", "deep-page")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument(
        "--rows",
        type=int,
        action="append",
        help="row count to measure on (repeatable; default 100000; e.g. --rows 100000 --rows 1000000)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=DEFAULT_DURATION,
        help="seconds per workload, concurrency and target",
    )
    parser.add_argument("--rounds", type=int, default=2, help="the duration is split over this many rounds")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of unmeasured warm-up per target")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16], help="concurrency levels")
    parser.add_argument("--workloads", nargs="+", help="run only these workloads (e.g. items-100 tile-z14)")
    parser.add_argument("--targets", nargs="+", choices=ALL_TARGETS, default=list(ALL_TARGETS))
    parser.add_argument("--database-url", help="PostGIS to use (default: DATABASE_URL, else embedded)")
    parser.add_argument("--database", default="jxplan_bench", help="database name on the embedded cluster")
    parser.add_argument("--reload", action="store_true", help="regenerate the rows even if already there")
    parser.add_argument("--reinstall-tipg", action="store_true", help="recreate benchmarks/.venv-tipg")
    parser.add_argument("--output", default=str(RESULTS), help="where to write the Markdown results")
    parser.add_argument(
        "--client",
        choices=("auto", "wrk", "httpx"),
        default="auto",
        help="HTTP load generator: wrk (apt-get installs it if missing), httpx, or auto (wrk if possible)",
    )
    parser.add_argument(
        "--raw-client",
        choices=("auto", "pgbench", "psycopg"),
        default="auto",
        help="SQL load generator of the raw target: pgbench, psycopg, or auto (pgbench if installed)",
    )
    parser.add_argument(
        "--tile-cache",
        type=int,
        default=0,
        metavar="MB",
        help="the service's tile cache (JXPLAN_TILE_CACHE_MB); 0, the default, cuts every tile as tipg does",
    )
    parser.add_argument("--note", action="append", default=[], help="a line to put at the top of the results")
    args = parser.parse_args(argv)
    args.rows = args.rows or [100_000]
    return args


def _service_cursor(base_url: str, offset: int) -> str | None:
    """The service's own `next` cursor after the first `offset` features, by following its next links."""
    path: str | None = f"{SERVICE_ITEMS}?limit={min(offset, 10_000)}&f=json"
    fetched = 0
    cursor: str | None = None
    with httpx.Client(base_url=base_url, timeout=300) as client:
        while fetched < offset and path is not None:
            try:
                page = client.get(path).json()
                fetched += page["numberReturned"]
                nexts = [link["href"] for link in page["links"] if link["rel"] == "next"]
                cursor = parse_qs(urlsplit(nexts[0]).query)["cursor"][0]
            except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError):
                return None  # no pages, or no next link: the deep page is skipped for the service
            path = f"{SERVICE_ITEMS}?limit={min(offset - fetched, 10_000)}&f=json&cursor={cursor}"
    return cursor if fetched == offset else None


def _ids_http(body: bytes) -> list[Any] | None:
    try:
        return [f["id"] for f in json.loads(body)["features"]]
    except (ValueError, KeyError, TypeError):
        return None


def _ids_raw(rows: list[tuple[Any, ...]]) -> list[Any] | None:
    """The feature ids in the text values of a page statement's rows (chunks of comma-joined features)."""
    ids: list[Any] = []
    for value in (v for row in rows for v in row):
        if not isinstance(value, str):
            continue
        try:
            parsed = json.loads("[" + value + "]")
        except ValueError:
            continue
        ids += [f["id"] for f in parsed if isinstance(f, dict) and f.get("type") == "Feature"]
    return ids


class Runner:
    """Runs the workloads of one row count against the running targets."""

    def __init__(self, args: argparse.Namespace, servers: dict[str, Server], conninfo: str) -> None:
        self.args = args
        self.servers = servers
        self.conninfo = conninfo
        self.wrk: str | None = getattr(args, "wrk", None)
        self.pgbench: str | None = getattr(args, "pgbench", None)
        self.scripts: dict[str, tuple[list[str], float]] = {}  # workload → pgbench scripts, mean bytes

    async def _probe(self, workload: Workload, pool: Any, result: RowCountResult) -> list[str]:
        """One request per target: who answers (a 404 skips the workload for that target), and whether
        the item pages list the same features."""
        active: list[str] = []
        ids: dict[str, list[Any] | None] = {}
        for target in self.args.targets:
            if target in workload.skipped:
                result.skipped.append(f"`{workload.key}` on {target}: {workload.skipped[target]}")
                continue
            if target == "raw":
                if workload.raw is None:
                    continue
                try:
                    rows = await execute(pool, workload.raw[0])
                except Exception as exc:  # reported; the other targets still run
                    result.skipped.append(f"`{workload.key}` on raw: the statement failed ({exc})")
                    continue
                if self.pgbench is not None:
                    try:
                        self.scripts[workload.key] = await pgbench_scripts(pool, workload.raw)
                    except ValueError as exc:
                        result.skipped.append(f"`{workload.key}` on raw: no pgbench script ({exc})")
                        continue
                ids[target] = _ids_raw(rows)
                active.append(target)
                continue
            paths = workload.paths(target)
            if not paths:
                continue
            async with httpx.AsyncClient(base_url=self.servers[target].base_url, timeout=300) as client:
                response = await client.get(paths[0])
            if response.status_code == 404:
                result.skipped.append(
                    f"`{workload.key}` on {target}: {paths[0].split('?')[0]} answers 404 (endpoint not there)"
                )
                continue
            if response.status_code not in (200, 204):
                result.skipped.append(
                    f"`{workload.key}` on {target}: HTTP {response.status_code} {response.text[:200]!r}"
                )
                continue
            ids[target] = _ids_http(response.content)
            active.append(target)
        if workload.key in ITEM_WORKLOADS and len(ids) > 1:
            lists = {k: v for k, v in ids.items() if v is not None}
            first = next(iter(lists.values()), None)
            same = len(lists) == len(ids) and all(v == first for v in lists.values())
            counts = ", ".join(f"{k} {len(v) if v is not None else '?'}" for k, v in ids.items())
            verdict = "the same features in the same order" if same else "DIFFERENT features"
            result.notes.append(f"`{workload.key}`: first request gives {verdict} ({counts}).")
        return active

    async def _measure(
        self, target: str, workload: Workload, pool: Any, concurrency: int, seconds: float
    ) -> Sample:
        if target == "raw":
            assert workload.raw is not None
            if self.pgbench is not None:
                scripts, mean_bytes = self.scripts[workload.key]
                return await run_pgbench(
                    self.pgbench, self.conninfo, scripts, mean_bytes, concurrency, seconds
                )
            return await run_sql(pool, workload.raw, concurrency, seconds)
        server = self.servers[target]
        paths = workload.paths(target)
        assert paths
        if self.wrk is not None:
            return await run_wrk(self.wrk, server.base_url, paths, concurrency, seconds, server.pid)
        return await run_http(server.base_url, paths, concurrency, seconds, server.pid)

    async def run(self, workloads: list[Workload], result: RowCountResult) -> None:
        """Every workload × concurrency, the targets interleaved: warm-up each, then `rounds` rounds of
        duration/rounds seconds per target, the order reversed every other round."""
        pool = await open_pool(self.conninfo, max(self.args.concurrency))
        try:
            for workload in workloads:
                active = await self._probe(workload, pool, result)
                for concurrency in self.args.concurrency:
                    cell = Cell(workload.key, concurrency, {t: Sample() for t in active})
                    for target in active:
                        await self._measure(target, workload, pool, concurrency, self.args.warmup)
                    for round_ in range(self.args.rounds):
                        order = active if round_ % 2 == 0 else active[::-1]
                        for target in order:
                            seconds = self.args.duration / self.args.rounds
                            sample = await self._measure(target, workload, pool, concurrency, seconds)
                            cell.samples[target].add(sample)
                    result.cells.append(cell)
                    line = ", ".join(
                        f"{t} {s.rate:,.0f} req/s p50 {s.percentile(50) * 1000:.1f} ms"
                        for t, s in cell.samples.items()
                    )
                    print(f"  {workload.key:<11} c={concurrency:<3} {line}", flush=True)
                    for target, sample in cell.samples.items():
                        if sample.errors:
                            result.notes.append(
                                f"`{workload.key}` c={concurrency} on {target}: {sample.errors} errors,"
                                f" e.g. {sample.first_error}"
                            )
        finally:
            await pool.close()


@contextlib.contextmanager
def _running(servers: dict[str, Server]) -> Iterator[dict[str, Server]]:
    started: list[Server] = []
    try:
        for server in {id(s): s for s in servers.values()}.values():  # tipg-all is tipg's server
            print(f"Starting {server.name} on {server.base_url} …", flush=True)
            server.start()
            started.append(server)
        yield servers
    finally:
        for server in started:
            server.stop()


def run_row_count(
    args: argparse.Namespace, target: database.Target, engine: Engine, rows: int
) -> RowCountResult:
    """Prepare `rows` parcels and tipg's copy, start the servers, measure, stop them."""
    layer = read_bench_layer(Settings().layers_dir, BENCH_LAYER)
    print(f"\n== {rows:,} rows ==", flush=True)
    load_seconds = database.prepare_rows(target.url, engine, layer, rows, reload=args.reload)
    print(
        f"bench_parcels: generated in {load_seconds:.1f} s"
        if load_seconds is not None
        else "bench_parcels: already loaded",
        flush=True,
    )
    servers: dict[str, Server] = {"service": service_server(target.url, args.tile_cache)}
    if {"tipg", "tipg-all"} & set(args.targets):
        if database.prepare_tipg_table(engine):
            print(f"{database.TIPG_TABLE}: rebuilt for tipg", flush=True)
        servers["tipg"] = tipg_server(target.libpq_url)
        servers["tipg-all"] = servers["tipg"]  # the same server, asked for every column
    offset = min(DEEP_OFFSET, rows // 2)
    with _running(servers):
        dataset = Dataset(
            layer=layer,
            rows=rows,
            sample_ids=database.sample_ids(engine, 64),
            deep_after_id=database.id_at(engine, offset),
            deep_cursor=_service_cursor(servers["service"].base_url, offset),
        )
        workloads = build_workloads(dataset)
        if args.workloads:
            workloads = [w for w in workloads if w.key in args.workloads]
        result = RowCountResult(rows, load_seconds, {w.key: w.description for w in workloads})
        asyncio.run(Runner(args, servers, target.libpq_url).run(workloads, result))
        result.lifetime_rss = {name: server.peak_rss() for name, server in servers.items()}
    return result


def _wrk_version(wrk: str) -> str:
    done = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    first = (done.stdout or done.stderr).strip().splitlines()
    return first[0].split(" [")[0] if first else "wrk"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and write the results."""
    args = parse_args(argv)
    target = database.resolve(args.database_url, args.database)
    print(f"Database: {target.origin}", flush=True)
    engine = sync_engine(target.url)
    versions: dict[str, str] = {}
    try:
        versions = database.server_versions(engine)
        versions["uvicorn"] = f"{uvicorn.__version__} (one process per server, uvloop and httptools)"
        args.wrk = None if args.client == "httpx" else ensure_wrk()
        if args.client == "wrk" and args.wrk is None:
            raise SystemExit("wrk is not installed and could not be installed: use --client httpx")
        if args.wrk is not None:
            versions["wrk"] = _wrk_version(args.wrk)
        args.pgbench = None if args.raw_client == "psycopg" else pgbench_path()
        if args.raw_client == "pgbench" and args.pgbench is None:
            raise SystemExit("pgbench is not installed (it comes with PostgreSQL): use --raw-client psycopg")
        if args.pgbench is not None:
            done = subprocess.run([args.pgbench, "--version"], capture_output=True, text=True, check=False)
            versions["pgbench"] = done.stdout.strip() or "pgbench"
        if {"tipg", "tipg-all"} & set(args.targets):
            versions["tipg"] = ensure_tipg(reinstall=args.reinstall_tipg)
        results = [run_row_count(args, target, engine, rows) for rows in args.rows]
    finally:
        engine.dispose()
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    notes = list(args.note)
    if args.duration < DEFAULT_DURATION:
        notes.insert(
            0,
            f"**Short run**: {args.duration:g} s per workload, concurrency and target (the default is"
            f" {DEFAULT_DURATION:g} s). Indicative numbers only.",
        )
    settings = {
        "Database": target.origin,
        "Duration": f"{args.duration:g} s per workload, concurrency and target, in {args.rounds} rounds"
        f" (target order reversed every other round), after {args.warmup:g} s of warm-up each",
        "Concurrency": ", ".join(map(str, args.concurrency)),
        "Service": "tile cache "
        + (
            f"on ({args.tile_cache} MiB): a tile repeated within its layer's version comes from memory"
            if args.tile_cache
            else "off (`JXPLAN_TILE_CACHE_MB=0`): every tile is cut by PostGIS, as tipg cuts it"
        ),
        "HTTP": (
            f"wrk, {min(2, max(args.concurrency))} threads and one keep-alive connection per concurrent"
            " request (p50/p99 from its latency histogram; bytes/response: each request's body fetched once)"
            if args.wrk
            else "httpx.AsyncClient, keep-alive"
        )
        + ", `Accept-Encoding: identity` (neither server compresses)",
        "Load generator": ("wrk" if args.wrk else "the harness process itself (httpx)")
        + ", on the same machine as the servers and PostgreSQL; the raw target: "
        + (
            f"pgbench, {min(2, max(args.concurrency))} threads, one connection per concurrent statement,"
            " `-M prepared`, one script per statement drawn at random with equal weights"
            " (p50/p99 from its per-transaction log; bytes/response: each statement's result fetched once)"
            if args.pgbench
            else "psycopg in the harness process"
        ),
    }
    text = report.render(
        results, date=date, machine_info=report.machine(), versions=versions, settings=settings, notes=notes
    )
    path = Path(args.output)
    path.write_text(text, encoding="utf-8")
    OUTPUT.mkdir(parents=True, exist_ok=True)
    numbers = OUTPUT / f"{path.stem.lower()}.json"
    numbers.write_text(
        json.dumps(report.as_json(results, date=date, versions=versions, settings=settings), indent=2),
        encoding="utf-8",
    )
    print(f"\nWrote {path} and {numbers}.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
