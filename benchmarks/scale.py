"""`python -m benchmarks.scale`: how reads grow on one machine — the service with 1 and 2 workers, 1 worker
reading through a streaming replica, and nginx caching in front of 2 workers — in one interleaved run on the
benchmark's database and rows; then the tiles again with the tile cache off, and edits per second with and
without a replica (the read-your-writes wait). Writes benchmarks/RESULTS-scale.md (and every number to
benchmarks/output/results-scale.json).

See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from benchmarks import database, report
from benchmarks.loadgen import Sample, ensure_wrk, nearest_rank, run_http, run_wrk
from benchmarks.servers import OUTPUT, Server, jxplan_server
from benchmarks.workloads import Dataset, Workload, build_workloads
from geo_service.bench import BENCH_LAYER
from geo_service.catalog import load_catalog, read_bench_layer
from geo_service.db.embedded import EmbeddedCluster
from geo_service.db.engine import sync_engine
from geo_service.db.standby import Standby
from geo_service.editing.keys import add_key, revoke_key
from geo_service.loader import load
from geo_service.ops.cacheproxy import caching_proxy
from geo_service.settings import PROJECT_ROOT, Settings

RESULTS = PROJECT_ROOT / "benchmarks" / "RESULTS-scale.md"
DEFAULT_DURATION = 6.0
WORKLOADS = ("items-100", "bbox-2km", "feature", "tile-z12", "tile-z14")
TILE_WORKLOADS = ("tile-z12", "tile-z14")
LEGS = ("w1", "w2", "replica", "nginx")
LEG_TITLES = {
    "w1": "1 worker",
    "w2": "2 workers",
    "replica": "1 worker, reads on a replica",
    "nginx": "nginx cache → 2 workers",
}
READ_AFTER = "JXPlan-Read-After"  # a write's answer names the primary's position; a read carrying it waits
EDIT_LAYER = "rail_stations"
MERGE_PATCH = "application/merge-patch+json"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000, help="bench_parcels rows (default 100000)")
    parser.add_argument(
        "--duration", type=float, default=DEFAULT_DURATION, help="seconds per workload, concurrency and leg"
    )
    parser.add_argument("--rounds", type=int, default=2, help="the duration is split over this many rounds")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of unmeasured warm-up per leg")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16], help="concurrency levels")
    parser.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    parser.add_argument("--legs", nargs="+", choices=LEGS, default=list(LEGS))
    parser.add_argument(
        "--tile-cache",
        type=int,
        default=Settings().tile_cache_mb,
        metavar="MB",
        help="each process's tile cache in the main run (JXPLAN_TILE_CACHE_MB; default: the service's)",
    )
    parser.add_argument(
        "--no-cold-tiles",
        action="store_true",
        help="skip the second run of the tiles with the tile cache off",
    )
    parser.add_argument("--write-seconds", type=float, default=8.0, help="seconds of edits per leg (0: none)")
    parser.add_argument("--replica-url", help="a running streaming replica of the database to read from")
    parser.add_argument("--database-url", help="PostGIS to use (default: DATABASE_URL, else embedded)")
    parser.add_argument("--database", default="jxplan_bench", help="database name on the embedded cluster")
    parser.add_argument("--reload", action="store_true", help="regenerate the rows even if already there")
    parser.add_argument("--output", default=str(RESULTS), help="where to write the Markdown results")
    parser.add_argument(
        "--client", choices=("auto", "wrk", "httpx"), default="auto", help="HTTP load generator"
    )
    parser.add_argument("--note", action="append", default=[], help="a line to put at the top of the results")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.duration <= 0 or args.rounds < 1 or min(args.concurrency) < 1:
        parser.error("--rows, --duration, --rounds and --concurrency must be positive")
    return args


# -- what is measured ---------------------------------------------------------------------------------------


@dataclass
class WriteSample:
    """Edits through one leg: each a PATCH, then a read of the feature carrying the write's position."""

    writes: list[float] = field(default_factory=list)  # seconds per PATCH
    reads: list[float] = field(default_factory=list)  # seconds per read after it
    stale: int = 0  # reads that did not show the write just made
    errors: int = 0
    first_error: str | None = None
    elapsed: float = 0.0
    carried: int = 0  # reads that carried a position (the write gave one)

    def add(self, other: WriteSample) -> None:
        """Merge another round."""
        self.writes += other.writes
        self.reads += other.reads
        self.stale += other.stale
        self.errors += other.errors
        self.first_error = self.first_error or other.first_error
        self.elapsed += other.elapsed
        self.carried += other.carried

    @property
    def rate(self) -> float:
        """Edits (write and read back) per second."""
        return len(self.writes) / self.elapsed if self.elapsed else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Summary for the JSON file."""
        return {
            "edits": len(self.writes),
            "edits_per_s": self.rate,
            "write_p50_ms": _ms(self.writes, 50),
            "read_after_p50_ms": _ms(self.reads, 50),
            "read_after_p99_ms": _ms(self.reads, 99),
            "reads_carrying_position": self.carried,
            "stale_reads": self.stale,
            "errors": self.errors,
            "first_error": self.first_error,
        }


def _ms(values: Sequence[float], p: float) -> float:
    return nearest_rank(values, p) * 1000


@dataclass
class ScaleResult:
    """Everything one run measured."""

    rows: int
    legs: list[str]
    cells: list[report.Cell] = field(default_factory=list)  # the main run, tile cache on
    cold: list[report.Cell] = field(default_factory=list)  # the tiles again, tile cache off
    cold_legs: list[str] = field(default_factory=list)
    writes: dict[str, WriteSample] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


# -- the servers --------------------------------------------------------------------------------------------


@dataclass
class Leg:
    """One way of serving: its base URL, and the process to watch (None: nginx's own)."""

    name: str
    base_url: str
    pid: int | None


@contextlib.contextmanager
def _servers(
    url: str, replica_url: str | None, legs: Sequence[str], tile_cache_mb: int, scratch: Path
) -> Iterator[dict[str, Leg]]:
    """Start what `legs` need (nginx in front of the 2-worker service), yield them, stop them all."""
    with contextlib.ExitStack() as stack:
        servers: dict[str, Server] = {}
        wanted = {"w1": "w1" in legs, "w2": "w2" in legs or "nginx" in legs, "replica": "replica" in legs}
        if wanted["w1"]:
            servers["w1"] = jxplan_server("scale-w1", url, workers=1, tile_cache_mb=tile_cache_mb)
        if wanted["w2"]:
            servers["w2"] = jxplan_server("scale-w2", url, workers=2, tile_cache_mb=tile_cache_mb)
        if wanted["replica"] and replica_url is not None:
            routed = routes_reads()
            servers["replica"] = jxplan_server(
                "scale-replica",
                url if routed else replica_url,
                workers=1,
                tile_cache_mb=tile_cache_mb,
                env={"JXPLAN_READ_DATABASE_URLS": replica_url} if routed else {},
            )
        found: dict[str, Leg] = {}
        for name, server in servers.items():
            print(f"Starting {name} ({LEG_TITLES[name]}) on {server.base_url} …", flush=True)
            stack.enter_context(server)
            found[name] = Leg(name, server.base_url, server.pid)
        if "nginx" in legs:
            proxy_url, _ = stack.enter_context(
                caching_proxy(servers["w2"].base_url, scratch / "nginx", workers=1, access_log=False)
            )
            print(f"Starting nginx (caching proxy in front of w2) on {proxy_url} …", flush=True)
            found["nginx"] = Leg("nginx", proxy_url, None)
        yield {name: found[name] for name in legs if name in found}


# -- the read legs ------------------------------------------------------------------------------------------


async def _measure(
    wrk: str | None, leg: Leg, paths: Sequence[str], concurrency: int, seconds: float
) -> Sample:
    if wrk is not None:
        return await run_wrk(wrk, leg.base_url, paths, concurrency, seconds, leg.pid)
    return await run_http(leg.base_url, paths, concurrency, seconds, leg.pid)


async def measure_reads(
    args: argparse.Namespace, wrk: str | None, legs: dict[str, Leg], workloads: Sequence[Workload]
) -> list[report.Cell]:
    """Every workload × concurrency, the legs interleaved: warm-up each, then `rounds` rounds of
    duration/rounds seconds per leg, the order reversed every other round."""
    cells = []
    for workload in workloads:
        for concurrency in args.concurrency:
            cell = report.Cell(workload.key, concurrency, {name: Sample() for name in legs})
            for leg in legs.values():
                await _measure(wrk, leg, workload.service, concurrency, args.warmup)
            order = list(legs.values())
            for round_ in range(args.rounds):
                for leg in order if round_ % 2 == 0 else order[::-1]:
                    seconds = args.duration / args.rounds
                    cell.samples[leg.name].add(
                        await _measure(wrk, leg, workload.service, concurrency, seconds)
                    )
            cells.append(cell)
            line = ", ".join(
                f"{n} {s.rate:,.0f}/s p50 {s.percentile(50) * 1000:.1f} ms" for n, s in cell.samples.items()
            )
            print(f"  {workload.key:<9} c={concurrency:<3} {line}", flush=True)
    return cells


# -- the write leg ------------------------------------------------------------------------------------------


def _note_of(body: dict[str, Any]) -> Any:
    return body.get("properties", {}).get("note")


def measure_writes(base_url: str, token: str, feature_id: Any, seconds: float, mark: str) -> WriteSample:
    """For `seconds`: PATCH the feature's note (with If-Match), then read it back carrying the write's
    position (`JXPlan-Read-After`, when the write gave one); one client, each step after the last."""
    sample = WriteSample()
    path = f"/collections/{EDIT_LAYER}/items/{feature_id}"
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url, timeout=60) as client:
        etag = client.get(path, params={"f": "json"}).headers.get("etag", "")
        start = time.perf_counter()
        n = 0
        while time.perf_counter() - start < seconds:
            n += 1
            note = f"{mark} {n}"
            began = time.perf_counter()
            written = client.patch(
                path,
                content=json.dumps({"properties": {"note": note}}),
                headers={**auth, "Content-Type": MERGE_PATCH, "If-Match": etag},
            )
            wrote = time.perf_counter()
            if written.status_code >= 300:
                sample.errors += 1
                sample.first_error = (
                    sample.first_error or f"PATCH {written.status_code}: {written.text[:200]}"
                )
                etag = client.get(path, params={"f": "json"}).headers.get("etag", "")
                continue
            etag = written.headers.get("etag", etag)
            position = written.headers.get(READ_AFTER)
            headers = {READ_AFTER: position} if position else {}
            sample.carried += bool(position)
            read = client.get(path, params={"f": "json"}, headers=headers)
            ended = time.perf_counter()
            sample.writes.append(wrote - began)
            sample.reads.append(ended - wrote)
            if read.status_code != 200:
                sample.errors += 1
                sample.first_error = sample.first_error or f"GET {read.status_code}: {read.text[:200]}"
            elif _note_of(read.json()) != note:
                sample.stale += 1
        sample.elapsed = time.perf_counter() - start
    return sample


