"""benchmarks/RESULTS-soak.md: the checks, the machine and parameters, requests per kind, writes, memory
over time and the PostgreSQL backends."""

from __future__ import annotations

import math
from collections import Counter

from benchmarks.report import machine, markdown_table
from benchmarks.soak.checks import JUDGED_AFTER_S
from benchmarks.soak.run import SoakResult

DEFAULT_MINUTES = 10.0
READ_KINDS = ("page", "bbox", "filter", "feature", "tile", "queryables", "collections", "map")
WRITE_KINDS = ("create", "patch", "put", "delete", "revert", "restore", "hot-read", "hot-patch", "hot-put")
EXPECTED = {"hot-patch": {"412"}, "hot-put": {"412"}}  # a stale If-Match on a shared feature
MAX_RSS_ROWS = 40


def _ms(seconds: float) -> str:
    return "–" if math.isnan(seconds) else f"{seconds * 1000:,.1f}"


def _cpu(seconds: float | None, elapsed: float) -> str:
    if seconds is None or not elapsed:
        return "– (not measured)"
    return f"{seconds:.0f} CPU-seconds ({seconds / elapsed * 100:.0f} % of one core)"


def _ok(status: str, kind: str) -> bool:
    return status.isdigit() and (status[0] == "2" or status == "304" or status in EXPECTED.get(kind, ()))


def _verdict(passed: bool) -> str:
    return "pass" if passed else "**FAIL**"


