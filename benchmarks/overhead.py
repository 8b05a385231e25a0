"""The CPU the operator's view costs per request: the request observer (request id, metrics, access log).

The same app is built three times on the plan layers — as served, with its access log off, and with the
observer taken out of its middleware — and each answers one feature and one (cached) tile N times in turn,
in-process through httpx's ASGI transport, with logging configured as `jxplan serve` does it (JSON lines;
stderr sent to /dev/null). The figure is this process's CPU time per request (`time.process_time`), the
median of the rounds; PostgreSQL's own CPU is not counted.

    .venv/bin/python -m benchmarks.overhead            # 2,000 requests per round, 5 rounds
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Sequence

import httpx
import morecantile
from fastapi import FastAPI

from benchmarks.database import resolve
from geo_service.app import create_app
from geo_service.catalog import load_catalog
from geo_service.db import migrate
from geo_service.db.engine import sync_engine
from geo_service.loader import load
from geo_service.ops.logformat import configure_logging
from geo_service.ops.requestlog import RequestObserver
from geo_service.settings import PROJECT_ROOT, Settings


def _without_observer(app: FastAPI) -> FastAPI:
    app.user_middleware = [m for m in app.user_middleware if m.cls is not RequestObserver]
    return app


async def _cpu_per_request(app: FastAPI, path: str, requests: int) -> float:
    """Microseconds of this process's CPU per request of `path`."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for _ in range(50):  # warm-up: prepared statements, the tile cache
            assert (await client.get(path)).status_code == 200
        start = time.process_time()
        for _ in range(requests):
            await client.get(path)
        return (time.process_time() - start) / requests * 1e6


async def _measure(settings: Settings, requests: int, rounds: int) -> dict[str, dict[str, float]]:
    catalog = load_catalog(settings.layers_dir, settings.maps_dir)
    apps = {
        "without": _without_observer(create_app(settings, catalog)),
        "no log": create_app(settings.model_copy(update={"access_log": False}), catalog),
        "with": create_app(settings, catalog),
    }
    tile = morecantile.tms.get("WebMercatorQuad").tile(120.76, 30.76, 11)
    samples: dict[str, dict[str, list[float]]] = {}
    async with (
        apps["without"].router.lifespan_context(apps["without"]),
        apps["no log"].router.lifespan_context(apps["no log"]),
        apps["with"].router.lifespan_context(apps["with"]),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=apps["with"]), base_url="http://b") as client,
    ):
        page = (await client.get("/collections/rail_stations/items", params={"limit": 1})).json()
        paths = {
            "feature": f"/collections/rail_stations/items/{page['features'][0]['id']}",
            "tile": f"/collections/rail_stations/tiles/WebMercatorQuad/{tile.z}/{tile.y}/{tile.x}",
        }
        samples = {kind: {variant: [] for variant in apps} for kind in paths}
        for _ in range(rounds):  # interleaved, so that a busy moment of the machine hits both
            for kind, path in paths.items():
                for variant, app in apps.items():
                    samples[kind][variant].append(await _cpu_per_request(app, path, requests))
    return {k: {v: statistics.median(s) for v, s in by.items()} for k, by in samples.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print a small table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000, help="requests per round and variant")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database", default="jxplan_overhead", help="database on the embedded cluster")
    args = parser.parse_args(argv)
    target = resolve(None, args.database)
    migrate.upgrade(target.url)
    settings = Settings(database_url=target.url, data_dir=PROJECT_ROOT / ".data")
    engine = sync_engine(target.url)
    load(engine, load_catalog(settings.layers_dir, settings.maps_dir))
    engine.dispose()
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115  (the log lines, as `jxplan serve` writes them)
    configure_logging(settings)
    results = asyncio.run(_measure(settings, args.requests, args.rounds))
    sys.stderr = sys.__stderr__
    print("| request | CPU µs without the observer | with, access log off | with (as served) |")
    print("|---|---|---|---|")
    for kind, by in results.items():
        base = by["without"]
        cells = [f"{by[v]:.0f} ({(by[v] - base) / base * 100:+.1f} %)" for v in ("no log", "with")]
        print(f"| {kind} | {base:.0f} | {' | '.join(cells)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