def run_writes(args: argparse.Namespace, engine: Engine, legs: dict[str, Leg], result: ScaleResult) -> None:
    """Edits per second through the 1-worker service, and through the one reading on a replica, in
    interleaved rounds; the editing key is revoked afterwards."""
    targets = [name for name in ("w1", "replica") if name in legs and (name != "replica" or routes_reads())]
    if args.write_seconds <= 0 or not targets:
        return
    catalog = load_catalog(Settings().layers_dir, Settings().maps_dir)
    load(engine, catalog)  # the plan layers (unchanged ones are left alone): an editable layer to write to
    name = f"scale benchmark {datetime.now(UTC):%Y%m%d%H%M%S}"
    token = add_key(engine, name, "editor")
    try:
        with httpx.Client(base_url=legs[targets[0]].base_url, timeout=60) as client:
            page = client.get(f"/collections/{EDIT_LAYER}/items", params={"limit": 1, "f": "json"}).json()
        feature_id = page["features"][0]["id"]
        result.writes = {t: WriteSample() for t in targets}
        for round_ in range(args.rounds):
            for target in targets if round_ % 2 == 0 else targets[::-1]:
                result.writes[target].add(
                    measure_writes(
                        legs[target].base_url,
                        token,
                        feature_id,
                        args.write_seconds / args.rounds,
                        f"scale {target} {round_}",
                    )
                )
        for leg_name, sample in result.writes.items():
            print(
                f"  edits     {leg_name:<8} {sample.rate:,.1f}/s,"
                f" read after p50 {_ms(sample.reads, 50):.1f} ms,"
                f" {sample.stale} stale, {sample.errors} errors",
                flush=True,
            )
    finally:
        revoke_key(engine, name)


