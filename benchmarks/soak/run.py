"""One soak run: a fresh database with the plan layers and N generated parcels, the service as its own
uvicorn process, client processes for the given time while the service's memory is sampled, then the
checks (lost updates, 5xx, memory, PostgreSQL backends) and everything stopped."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from benchmarks import database
from benchmarks.servers import rss_bytes, service_server
from benchmarks.soak.checks import Ack, MemoryTrend, lost_updates, memory_trend, read_states
from benchmarks.soak.clients import ClientPlan, ClientResult, EditorPlan, KindStats, run_clients
from benchmarks.workloads import region_boxes, region_tiles, url_path
from geo_service.bench import BENCH_LAYER
from geo_service.catalog import Catalog, load_catalog, read_bench_layer
from geo_service.db.embedded import EmbeddedCluster
from geo_service.db.engine import drop_database, ensure_database, sync_engine
from geo_service.editing.keys import add_key
from geo_service.loader import load
from geo_service.settings import PROJECT_ROOT, Settings

# the editable plan layers editors create their own features in, with their geometry types
EDIT_LAYERS = ("rail_stations", "hubs", "central_city", "road_projects", "demonstration_zone", "water_lines")
HOT_LAYERS = ("rail_stations", "hubs", "central_city", "g60_platforms")  # one hot feature from each
SOAK_APPLICATION = "jxplan-soak"  # application_name of the soak's own sessions
PLAN_VIEW = (120.6, 30.6, 121.0, 30.9)  # a box over the central city and the demonstration zone


@dataclass
class Options:
    """What to run (the command line's options)."""

    minutes: float = 10.0
    editors: int = 16
    readers: int = 64
    rows: int = 100_000
    processes: int = 2
    database_url: str | None = None  # a throwaway database to use as it is; default: a fresh embedded one
    database: str = "jxplan_soak"
    tile_cache_mb: int = field(default_factory=lambda: Settings().tile_cache_mb)
    warmup_s: float | None = None  # default: a fifth of the run, at most 2 minutes
    rss_interval_s: float = 10.0
    max_slope: float = 1.0  # MiB per minute of RSS growth after warm-up above which it is flagged
    seed: int = 20261202

    @property
    def seconds(self) -> float:
        """The run's length."""
        return self.minutes * 60

    @property
    def warmup(self) -> float:
        """Seconds of warm-up before the memory slope is measured."""
        return self.warmup_s if self.warmup_s is not None else min(120.0, self.seconds / 5)


@dataclass
class SoakResult:
    """Everything the report says."""

    options: Options
    started: str
    origin: str
    versions: dict[str, str]
    stats: dict[str, KindStats]
    elapsed_s: float
    server_errors: int
    server_error_samples: list[str]
    unanswered_samples: list[str]
    acks: list[Ack]
    unsure: set[int]
    lost: list[str]
    surprises: list[str]
    rss: list[tuple[float, int]]
    memory: MemoryTrend | None
    backends_running: dict[str, int]
    backends_stopped: dict[str, int]
    client_cpu_s: float
    client_wall_s: float
    service_cpu_s: float | None
    postgres_cpu_s: float | None
    load_average: tuple[float, float, float]  # of the machine, 1, 5 and 15 minutes, at the end of the load
    service_log_tail: str = ""

    @property
    def stuck_backends(self) -> int:
        """Backends left in a transaction once the clients stopped, or left after the service stopped."""
        return self.backends_running.get("idle in transaction", 0) + sum(self.backends_stopped.values())

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        grows = self.memory is not None and self.memory.grows
        return not (self.server_errors or self.lost or self.surprises or grows or self.stuck_backends)


def _prepare(engine: Engine, url: str, rows: int) -> tuple[Catalog, float | None]:
    """Migrate, load the plan layers, generate the parcels (when not exactly `rows` are there)."""
    settings = Settings()
    layer = read_bench_layer(settings.layers_dir, BENCH_LAYER)
    loaded = database.prepare_rows(url, engine, layer, rows, reload=False)
    catalog = load_catalog(settings.layers_dir, settings.maps_dir)
    load(engine, catalog)
    # statistics of every layer's rows, as a database in service has them: the parcels' load analysed the
    # table before the plan layers were there, and with those statistics each layer looks like all rows
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE features"))
    return catalog, loaded


def read_paths(engine: Engine, catalog: Catalog) -> dict[str, list[str]]:
    """The readers' requests by kind: on the parcels and on every plan layer."""
    layers = list(catalog.layers)
    with engine.connect() as conn:
        plan_features = [
            (r.layer_id, r.id)
            for r in conn.execute(
                text("SELECT layer_id, id FROM features WHERE layer_id <> :b ORDER BY id"), {"b": BENCH_LAYER}
            )
        ]
    bench = f"/collections/{BENCH_LAYER}/items"
    view = ",".join(str(v) for v in PLAN_VIEW)
    boxes = [",".join(str(v) for v in box) for box in region_boxes(16)]
    paths: dict[str, list[str]] = {
        "page": [url_path(bench, limit=100, f="json"), url_path(bench, limit=1000, f="json")]
        + [url_path(f"/collections/{lid}/items", f="json") for lid in layers]
        + [url_path(f"/collections/{lid}/items", f="html") for lid in layers[:4]],
        "bbox": [url_path(bench, bbox=box, limit=200, f="json") for box in boxes]
        + [url_path(f"/collections/{lid}/items", bbox=view, f="json") for lid in layers],
        "filter": [
            url_path(bench, filter="land_use='07' AND status='planned'", limit=100, f="json"),
            url_path(bench, filter=f"S_INTERSECTS(geometry,BBOX({boxes[0]}))", limit=100, f="json"),
            url_path(bench, status="existing", limit=100, f="json"),
            url_path(bench, sortby="-area_m2", limit=50, f="json"),
        ]
        + [url_path(f"/collections/{lid}/items", filter="status='planned'", f="json") for lid in layers]
        + [
            url_path(f"/collections/{lid}/items", filter="CASEI(name_zh) LIKE '%嘉%'", f="json")
            for lid in layers
        ],
        "feature": [url_path(f"{bench}/{i}", f="json") for i in database.sample_ids(engine, 64)]
        + [url_path(f"/collections/{lid}/items/{fid}", f="json") for lid, fid in plan_features]
        + [url_path(f"/collections/{lid}/items/{fid}", f="html") for lid, fid in plan_features[::8]],
        "tile": [
            f"/collections/{BENCH_LAYER}/tiles/WebMercatorQuad/{z}/{y}/{x}"
            for z in (12, 14)
            for x, y in region_tiles(z, 8)
        ]
        + [f"/tiles/WebMercatorQuad/{z}/{y}/{x}" for z in (10, 11) for x, y in region_tiles(z, 2)]
        + [
            f"/collections/{lid}/tiles/WebMercatorQuad/{z}/{y}/{x}"
            for lid in layers[:4]
            for z in (10, 12)
            for x, y in region_tiles(z, 2)
        ],
        "queryables": [f"/collections/{lid}/queryables" for lid in [*layers, BENCH_LAYER]],
        "collections": ["/collections?f=json", "/?f=json", "/conformance?f=json"]
        + [f"/collections/{lid}?f=json" for lid in [*layers, BENCH_LAYER]],
        "map": ["/maps/overview", "/maps/transport", "/maps"]
        + [f"/collections/{lid}/map" for lid in layers[:3]]
        + [f"/collections/{lid}/items/{fid}/map" for lid, fid in plan_features[:3]],
    }
    return paths


def _hot_features(engine: Engine) -> list[tuple[str, int]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT DISTINCT ON (layer_id) layer_id, id FROM features WHERE layer_id = ANY(:l)"
                " ORDER BY layer_id, id"
            ),
            {"l": list(HOT_LAYERS)},
        )
        return [(r.layer_id, r.id) for r in rows]


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user and system) a process has used so far, from /proc; None where unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def postgres_cpu_seconds(engine: Engine) -> float | None:
    """CPU time the PostgreSQL server has used so far, when it runs on this machine: its postmaster's own,
    that of its ended children (which it reaped) and that of its live ones (the backends, the workers)."""
    with engine.connect() as conn:
        backend = int(conn.scalar(text("SELECT pg_backend_pid()")))
    try:
        status = Path(f"/proc/{backend}/status").read_text()
        postmaster = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
        fields = Path(f"/proc/{postmaster}/stat").read_text().rsplit(")", 1)[1].split()
        total = sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")
        children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
    except (OSError, ValueError, StopIteration):
        return None
    return total + sum(cpu_seconds(int(child)) or 0.0 for child in children)


