"""`python -m benchmarks.analysis`: the planning analysis (OGC API – Processes) over HTTP against the very
statement the service runs for it, in one interleaved run on the benchmark's database: site checks on the
plan layers and on the generated parcels, the county summary (JSON and CSV), nearby items, and an
asynchronous job's round trip. Writes benchmarks/RESULTS-analysis.md (and every number to
benchmarks/output/results-analysis.json).

See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from benchmarks import database, report
from benchmarks.loadgen import (
    PostRequest,
    Sample,
    ensure_wrk,
    execute,
    open_pool,
    run_http_jobs,
    run_http_post,
    run_sql,
    run_wrk_post,
)
from benchmarks.servers import OUTPUT, service_server
from benchmarks.workloads import RawQuery
from geo_service.analysis.processes import build_processes, prepare
from geo_service.bench import BENCH_LAYER
from geo_service.catalog import Catalog, load_catalog, read_bench_layer
from geo_service.db.engine import sync_engine
from geo_service.loader import load
from geo_service.settings import PROJECT_ROOT, Settings

RESULTS = PROJECT_ROOT / "benchmarks" / "RESULTS-analysis.md"
DEFAULT_DURATION = 10.0
JOBS_PER_CLIENT = 100_000  # JXPLAN_JOBS_PER_CLIENT for the run: every job comes from 127.0.0.1
JSON_TYPE = {"Content-Type": "application/json"}
WRK_BELOW_S = 0.1  # --client auto: wrk for workloads answering faster than this, httpx for slower ones

# 嘉兴南站 (the station of the plan's rail_stations layer), and the draft site of docs/analysis.md next to it
SOUTH_STATION = (120.792499, 30.695424)
DRAFT_SITE = {
    "type": "Polygon",
    "coordinates": [
        [[120.778, 30.6964], [120.7905, 30.6964], [120.7905, 30.7064], [120.778, 30.7064], [120.778, 30.6964]]
    ],
}
# a 2 km × 2 km site in the middle of the generated parcels' region (geo_service.bench.REGION)
PARCELS_CENTRE = (120.75, 30.75)
PARCELS_SITE_M = 2000.0
PARCELS_LIMIT = 5000


def square(centre: tuple[float, float], side_m: float) -> dict[str, Any]:
    """A GeoJSON polygon of about `side_m` × `side_m` metres centred on (lon, lat)."""
    lon, lat = centre
    half_lat = side_m / 2 / 111_320.0
    half_lon = side_m / 2 / (111_320.0 * math.cos(math.radians(lat)))
    w, e, s, n = lon - half_lon, lon + half_lon, lat - half_lat, lat + half_lat
    ring = [[round(w, 6), round(s, 6)], [round(e, 6), round(s, 6)], [round(e, 6), round(n, 6)]]
    ring += [[round(w, 6), round(n, 6)], [round(w, 6), round(s, 6)]]
    return {"type": "Polygon", "coordinates": [ring]}


@dataclass(frozen=True)
class AnalysisWorkload:
    """One execution: the process, its execute request's inputs, and what it is."""

    key: str
    process: str
    inputs: dict[str, Any]
    description: str

    @property
    def request(self) -> PostRequest:
        """The HTTP request: POST /processes/{id}/execution with {"inputs": …} (synchronous, raw answer)."""
        body = json.dumps({"inputs": self.inputs}, ensure_ascii=False).encode()
        return PostRequest(f"/processes/{self.process}/execution", body, dict(JSON_TYPE))


def build_workloads() -> list[AnalysisWorkload]:
    """The workloads, in the order measured (`job`, the asynchronous one, is `site-check-plan` as a job)."""
    station = {"type": "Point", "coordinates": list(SOUTH_STATION)}
    return [
        AnalysisWorkload(
            "site-check-plan",
            "site-check",
            {"site": DRAFT_SITE},
            "site-check of the draft site of docs/analysis.md (≈ 1.2 km × 1.1 km north-west of 嘉兴南站)"
            " against the plan layers (its default layers)",
        ),
        AnalysisWorkload(
            "site-check-parcels",
            "site-check",
            {
                "site": square(PARCELS_CENTRE, PARCELS_SITE_M),
                "layers": [BENCH_LAYER],
                "limit": PARCELS_LIMIT,
            },
            f"site-check of a {PARCELS_SITE_M / 1000:g} km × {PARCELS_SITE_M / 1000:g} km site centred on"
            f" {PARCELS_CENTRE[0]}, {PARCELS_CENTRE[1]} against `{BENCH_LAYER}` (`limit` {PARCELS_LIMIT})",
        ),
        AnalysisWorkload(
            "county-summary", "county-summary", {}, "county-summary as JSON (city and seven counties)"
        ),
        AnalysisWorkload("county-summary-csv", "county-summary", {"format": "csv"}, "county-summary as CSV"),
        AnalysisWorkload(
            "nearby",
            "nearby",
            {"site": station, "distance": 2000},
            f"nearby: plan items within 2,000 m of 嘉兴南站 ({SOUTH_STATION[0]}, {SOUTH_STATION[1]})",
        ),
    ]