# -- the report ---------------------------------------------------------------------------------------------


def _rate(cell: report.Cell, leg: str) -> float:
    sample = cell.samples.get(leg)
    return sample.rate if sample is not None else math.nan


def _fmt(value: float, digits: int = 0) -> str:
    return "–" if math.isnan(value) else f"{value:,.{digits}f}"


def _ratio(a: float, b: float) -> str:
    return "–" if math.isnan(a) or math.isnan(b) or b == 0 else f"{a / b:.2f}"


def _table(cells: Sequence[report.Cell], legs: Sequence[str], descriptions: dict[str, str]) -> list[str]:
    head = "| workload | c | " + " | ".join(f"{LEG_TITLES[leg]} req/s (p50 ms)" for leg in legs)
    ratios = [leg for leg in legs if leg != "w1"] if "w1" in legs else []
    head += "".join(f" | {leg}/w1" for leg in ratios) + " |"
    lines = [head, "|" + "---|" * (2 + len(legs) + len(ratios))]
    for cell in cells:
        values = []
        for leg in legs:
            sample = cell.samples.get(leg)
            if sample is None:
                values.append("–")
                continue
            errors = f", **{sample.errors} errors**" if sample.errors else ""
            values.append(f"{_fmt(sample.rate)} ({_fmt(sample.percentile(50) * 1000, 1)}{errors})")
        extra = [_ratio(_rate(cell, leg), _rate(cell, "w1")) for leg in ratios]
        lines.append(f"| `{cell.workload}` | {cell.concurrency} | " + " | ".join(values + extra) + " |")
    lines.append("")
    lines += [
        f"- `{key}`: {text}" for key, text in descriptions.items() if any(c.workload == key for c in cells)
    ]
    return lines


