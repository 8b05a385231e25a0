"""Prometheus metrics at `/metrics`: requests and latency by route template, pools, tile cache, writes.

Each app has its own `CollectorRegistry` (a process may build many apps, as the tests do). Request metrics are
counted by the request observer (geo_service.ops.requestlog); the pools and the tile cache are read when
Prometheus scrapes, so serving costs nothing for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import Scope

from geo_service.ogc.tilecache import TileCache

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})  # others: "other"
# one feature takes about a millisecond, a big download many seconds
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
ITEMS = "/collections/{collectionId}/items"
FEATURE = "/collections/{collectionId}/items/{featureId}"
WRITE_OPERATIONS = {
    (ITEMS, "POST"): "create",
    (FEATURE, "PUT"): "replace",
    (FEATURE, "PATCH"): "update",
    (FEATURE, "DELETE"): "delete",
    ("/collections/{collectionId}/import", "POST"): "import",
    (FEATURE + "/revert", "POST"): "revert",
}

router = APIRouter()


class RequestMetrics:
    """The per-app registry and the request metrics, with their labelled children kept at hand (looking a
    child up by its labels costs more than the rest of the bookkeeping)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "jxplan_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "jxplan_http_request_duration_seconds",
            "Time from a request's arrival to the last byte of its response, by route template and method.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.writes = Counter(
            "jxplan_writes",
            "Writes answered with 2xx, by collection and operation (create, replace, update, delete, import, "
            "revert; a dry-run import is not a write).",
            ["collection", "operation"],
            registry=registry,
        )
        self.processes = Counter(
            "jxplan_process_executions",
            "Executions of OGC API – Processes, by process, mode (sync, async) and outcome (successful, "
            "failed: a refused input or an error; interrupted: the database went away).",
            ["process", "mode", "outcome"],
            registry=registry,
        )
        self.process_seconds = Histogram(
            "jxplan_process_duration_seconds",
            "Time a process took to run (its statement; an async job from being taken to its answer).",
            ["process", "mode"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._timers: dict[tuple[str, str], Any] = {}

    def observe_process(self, process: str, mode: str, outcome: str, seconds: float) -> None:
        """Count one execution of a process."""
        self.processes.labels(process, mode, outcome).inc()
        self.process_seconds.labels(process, mode).observe(seconds)

    def observe(self, scope: Scope, route: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        method = scope["method"]
        if method not in METHODS:
            method = "other"
        key = (route, method, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self.requests.labels(route, method, str(status))
        counter.inc()
        timer = self._timers.get(key[:2])
        if timer is None:
            timer = self._timers[key[:2]] = self.latency.labels(route, method)
        timer.observe(seconds)
        operation = WRITE_OPERATIONS.get((route, method)) if 200 <= status < 300 else None
        if operation is not None and not scope.get("state", {}).get("dry_run"):
            self.writes.labels(scope["path_params"]["collection_id"], operation).inc()


class ServiceCollector(Collector):
    """The pools and the tile cache as they are at scrape time."""

    def __init__(self, state: Any) -> None:
        self.state = state  # the app's state: the pools exist only while the app runs

    def collect(self) -> Iterator[Metric]:
        """The read pool's connections and waiting requests, the write pool's checked-out connections and the
        tile cache's hits, misses, evictions, bytes and entries."""
        reads = getattr(self.state, "reads", None)
        if reads is not None:
            stats = reads.get_stats()
            size, idle = stats.get("pool_size", 0), stats.get("pool_available", 0)
            connections = GaugeMetricFamily(
                "jxplan_read_pool_connections", "Read-pool connections by state.", labels=["state"]
            )
            connections.add_metric(["in_use"], size - idle)
            connections.add_metric(["idle"], idle)
            yield connections
            yield GaugeMetricFamily(
                "jxplan_read_pool_waiting",
                "Requests waiting for a read connection.",
                value=stats.get("requests_waiting", 0),
            )
            yield GaugeMetricFamily(
                "jxplan_read_pool_max", "The read pool's maximum size.", value=stats.get("pool_max", 0)
            )
            yield CounterMetricFamily(
                "jxplan_read_pool_connection_errors",
                "Failed attempts to open a read connection.",
                value=stats.get("connections_errors", 0),
            )
        replicas = getattr(self.state, "replicas", None)
        if replicas is not None:
            up = GaugeMetricFamily(
                "jxplan_replica_up", "1 while a replica is used for reads.", labels=["replica"]
            )
            lag = GaugeMetricFamily(
                "jxplan_replica_lag_seconds", "How far a replica is behind the primary.", labels=["replica"]
            )
            for replica in replicas.replicas:
                up.add_metric([replica.name], 1 if replica.usable else 0)
                if replica.lag_s is not None:
                    lag.add_metric([replica.name], replica.lag_s)
            yield up
            yield lag
            targets = CounterMetricFamily(
                "jxplan_reads",
                "Reads (pages, features, tiles) by the server that answered.",
                labels=["target"],
            )
            for target, count in sorted(replicas.reads.items()):
                targets.add_metric([target], count)
            yield targets
        engine = getattr(self.state, "engine", None)
        if engine is not None:
            checked_out = getattr(engine.sync_engine.pool, "checkedout", None)
            if checked_out is not None:
                yield GaugeMetricFamily(
                    "jxplan_write_pool_checked_out", "Write-pool connections in use.", value=checked_out()
                )
        answers = getattr(self.state, "answers", None)
        if answers is not None:
            for name, text, count in (
                ("hits", "Process answers (county summaries) served from the cache.", answers.hits),
                ("misses", "Process answers looked up and computed by PostgreSQL.", answers.misses),
            ):
                yield CounterMetricFamily(f"jxplan_process_cache_{name}", text, value=count)
        cache: TileCache | None = getattr(self.state, "tile_cache", None)
        if cache is not None:
            for name, text, count in (
                ("hits", "Tiles served from the cache.", cache.hits),
                ("misses", "Tiles looked up and not found (then cut by PostgreSQL).", cache.misses),
                ("evictions", "Tiles pushed out to stay within the budget.", cache.evictions),
            ):
                yield CounterMetricFamily(f"jxplan_tile_cache_{name}", text, value=count)
            yield GaugeMetricFamily("jxplan_tile_cache_bytes", "Bytes of tiles kept.", value=cache.bytes)
            yield GaugeMetricFamily("jxplan_tile_cache_entries", "Tiles kept.", value=len(cache))
            yield GaugeMetricFamily(
                "jxplan_tile_cache_max_bytes",
                "The cache's budget (JXPLAN_TILE_CACHE_MB).",
                value=cache.max_bytes,
            )


def request_metrics(state: Any) -> RequestMetrics:
    """A new registry with the request metrics and the scrape-time collector of the app whose state it is."""
    registry = CollectorRegistry()
    registry.register(ServiceCollector(state))
    return RequestMetrics(registry)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Every metric in Prometheus's text format."""
    registry: CollectorRegistry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