SYNC_KEYS = tuple(w.key for w in build_workloads())
JOB_KEY = "job"
JOB_SOURCE = "site-check-plan"  # what the job runs
WORKLOAD_KEYS = (*SYNC_KEYS, JOB_KEY)


def raw_query(workload: AnalysisWorkload, catalog: Catalog, base: str) -> RawQuery:
    """The statement and parameters the service runs for the workload: its own prepare(...).sql, in
    psycopg's form (as the service's read pool gets it); `base` is the service's base URL (for hrefs)."""
    processes = build_processes(catalog)
    prepared = prepare(processes[workload.process], workload.inputs, catalog, base)
    sql, params = prepared.sql.psycopg()
    return RawQuery(sql, dict(params))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.analysis", description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000, help="bench_parcels rows (default 100000)")
    parser.add_argument(
        "--duration",
        type=float,
        default=DEFAULT_DURATION,
        help="seconds per workload, concurrency and target",
    )
    parser.add_argument("--rounds", type=int, default=2, help="the duration is split over this many rounds")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of unmeasured warm-up per target")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16], help="concurrency levels")
    parser.add_argument(
        "--job-concurrency", type=int, nargs="+", default=[1, 4], help="concurrency levels of `job`"
    )
    parser.add_argument(
        "--job-poll-ms", type=float, default=10.0, help="pause between two polls of a job's status (ms)"
    )
    parser.add_argument("--workloads", nargs="+", choices=WORKLOAD_KEYS, default=list(WORKLOAD_KEYS))
    parser.add_argument("--database-url", help="PostGIS to use (default: DATABASE_URL, else embedded)")
    parser.add_argument("--database", default="jxplan_bench", help="database name on the embedded cluster")
    parser.add_argument("--reload", action="store_true", help="regenerate the rows even if already there")
    parser.add_argument("--output", default=str(RESULTS), help="where to write the Markdown results")
    parser.add_argument(
        "--client",
        choices=("auto", "wrk", "httpx"),
        default="auto",
        help="HTTP load generator of the synchronous executions (the job round trip is always httpx)",
    )
    parser.add_argument("--note", action="append", default=[], help="a line to put at the top of the results")
    args = parser.parse_args(argv)
    levels = [*args.concurrency, *args.job_concurrency]
    if args.rows < 1 or args.duration <= 0 or args.rounds < 1 or min(levels) < 1 or args.job_poll_ms < 0:
        parser.error("--rows, --duration, --rounds and the concurrency levels must be positive")
    return args


# -- what is measured ---------------------------------------------------------------------------------------


@dataclass
class Probe:
    """One execution of a workload, before it is timed: the service's status and body, and what it says."""

    status: int
    bytes: int
    summary: str  # what the answer holds (items_total, areas, …)
    same_as_raw: bool | None = None  # whether the service's body is the raw statement's, byte for byte
    seconds: float = math.nan  # the fastest of the probe's executions


@dataclass
class AnalysisResult:
    """Everything one run measured."""

    rows: int
    cells: list[report.Cell] = field(default_factory=list)  # service and raw, per workload and concurrency
    jobs: list[report.Cell] = field(default_factory=list)  # the `job` round trip, service only
    descriptions: dict[str, str] = field(default_factory=dict)
    probes: dict[str, Probe] = field(default_factory=dict)
    clients: dict[str, str] = field(default_factory=dict)  # workload → the HTTP client that timed it
    notes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    load_seconds: float | None = None