def backends(engine: Engine) -> dict[str, int]:
    """The other sessions on this database, by state."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT coalesce(state, 'unknown') AS state, count(*) AS n FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name <> :own GROUP BY 1 ORDER BY 1"
            ),
            {"own": SOAK_APPLICATION},
        )
        return {r.state: int(r.n) for r in rows}


def _merge(results: list[ClientResult]) -> ClientResult:
    merged = ClientResult()
    for result in results:
        for kind, stats in result.stats.items():
            merged.stats.setdefault(kind, KindStats()).add(stats)
        merged.server_errors += result.server_errors
        merged.server_error_samples += result.server_error_samples
        merged.unanswered_samples += result.unanswered_samples
        merged.acks += result.acks
        merged.unsure |= result.unsure
        merged.surprises += result.surprises
        merged.cpu_s += result.cpu_s
        merged.wall_s = max(merged.wall_s, result.wall_s)
    return merged


def _plans(
    options: Options, base_url: str, tokens: list[str], catalog: Catalog, engine: Engine
) -> list[ClientPlan]:
    """The client processes' work: editors dealt round, readers split evenly."""
    paths = read_paths(engine, catalog)
    hot = _hot_features(engine)
    tag = datetime.now(UTC).strftime("%H%M%S")
    end_at = time.time() + options.seconds
    editors = [
        EditorPlan(i + 1, tokens[i], layer, catalog.layers[layer].geometry_type)
        for i, layer in enumerate(EDIT_LAYERS[i % len(EDIT_LAYERS)] for i in range(options.editors))
    ]
    count = max(1, options.processes)
    return [
        ClientPlan(
            base_url=base_url,
            end_at=end_at,
            tag=tag,
            seed=options.seed + p,
            editors=editors[p::count],
            readers=options.readers // count + (1 if p < options.readers % count else 0),
            read_paths=paths,
            hot=hot,
        )
        for p in range(count)
    ]