def render(result: SoakResult) -> str:
    """The whole report."""
    o = result.options
    lines = ["# Soak results", ""]
    if o.minutes < DEFAULT_MINUTES:
        lines += [
            f"> **Short run: {o.minutes:g} minutes** (the soak's default is {DEFAULT_MINUTES:g})."
            " It shows that the run and its checks work; the figures of a full run come from"
            " `python -m benchmarks.soak`.",
            "",
        ]
    lines += [
        f"Run on {result.started} by `python -m benchmarks.soak --minutes {o.minutes:g} --editors {o.editors}"
        f" --readers {o.readers} --rows {o.rows}` (see [README.md](README.md#soak) for what it checks).",
        "",
        "## Checks",
        "",
    ]
    memory = result.memory
    lines += markdown_table(
        ["check", "result", "verdict"],
        [
            ["5xx responses", str(result.server_errors), _verdict(result.server_errors == 0)],
            ["lost updates", str(len(result.lost)), _verdict(not result.lost)],
            [
                "answers contradicting what an editor knew",
                str(len(result.surprises)),
                _verdict(not result.surprises),
            ],
            [
                "service RSS slope after warm-up",
                "–" if memory is None else f"{memory.slope_mib_per_min:+.2f} MiB/min (limit {o.max_slope:g})",
                "not judged (too short)"
                if memory is not None and not memory.judged
                else _verdict(memory is not None and not memory.grows),
            ],
            ["stuck PostgreSQL backends", str(result.stuck_backends), _verdict(result.stuck_backends == 0)],
        ],
    )
    lines += ["", "## Machine and software", ""]
    lines += [f"- **{k}**: {v}" for k, v in machine().items()]
    lines += [f"- **{k}**: {v}" for k, v in result.versions.items()]
    load = " / ".join(f"{v:.1f}" for v in result.load_average) + " (1 / 5 / 15 min)"
    share = result.client_cpu_s / result.client_wall_s * 100 if result.client_wall_s else math.nan
    lines += [
        "",
        "## Parameters",
        "",
        f"- **Duration**: {o.minutes:g} min of load ({result.elapsed_s:.0f} s measured, client processes"
        " starting included)",
        f"- **Editors**: {o.editors}, each with its own editor key; **readers**: {o.readers}; all closed"
        " loops (each sends its next request when the last one is answered)",
        f"- **Rows**: `{'bench_parcels'}` with {o.rows:,} generated parcels, and the plan layers",
        f"- **Database**: {result.origin}",
        "- **Service**: one uvicorn process (uvloop, httptools), `JXPLAN_BENCH_LAYERS=1`, tile cache"
        f" {o.tile_cache_mb} MiB, the default pools",
        f"- **Clients**: asyncio with httpx (uvloop) in {o.processes} client processes, one keep-alive"
        f" connection per client; they used {result.client_cpu_s:.0f} CPU-seconds in"
        f" {result.client_wall_s:.0f} s"
        f" ({share:.0f} % of one core, on {machine().get('CPUs (logical)', '?')} shared with the service and"
        " PostgreSQL)",
        f"- **CPU**: the service {_cpu(result.service_cpu_s, result.elapsed_s)}, PostgreSQL"
        f" {_cpu(result.postgres_cpu_s, result.elapsed_s)}; the machine's load average at the end {load}",
        f"- **Memory**: VmRSS sampled every {o.rss_interval_s:g} s; warm-up {o.warmup:g} s",
        "",
        "## Requests by kind",
        "",
        "p50/p99: client-side latency of every request of the kind. *Other statuses*: everything but 2xx and"
        " 304 (412 on the hot features is expected: the editor reads again and retries).",
        "",
    ]
    kinds = [k for k in (*READ_KINDS, *WRITE_KINDS) if k in result.stats]
    kinds += sorted(set(result.stats) - set(kinds))
    rows = []
    for kind in kinds:
        stats = result.stats[kind]
        others = ", ".join(
            f"{status}: {n:,}" for status, n in sorted(stats.statuses.items()) if not _ok(status, kind)
        )
        expected = ", ".join(
            f"{status}: {n:,} (expected)"
            for status, n in sorted(stats.statuses.items())
            if status in EXPECTED.get(kind, ())
        )
        rows.append(
            [
                kind,
                f"{sum(stats.statuses.values()):,}",
                f"{sum(stats.statuses.values()) / result.elapsed_s:,.1f}" if result.elapsed_s else "–",
                _ms(stats.percentile(50)),
                _ms(stats.percentile(99)),
                "; ".join(x for x in (others, expected) if x) or "–",
            ]
        )
    lines += markdown_table(["kind", "requests", "req/s", "p50 ms", "p99 ms", "other statuses"], rows)
    total = sum(sum(s.statuses.values()) for s in result.stats.values())
    lines += [
        "",
        f"All kinds: {total:,} requests, {total / result.elapsed_s:,.1f} req/s." if result.elapsed_s else "",
    ]

    operations = Counter(a.operation for a in result.acks)
    lines += [
        "",
        "## Writes",
        "",
        f"Acknowledged (2xx) writes: {len(result.acks):,} on {len({a.feature for a in result.acks}):,}"
        f" features ({', '.join(f'{op} {n:,}' for op, n in sorted(operations.items()))}). Each was checked in"
        " the database after the run: every feature's versions 1..N without a gap (history and current"
        " row), every acknowledged version stored with the mark its client sent (a delete as a deleted"
        " state), and the last stored version the last one acknowledged.",
        "",
        f"- **Lost updates**: {len(result.lost)}",
    ]
    lines += [f"  - {p}" for p in result.lost[:50]]
    if result.unsure:
        lines.append(
            f"- **Writes without an answer** (timeout or dropped connection): to {len(result.unsure)}"
            " features; their outcome is unknown, so a later version than the last acknowledged is"
            " accepted there"
        )
    if result.surprises:
        lines += ["- **Answers contradicting what the editor knew**:"] + [
            f"  - {s}" for s in result.surprises[:50]
        ]

    lines += ["", "## 5xx responses", ""]
    if result.server_errors:
        lines += [f"{result.server_errors} responses were 5xx. The first ones, with their bodies:", "", "```"]
        lines += [*result.server_error_samples, "```", "", "The end of the service's log:", "", "```"]
        lines += [result.service_log_tail, "```"]
    else:
        lines.append("None.")

    if result.unanswered_samples:
        lines += [
            "",
            "## Requests without an answer",
            "",
            "A timeout or a dropped connection; the first ones:",
        ]
        lines += ["", "```", *result.unanswered_samples, "```"]

    lines += ["", "## Service memory (VmRSS)", ""]
    if memory is None:
        lines.append("Not sampled.")
    else:
        lines += [
            f"Start {memory.start_mib:.1f} MiB, after warm-up ({o.warmup:g} s) {memory.warm_mib:.1f} MiB,"
            f" end {memory.end_mib:.1f} MiB, peak {memory.peak_mib:.1f} MiB. Slope after warm-up (least"
            f" squares): **{memory.slope_mib_per_min:+.2f} MiB/min**"
            + f" over {memory.judged_s:.0f} s"
            + (
                " — **growth flagged**."
                if memory.grows
                else f" (growth is flagged above {o.max_slope:g})."
                if memory.judged
                else f": too short to tell growth from the tail of warm-up (judged over {JUDGED_AFTER_S:g} s"
                " after warm-up or more); a 10-minute run judges it."
            ),
            "",
        ]
        step = max(1, math.ceil(len(result.rss) / MAX_RSS_ROWS))
        shown = result.rss[::step]
        if result.rss and shown[-1] is not result.rss[-1]:
            shown.append(result.rss[-1])
        lines += markdown_table(["time s", "RSS MiB"], [[f"{t:.0f}", f"{b / 2**20:.1f}"] for t, b in shown])

    def states(found: dict[str, int]) -> str:
        return ", ".join(f"{state} {n}" for state, n in found.items()) or "none"

    lines += [
        "",
        "## PostgreSQL backends",
        "",
        f"- Once the clients stopped, the service still running: {states(result.backends_running)}"
        " (its pools' idle connections are expected; `idle in transaction` is not)",
        f"- After the service stopped: {states(result.backends_stopped)}",
        "",
    ]
    return "\n".join(lines)