def summarise(workload: AnalysisWorkload, body: bytes) -> str:
    """What an answer holds, in a few words."""
    if workload.process == "county-summary" and workload.inputs.get("format") == "csv":
        return f"{max(0, len(body.decode().splitlines()) - 1)} CSV rows"
    doc = json.loads(body)
    if workload.process == "site-check":
        return f"items_total {doc.get('items_total')}, {len(doc.get('items', []))} listed"
    if workload.process == "nearby":
        return f"total {doc.get('total')} in {len(doc.get('layers', []))} layers"
    return f"{len(doc.get('areas', []))} areas"


def probe(base_url: str, workload: AnalysisWorkload, raw_body: bytes | None, times: int = 3) -> Probe:
    """POST the workload `times` times; its status, size and summary, whether it equals the raw answer, and
    the fastest execution's seconds."""
    request = workload.request
    fastest = math.inf
    with httpx.Client(base_url=base_url, timeout=120, headers={"Accept-Encoding": "identity"}) as client:
        for _ in range(times):
            began = time.perf_counter()
            response = client.post(request.path, content=request.body, headers=request.headers)
            fastest = min(fastest, time.perf_counter() - began)
            if response.status_code != 200:
                break
    body = response.content
    if response.status_code != 200:
        return Probe(response.status_code, len(body), body[:200].decode(errors="replace"), None, fastest)
    same = None if raw_body is None else raw_body == body
    return Probe(200, len(body), summarise(workload, body), same, fastest)


def http_client(probed: Probe | None, wrk: str | None, client: str) -> str:
    """Which client times a workload's service target: `--client wrk` or `httpx` as asked; `auto`: wrk for a
    workload answering within WRK_BELOW_S (there a Python client's CPU would cap the service), httpx for a
    slower one (wrk drops the requests in flight when a round ends, which under-counts answers of seconds;
    at a few per second a Python client's cost is nothing)."""
    if wrk is None or client == "httpx":
        return "httpx"
    if client == "wrk" or (probed is not None and probed.seconds < WRK_BELOW_S):
        return "wrk"
    return "httpx"


def _raw_body(rows: list[tuple[Any, ...]]) -> bytes:
    value = rows[0][-1]  # a site's statement answers (found, inside, body); the others (body)
    return value.encode() if isinstance(value, str) else bytes(value)


Run = Callable[[float], Awaitable[Sample]]  # seconds → what a target did in them


async def interleave(
    args: argparse.Namespace, key: str, concurrency: int, targets: dict[str, Run]
) -> report.Cell:
    """One cell: each target warmed up, then `rounds` rounds of duration/rounds seconds each, the targets in
    turn and the order reversed every other round."""
    cell = report.Cell(key, concurrency, {name: Sample() for name in targets})
    for run in targets.values():
        await run(args.warmup)
    order = list(targets)
    for round_ in range(args.rounds):
        for name in order if round_ % 2 == 0 else order[::-1]:
            cell.samples[name].add(await targets[name](args.duration / args.rounds))
    return cell


def _line(cell: report.Cell) -> str:
    done = ", ".join(
        f"{n} {s.rate:,.1f}/s p50 {s.percentile(50) * 1000:.1f} ms" for n, s in cell.samples.items()
    )
    return f"  {cell.workload:<19} c={cell.concurrency:<3} {done}"


def service_run(
    wrk: str | None, base_url: str, request: PostRequest, concurrency: int, pid: int, mean_body: float
) -> Run:
    """The service target of a cell: wrk's POSTs, or httpx's (`wrk` None)."""
    if wrk is not None:
        return partial(run_wrk_post, wrk, base_url, [request], concurrency, pid=pid, mean_body=mean_body)
    return partial(run_http_post, base_url, [request], concurrency, pid=pid)


async def measure(
    args: argparse.Namespace,
    wrk: str | None,
    base_url: str,
    pid: int,
    conninfo: str,
    workloads: Sequence[AnalysisWorkload],
    raws: dict[str, RawQuery],
    sizes: dict[str, float],
    clients: dict[str, str],
) -> list[report.Cell]:
    """Each workload × concurrency: the service and its raw statement interleaved (`interleave`)."""
    cells = []
    for workload in workloads:
        for concurrency in args.concurrency:
            pool = await open_pool(conninfo, concurrency)
            try:
                size = sizes.get(workload.key, 0.0)
                targets: dict[str, Run] = {
                    "service": service_run(
                        wrk if clients.get(workload.key) == "wrk" else None,
                        base_url,
                        workload.request,
                        concurrency,
                        pid,
                        size,
                    )
                }
                if workload.key in raws:
                    targets["raw"] = partial(run_sql, pool, [raws[workload.key]], concurrency)
                cells.append(await interleave(args, workload.key, concurrency, targets))
            finally:
                await pool.close()
            print(_line(cells[-1]), flush=True)
    return cells