def per_core(cells: Sequence[report.Cell], leg: str, cores: int) -> dict[str, float]:
    """req/s per core of `leg` at the highest concurrency measured, by workload."""
    top = max((c.concurrency for c in cells), default=0)
    return {c.workload: _rate(c, leg) / cores for c in cells if c.concurrency == top and leg in c.samples}


READING = [
    "- **One machine, two cores, shared.** PostgreSQL, its replica, every service process, nginx and wrk"
    " share the same two cores (and other work on the machine): a second worker or a replica here adds"
    " processes, not"
    " cores. So this run shows what each part *costs* and that it works under load, not how far it scales;"
    " on separate machines each replica or worker brings its own cores. Compare legs within this run only.",
    "- **Tile cache on** in the main run (32 MiB per process unless `--tile-cache` said otherwise), as"
    " deployed: a repeated tile is one short statement (the layer's version) and bytes from memory. The"
    " cold-tile run turns it off, so every tile is cut by PostGIS.",
    "- **Through nginx** a repeated page, feature or tile is revalidated: the service answers `304` after"
    " one short statement and nginx sends its stored copy. Where the service's own answer is already that"
    " cheap (a feature, a cached tile) nginx adds a hop and wins nothing on this box; it wins where the body"
    " is dear to build (pages).",
    "- **The replica** is a streaming hot standby on the same machine and disk: it takes CPU from the primary"
    " rather than adding any, so its column shows the overhead of reading from a replica, not capacity.",
    "- **Edits**: one client, each edit after the last one's read; the PATCH is a transaction on the primary"
    " (history, audit, layer version); the read after it waits for the replica only when it carries a"
    " position the replica has not replayed yet.",
]