def run_soak(options: Options) -> SoakResult:
    """Set up, run the clients, check, stop everything this run started."""
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    target = database.resolve(options.database_url, options.database, environment=False)
    if options.database_url is None:  # our own database on the embedded cluster: fresh every run
        drop_database(target.url)
        ensure_database(target.url)
    # the soak's own sessions are named, so that the backends it counts are the service's alone
    own_url = make_url(target.url).update_query_dict({"application_name": SOAK_APPLICATION})
    engine = sync_engine(own_url.render_as_string(hide_password=False))
    server = None
    try:
        print(f"Database: {target.origin}", flush=True)
        catalog, loaded = _prepare(engine, own_url.render_as_string(hide_password=False), options.rows)
        print(
            f"{BENCH_LAYER}: {options.rows:,} rows"
            + (f" generated in {loaded:.1f} s" if loaded is not None else " already there"),
            flush=True,
        )
        versions = database.server_versions(engine)
        run_tag = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        tokens = [
            add_key(engine, f"soak {run_tag} editor {i + 1:02d}", "editor") for i in range(options.editors)
        ]
        server = service_server(target.url, options.tile_cache_mb)
        server.name = "soak-service"
        server.start()
        print(
            f"Service on {server.base_url} (pid {server.pid}); {options.minutes:g} min of load …", flush=True
        )
        plans = _plans(options, server.base_url, tokens, catalog, engine)
        rss: list[tuple[float, int]] = []
        began, service_cpu, postgres_cpu = (
            time.monotonic(),
            cpu_seconds(server.pid),
            postgres_cpu_seconds(engine),
        )
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(len(plans), mp_context=context) as pool:
            futures = [pool.submit(run_clients, plan) for plan in plans]
            pending: set[concurrent.futures.Future[ClientResult]] = set(futures)
            while True:
                sample = rss_bytes(server.pid)
                if sample is not None:
                    rss.append((time.monotonic() - began, sample))
                if not pending:
                    break
                _, pending = concurrent.futures.wait(pending, timeout=options.rss_interval_s)
                if rss:
                    print(f"  {rss[-1][0]:6.0f} s  RSS {rss[-1][1] / 2**20:7.1f} MiB", flush=True)
            results = [f.result() for f in futures]
        elapsed = time.monotonic() - began
        service_end, postgres_end = cpu_seconds(server.pid), postgres_cpu_seconds(engine)
        load_average = os.getloadavg()
        merged = _merge(results)
        running = backends(engine)
        server.stop()
        stopped = backends(engine)
        for _ in range(50):  # the service's sessions end as it closes its pools
            if not stopped:
                break
            time.sleep(0.1)
            stopped = backends(engine)
        touched = {a.feature for a in merged.acks} | merged.unsure
        lost = lost_updates(merged.acks, read_states(engine, touched), merged.unsure)
        log_tail = server.log_path.read_text(errors="replace")[-4000:] if server.log_path else ""
        return SoakResult(
            options=options,
            started=started,
            origin=target.origin,
            versions=versions,
            stats=merged.stats,
            elapsed_s=elapsed,
            server_errors=merged.server_errors,
            server_error_samples=merged.server_error_samples,
            unanswered_samples=merged.unanswered_samples,
            acks=merged.acks,
            unsure=merged.unsure,
            lost=lost,
            surprises=merged.surprises,
            rss=rss,
            memory=memory_trend(rss, options.warmup, options.max_slope),
            backends_running=running,
            backends_stopped=stopped,
            client_cpu_s=merged.cpu_s,
            client_wall_s=merged.wall_s,
            service_cpu_s=None if service_cpu is None or service_end is None else service_end - service_cpu,
            load_average=load_average,
            postgres_cpu_s=None
            if postgres_cpu is None or postgres_end is None
            else postgres_end - postgres_cpu,
            service_log_tail=log_tail if merged.server_errors else "",
        )
    finally:
        if server is not None:
            server.stop()
        engine.dispose()
        if target.started_cluster:
            EmbeddedCluster(PROJECT_ROOT / ".data").stop()
            print("Stopped the embedded cluster this run started.", flush=True)