async def measure_jobs(
    args: argparse.Namespace, base_url: str, pid: int, workload: AnalysisWorkload
) -> list[report.Cell]:
    """The asynchronous round trip at each job concurrency: warm-up, then `rounds` rounds."""
    cells = []
    for concurrency in args.job_concurrency:
        run = partial(
            run_http_jobs, base_url, [workload.request], concurrency, pid=pid, poll_s=args.job_poll_ms / 1000
        )
        cells.append(await interleave(args, JOB_KEY, concurrency, {"service": run}))
        print(_line(cells[-1]), flush=True)
    return cells


# -- the report ---------------------------------------------------------------------------------------------


def _ms(sample: Sample, p: float) -> str:
    return report._number(sample.percentile(p) * 1000, 1)


def _errors(sample: Sample) -> str:
    return f"**{sample.errors}**" if sample.errors else "0"


def main_table(cells: Sequence[report.Cell], clients: dict[str, str]) -> list[str]:
    """Service and raw side by side, and their ratios."""
    rows = []
    for cell in cells:
        s, r = cell.samples.get("service"), cell.samples.get("raw")
        row = [f"`{cell.workload}`", str(cell.concurrency)]
        for sample in (s, r):
            row += [report._number(sample.rate), _ms(sample, 50), _ms(sample, 99)] if sample else ["–"] * 3
        row += [
            report._ratio(s.rate, r.rate) if s and r else "–",
            report._ratio(s.percentile(50), r.percentile(50)) if s and r else "–",
            report._number(s.mean_bytes, 0) if s else "–",
            " / ".join(_errors(x) for x in (s, r) if x is not None),
            clients.get(cell.workload, "–"),
        ]
        rows.append(row)
    header = ["workload", "c", "service req/s", "p50 ms", "p99 ms", "raw req/s", "p50 ms", "p99 ms"]
    header += ["service/raw req/s", "service/raw p50", "bytes/response", "errors (service / raw)"]
    header += ["HTTP client"]
    return report.markdown_table(header, rows)


def job_table(cells: Sequence[report.Cell]) -> list[str]:
    """The asynchronous round trips."""
    rows = []
    for cell in cells:
        s = cell.samples["service"]
        rows.append(
            [
                str(cell.concurrency),
                report._number(s.rate),
                _ms(s, 50),
                _ms(s, 99),
                f"{s.requests:,}",
                report._number(s.mean_bytes, 0),
                _errors(s),
            ]
        )
    header = ["c", "jobs/s", "round trip p50 ms", "p99 ms", "jobs", "results bytes", "errors"]
    return report.markdown_table(header, rows)


READING = [
    "- **No third party.** tipg has no processes at all, and pygeoapi's processes are examples (hello-world"
    " and the like), none a spatial analysis on these layers: there is nothing comparable to run. So the"
    " comparison is the service against the raw statement it runs, the same SQL and parameters, built by"
    " the service's own builders (`geo_service.analysis.processes.prepare(...).sql`).",
    "- **service/raw** is what HTTP, the input checks (JSON Schema, the site's geometry), the statement's"
    " preparation and the response cost on top of PostgreSQL's work. Each answer is one statement whose JSON"
    " (or CSV) PostgreSQL builds, so where the statement is dear the ratio is near 1.",
    "- **Clients.** Raw: psycopg (Python) in the harness process, one pooled connection per worker, every row"
    " fetched. HTTP: wrk (C) for the fast workloads, httpx (Python) for those answering in more than"
    f" {WRK_BELOW_S * 1000:g} ms (the table's last column; `--client` forces one). Measured on this machine"
    " for `nearby` at concurrency 16, httpx cost the harness about 2.9 ms of CPU per request (more than the"
    " service's own 2.1 ms; psycopg 0.3 ms), which on two cores caps what the service can show; but wrk drops"
    " the requests in flight when a round ends, which would under-count answers taking seconds, where a"
    " Python client's cost is negligible. The job round trip (POST, polls, results) is always httpx.",
    "- **One machine, shared.** PostgreSQL, the service and the client share the CPUs with other work (see"
    " the load average): compare the ratios within this run, not the absolute numbers across machines.",
]


