"""`python -m benchmarks.soak`: 16 editors and 64 readers against the service for 10 minutes (by default),
then the checks; writes benchmarks/RESULTS-soak.md. Exits 1 when a check fails. See benchmarks/README.md."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.soak import report
from benchmarks.soak.run import Options, run_soak
from geo_service.settings import PROJECT_ROOT

RESULTS = PROJECT_ROOT / "benchmarks" / "RESULTS-soak.md"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    defaults = Options()
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=defaults.minutes, help="how long the load runs")
    parser.add_argument("--editors", type=int, default=defaults.editors, help="editor clients")
    parser.add_argument("--readers", type=int, default=defaults.readers, help="reader clients")
    parser.add_argument("--rows", type=int, default=defaults.rows, help="generated parcels (bench_parcels)")
    parser.add_argument(
        "--processes", type=int, default=defaults.processes, help="client processes sharing the clients"
    )
    parser.add_argument(
        "--database-url",
        help="a throwaway PostGIS database to run in as it is (default: a fresh database on the embedded"
        " cluster; DATABASE_URL is not used, the soak edits features)",
    )
    parser.add_argument("--database", default=defaults.database, help="database name on the embedded cluster")
    parser.add_argument("--tile-cache", type=int, default=defaults.tile_cache_mb, metavar="MB")
    parser.add_argument("--warmup", type=float, help="seconds before the memory slope is measured")
    parser.add_argument("--rss-interval", type=float, default=defaults.rss_interval_s, metavar="SECONDS")
    parser.add_argument(
        "--max-slope", type=float, default=defaults.max_slope, help="MiB/min of RSS growth flagged"
    )
    parser.add_argument("--output", default=str(RESULTS), help="where to write the Markdown report")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the soak, write the report; 0 when every check passed."""
    args = parse_args(argv)
    options = Options(
        minutes=args.minutes,
        editors=args.editors,
        readers=args.readers,
        rows=args.rows,
        processes=args.processes,
        database_url=args.database_url,
        database=args.database,
        tile_cache_mb=args.tile_cache,
        warmup_s=args.warmup,
        rss_interval_s=args.rss_interval,
        max_slope=args.max_slope,
    )
    result = run_soak(options)
    path = Path(args.output)
    path.write_text(report.render(result), encoding="utf-8")
    print(f"\nWrote {path}.")
    print(f"5xx {result.server_errors}, lost updates {len(result.lost)}, surprises {len(result.surprises)},")
    for line in result.lost[:20] + result.surprises[:20] + result.server_error_samples[:5]:
        print("  " + line)
    if result.memory is not None:
        print(f"RSS slope after warm-up {result.memory.slope_mib_per_min:+.2f} MiB/min", end="")
        print(" (growth flagged)" if result.memory.grows else "" if result.memory.judged else " (not judged)")
    print(f"stuck backends {result.stuck_backends}: {'all checks passed' if result.ok else 'CHECKS FAILED'}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