def render(result: ScaleResult, *, date: str, machine_info: dict[str, str], settings: dict[str, str]) -> str:
    """RESULTS-scale.md."""
    lines = [
        "# Scale-out benchmark 扩展测量",
        "",
        f"Run {date}. Rerun: `.venv/bin/python -m benchmarks.scale --rows {result.rows}` (see"
        " [README.md](README.md#scale-out)).",
        "",
    ]
    lines += [f"> {note}" for note in result.notes] + ([""] if result.notes else [])
    lines += ["## Set-up", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in {**machine_info, **settings}.items()]
    lines += [
        "",
        "## Reading these numbers",
        "",
        *READING,
        "",
        f"## Reads, tile cache on ({result.rows:,} rows)",
        "",
    ]
    lines += _table(result.cells, result.legs, result.descriptions)
    if result.cold:
        lines += ["", "## Tiles, tile cache off (every tile cut by PostGIS)", ""]
        lines += _table(result.cold, result.cold_legs, result.descriptions)
    if result.writes:
        lines += [
            "",
            "## Edits 编辑: write, then read back",
            "",
            "One client: `PATCH` a feature's note (`If-Match`), then `GET` it carrying the write's"
            f" `{READ_AFTER}`; the next edit after that read.",
            "",
            "| leg | edits/s | PATCH p50 ms | read after p50 ms | p99 ms | reads carrying a position"
            " | stale reads | errors |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for leg, sample in result.writes.items():
            lines.append(
                f"| {LEG_TITLES[leg]} | {sample.rate:,.1f} | {_ms(sample.writes, 50):.1f} |"
                f" {_ms(sample.reads, 50):.1f} | {_ms(sample.reads, 99):.1f} | {sample.carried} |"
                f" {sample.stale} | {sample.errors} |"
            )
    if result.skipped:
        lines += ["", "## Not measured", ""] + [f"- {s}" for s in result.skipped]
    return "\n".join(lines) + "\n"


def as_json(result: ScaleResult, *, date: str, settings: dict[str, str]) -> dict[str, Any]:
    """Every number, for benchmarks/output/results-scale.json."""

    return {
        "date": date,
        "rows": result.rows,
        "settings": settings,
        "reads": report.cells_json(result.cells, "legs"),
        "cold_tiles": report.cells_json(result.cold, "legs"),
        "writes": {n: s.as_dict() for n, s in result.writes.items()},
        "notes": result.notes,
        "skipped": result.skipped,
    }


def write_report(result: ScaleResult, output: Path, *, date: str, settings: dict[str, str]) -> Path:
    """Write the Markdown to `output` and the numbers beside the other results; the JSON file's path."""
    output.write_text(render(result, date=date, machine_info=report.machine(), settings=settings), "utf-8")
    OUTPUT.mkdir(parents=True, exist_ok=True)
    numbers = OUTPUT / f"{output.stem.lower()}.json"
    numbers.write_text(json.dumps(as_json(result, date=date, settings=settings), indent=2), encoding="utf-8")
    return numbers


# -- the run ------------------------------------------------------------------------------------------------


def routes_reads() -> bool:
    """Whether this service sends reads to `JXPLAN_READ_DATABASE_URLS` (else the replica leg serves from the
    replica alone: reads only, no edits)."""
    return "read_database_urls" in Settings.model_fields


@contextlib.contextmanager
def _standby(database_name: str) -> Iterator[str]:
    """A streaming replica of the embedded cluster for the run, made as `jxplan db replica start` makes one
    (geo_service.db.standby: pg_basebackup -R through a slot), removed afterwards with its slot."""
    standby = Standby(EmbeddedCluster(PROJECT_ROOT / ".data"), name="scale")
    standby.start()
    try:
        yield standby.url(database_name)
    finally:
        standby.remove()


def _replica(
    args: argparse.Namespace, target: database.Target
) -> contextlib.AbstractContextManager[str | None]:
    """The replica to read from: --replica-url as given; else, on the embedded cluster, a streaming replica
    made for the run; else none (the leg is left out)."""
    if args.replica_url or "replica" not in args.legs:
        return contextlib.nullcontext(args.replica_url)
    if target.origin.startswith("embedded"):
        print("Starting a streaming replica (pg_basebackup -R) …", flush=True)
        return _standby(make_url(target.url).database or "jxplan_bench")
    return contextlib.nullcontext(None)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scale benchmark and write the results."""
    args = parse_args(argv)
    target = database.resolve(args.database_url, args.database)
    print(f"Database: {target.origin}", flush=True)
    engine = sync_engine(target.url)
    wrk = None if args.client == "httpx" else ensure_wrk()
    if args.client == "wrk" and wrk is None:
        raise SystemExit("wrk is not installed and could not be installed: use --client httpx")
    layer = read_bench_layer(Settings().layers_dir, BENCH_LAYER)
    result = ScaleResult(args.rows, list(args.legs))
    load_before = os.getloadavg()
    try:
        loaded = database.prepare_rows(target.url, engine, layer, args.rows, reload=args.reload)
        print("bench_parcels: " + ("already loaded" if loaded is None else f"generated in {loaded:.1f} s"))
        dataset = Dataset(
            layer=layer,
            rows=args.rows,
            sample_ids=database.sample_ids(engine, 64),
            deep_after_id=database.id_at(engine, min(50_000, args.rows // 2)),
            deep_cursor=None,
        )
        workloads = [w for w in build_workloads(dataset) if w.key in args.workloads]
        result.descriptions = {w.key: w.description for w in workloads}
        with tempfile.TemporaryDirectory(prefix="jxplan-scale-") as scratch_dir:
            scratch = Path(scratch_dir)
            with _replica(args, target) as replica_url:
                if "replica" in args.legs and replica_url is None:
                    result.legs.remove("replica")
                    result.skipped.append("the replica leg: no replica (give --replica-url)")
                elif "replica" in args.legs and not routes_reads():
                    result.notes.append(
                        "This version of the service has no `JXPLAN_READ_DATABASE_URLS`: the replica leg's"
                        " service has the replica as its only database (`DATABASE_URL`), so it measures reads"
                        " served by a streaming replica; its edits are not measured."
                    )
                with _servers(target.url, replica_url, result.legs, args.tile_cache, scratch) as legs:
                    print(f"\n== reads, tile cache {args.tile_cache} MiB per process ==", flush=True)
                    result.cells = asyncio.run(measure_reads(args, wrk, legs, workloads))
                    print("\n== edits ==", flush=True)
                    run_writes(args, engine, legs, result)
                tiles = [w for w in workloads if w.key in TILE_WORKLOADS]
                if tiles and not args.no_cold_tiles:
                    result.cold_legs = [leg for leg in result.legs if leg != "nginx"]
                    with _servers(target.url, replica_url, result.cold_legs, 0, scratch) as legs:
                        print("\n== tiles, tile cache off ==", flush=True)
                        result.cold = asyncio.run(measure_reads(args, wrk, legs, tiles))
    finally:
        engine.dispose()
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    result.notes = list(args.note) + result.notes  # the run's own notes (the replica leg) after
    if args.duration < DEFAULT_DURATION:
        result.notes.insert(0, f"**Short run**: {args.duration:g} s per cell. Indicative numbers only.")
    load_after = os.getloadavg()
    settings = {
        "Load average (1, 5, 15 min)": f"{' / '.join(f'{v:.1f}' for v in load_before)} at the start,"
        f" {' / '.join(f'{v:.1f}' for v in load_after)} at the end (the machine is shared)",
        "Database": target.origin,
        "Duration": f"{args.duration:g} s per workload, concurrency and leg, in {args.rounds} rounds"
        " (leg order"
        f" reversed every other round), after {args.warmup:g} s of warm-up each",
        "Concurrency": ", ".join(map(str, args.concurrency)),
        "Service": "`jxplan serve --workers N`, access log off, tile cache"
        f" {args.tile_cache} MiB per process in the main run (as deployed), 0 in the cold-tile run",
        "HTTP": ("wrk" if wrk else "httpx")
        + ", keep-alive, `Accept-Encoding: identity`, on the same machine",
    }
    output = Path(args.output)
    numbers = write_report(result, output, date=date, settings=settings)
    print(f"\nWrote {output} and {numbers}.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