def render(
    result: AnalysisResult, *, date: str, machine_info: dict[str, str], settings: dict[str, str]
) -> str:
    """RESULTS-analysis.md."""
    lines = [
        "# Planning analysis benchmark 规划分析测量",
        "",
        f"Run {date}. Command: `.venv/bin/python -m benchmarks.analysis --rows {result.rows}` (see"
        " [README.md](README.md#planning-analysis)).",
        "",
    ]
    lines += [f"> {note}" for note in result.notes] + ([""] if result.notes else [])
    lines += ["## Set-up", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in {**machine_info, **settings}.items()]
    lines += ["", "## Reading these numbers", "", *READING, ""]
    if result.cells:
        lines += [f"## Synchronous executions, service vs raw statement ({result.rows:,} parcels)", ""]
        lines += main_table(result.cells, result.clients)
        lines.append("")
    if result.jobs:
        lines += ["## Asynchronous job: round trip", ""]
        lines += [
            f"`POST` of `{JOB_SOURCE}` with `Prefer: respond-async` (201, a job), `GET /jobs/{{id}}` until it"
            " is `successful`, then `GET /jobs/{id}/results`; each round trip timed whole.",
            "",
        ]
        lines += job_table(result.jobs)
        lines.append("")
    lines += ["## Workloads", ""]
    for key, text in result.descriptions.items():
        found = result.probes.get(key)
        extra = ""
        if found is not None:
            extra = f" — answers {found.status}, {found.bytes:,} bytes, {found.summary}"
            if found.same_as_raw is not None:
                extra += (
                    "; the same bytes as the raw statement's"
                    if found.same_as_raw
                    else ("; **not** the raw statement's bytes")
                )
        lines.append(f"- `{key}`: {text}{extra}")
    if result.skipped:
        lines += ["", "## Not measured", ""] + [f"- {s}" for s in result.skipped]
    return "\n".join(lines) + "\n"


def as_json(result: AnalysisResult, *, date: str, settings: dict[str, str]) -> dict[str, Any]:
    """Every number, for benchmarks/output/results-analysis.json."""

    return {
        "date": date,
        "rows": result.rows,
        "load_seconds": result.load_seconds,
        "settings": settings,
        "cells": report.cells_json(result.cells, "targets"),
        "jobs": report.cells_json(result.jobs, "targets"),
        "probes": {k: vars(p) for k, p in result.probes.items()},
        "clients": result.clients,
        "notes": result.notes,
        "skipped": result.skipped,
    }


def write_report(result: AnalysisResult, output: Path, *, date: str, settings: dict[str, str]) -> Path:
    """Write the Markdown to `output` and the numbers beside the other results; the JSON file's path."""
    output.write_text(render(result, date=date, machine_info=report.machine(), settings=settings), "utf-8")
    OUTPUT.mkdir(parents=True, exist_ok=True)
    numbers = OUTPUT / f"{output.stem.lower()}.json"
    numbers.write_text(json.dumps(as_json(result, date=date, settings=settings), indent=2), encoding="utf-8")
    return numbers


# -- the run ------------------------------------------------------------------------------------------------


def _load(values: tuple[float, float, float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


async def _raw_bodies(conninfo: str, raws: dict[str, RawQuery]) -> dict[str, bytes]:
    pool = await open_pool(conninfo, 1)
    try:
        return {key: _raw_body(await execute(pool, query)) for key, query in raws.items()}
    finally:
        await pool.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the analysis benchmark and write the results."""
    args = parse_args(argv)
    target = database.resolve(args.database_url, args.database)
    print(f"Database: {target.origin}", flush=True)
    engine = sync_engine(target.url)
    settings_ = Settings()
    layer = read_bench_layer(settings_.layers_dir, BENCH_LAYER)
    catalog = load_catalog(settings_.layers_dir, settings_.maps_dir, bench_layers=True)
    result = AnalysisResult(args.rows)
    wrk = None if args.client == "httpx" else ensure_wrk()
    if args.client == "wrk" and wrk is None:
        raise SystemExit("wrk is not installed and could not be installed: use --client httpx")
    load_before = os.getloadavg()
    server = service_server(target.url)
    server.env["JXPLAN_JOBS_PER_CLIENT"] = str(JOBS_PER_CLIENT)
    try:
        result.load_seconds = database.prepare_rows(target.url, engine, layer, args.rows, reload=args.reload)
        print(
            "bench_parcels: "
            + (
                "already loaded"
                if result.load_seconds is None
                else f"generated in {result.load_seconds:.1f} s"
            ),
            flush=True,
        )
        reports = load(engine, catalog)  # the plan layers; unchanged ones are left alone (idempotent)
        print(f"plan layers: {len(reports)} checked", flush=True)
        every = {w.key: w for w in build_workloads()}
        workloads = [every[k] for k in SYNC_KEYS if k in args.workloads]
        result.descriptions = {w.key: w.description for w in workloads}
        if JOB_KEY in args.workloads:
            result.descriptions[JOB_KEY] = f"`{JOB_SOURCE}` as an asynchronous job (see above)"
        with server:
            print(f"Service on {server.base_url}", flush=True)
            raws: dict[str, RawQuery] = {}
            for w in workloads:
                try:
                    raws[w.key] = raw_query(w, catalog, server.base_url)
                except Exception as exc:  # said in the results, the service is still measured
                    result.skipped.append(f"raw `{w.key}`: its statement could not be built ({exc})")
            bodies = asyncio.run(_raw_bodies(target.libpq_url, raws))
            for w in workloads:
                result.probes[w.key] = probe(server.base_url, w, bodies.get(w.key))
                print(f"  {w.key}: {result.probes[w.key]}", flush=True)
            sizes = {key: float(found.bytes) for key, found in result.probes.items()}
            result.clients = {
                w.key: http_client(result.probes.get(w.key), wrk, args.client) for w in workloads
            }
            result.cells = asyncio.run(
                measure(
                    args,
                    wrk,
                    server.base_url,
                    server.pid,
                    target.libpq_url,
                    workloads,
                    raws,
                    sizes,
                    result.clients,
                )
            )
            if JOB_KEY in args.workloads:
                result.jobs = asyncio.run(measure_jobs(args, server.base_url, server.pid, every[JOB_SOURCE]))
    finally:
        engine.dispose()
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    result.notes = list(args.note) + result.notes
    if args.duration < DEFAULT_DURATION:
        result.notes.insert(0, f"**Short run**: {args.duration:g} s per cell. Indicative numbers only.")
    settings = {
        "Load average (1, 5, 15 min)": f"{_load(load_before)} at the start,"
        f" {_load(os.getloadavg())} at the end (the machine is shared with other work)",
        "Database": target.origin + f", `{BENCH_LAYER}` with {args.rows:,} parcels and the plan layers",
        "Duration": f"{args.duration:g} s per workload, concurrency and target, in {args.rounds} rounds"
        f" (order reversed every other round), after {args.warmup:g} s of warm-up each",
        "Concurrency": ", ".join(map(str, args.concurrency))
        + f" (job: {', '.join(map(str, args.job_concurrency))})",
        "Service": "one uvicorn process (`JXPLAN_BENCH_LAYERS=1`, no access log), its default pool and"
        f" `JXPLAN_JOB_WORKERS`; `JXPLAN_JOBS_PER_CLIENT={JOBS_PER_CLIENT}` for the run",
        "HTTP": f"`--client {args.client}`: "
        + (
            f"wrk (C) for workloads answering within {WRK_BELOW_S * 1000:g} ms, httpx (Python) for slower"
            " ones (the table's last column)"
            if args.client == "auto" and wrk
            else ("wrk (C)" if wrk and args.client == "wrk" else "httpx (Python)")
        )
        + "; keep-alive, `Accept-Encoding: identity`, the whole body read; jobs: httpx, polled"
        f" every {args.job_poll_ms:g} ms",
        "Raw": "psycopg (Python), a pool of one autocommit connection per worker with the read pool's session"
        " settings, every row fetched",
    }
    output = Path(args.output)
    numbers = write_report(result, output, date=date, settings=settings)
    print(f"\nWrote {output} and {numbers}.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
