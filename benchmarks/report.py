"""benchmarks/RESULTS.md: the machine, the settings, and per row count the ratios and the measurements."""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.loadgen import Sample

TARGETS = ("service", "raw", "tipg", "tipg-all")
TARGET_TITLES = {
    "service": "service — this service over HTTP",
    "raw": "raw — the service's SQL statement, no HTTP (pgbench, or psycopg without it)",
    "tipg": "tipg — over HTTP, on its own table with the same rows (tiles: asked for the properties our "
    "tiles carry at that zoom, `properties=`)",
    "tipg-all": "tipg-all — tipg's tiles as it cuts them by default, with every column (tile workloads only)",
}


@dataclass
class Cell:
    """One workload at one concurrency: each target's sample."""

    workload: str
    concurrency: int
    samples: dict[str, Sample] = field(default_factory=dict)


@dataclass
class RowCountResult:
    """Everything measured on one row count."""

    rows: int
    load_seconds: float | None
    descriptions: dict[str, str]
    cells: list[Cell] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    lifetime_rss: dict[str, int | None] = field(default_factory=dict)


def machine() -> dict[str, str]:
    """CPU, memory and system of this machine, from /proc where it exists."""
    info = {"CPUs (logical)": str(os.cpu_count())}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["CPU model"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["RAM"] = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    info["System"] = f"{platform.system()} {platform.release()} ({platform.machine()})"
    info["Python"] = platform.python_version()
    return info


def _number(value: float, digits: int = 1) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def _ratio(numerator: float, denominator: float) -> str:
    if not numerator or not denominator or math.isnan(numerator) or math.isnan(denominator):
        return "–"
    return f"{numerator / denominator:.2f}"


def _mib(value: int | None) -> str:
    return "–" if value is None else f"{value / 1024 / 1024:,.0f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """The lines of a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _section(result: RowCountResult) -> list[str]:
    loaded = (
        f"generated in {result.load_seconds:.1f} s for this run"
        if result.load_seconds is not None
        else "already loaded"
    )
    lines = [f"## {result.rows:,} rows", "", f"`bench_parcels` with {result.rows:,} parcels ({loaded}).", ""]
    lines += ["### Ratios", ""]
    lines += [
        "Throughput ratios above 1 and latency ratios below 1 favour the service.",
        "",
    ]
    ratio_rows = []
    every_column = any("tipg-all" in cell.samples for cell in result.cells)
    for cell in result.cells:
        s, r, t, a = (cell.samples.get(k) for k in TARGETS)
        row = [
            cell.workload,
            str(cell.concurrency),
            _ratio(s.rate, r.rate) if s and r else "–",
            _ratio(s.percentile(50), r.percentile(50)) if s and r else "–",
            _ratio(s.rate, t.rate) if s and t else "–",
            _ratio(s.percentile(50), t.percentile(50)) if s and t else "–",
        ]
        if every_column:
            row += [
                _ratio(s.rate, a.rate) if s and a else "–",
                _ratio(s.percentile(50), a.percentile(50)) if s and a else "–",
            ]
        ratio_rows.append(row)
    lines += markdown_table(
        [
            "workload",
            "conc.",
            "service/raw req/s",
            "service/raw p50",
            "service/tipg req/s",
            "service/tipg p50",
            *(["service/tipg-all req/s", "service/tipg-all p50"] if every_column else []),
        ],
        ratio_rows,
    )
    lines += ["", "### Measurements", ""]
    detail_rows = []
    for cell in result.cells:
        for target in TARGETS:
            sample = cell.samples.get(target)
            if sample is None:
                continue
            detail_rows.append(
                [
                    cell.workload,
                    str(cell.concurrency),
                    target,
                    _number(sample.rate),
                    _number(sample.percentile(50) * 1000, 2),
                    _number(sample.percentile(99) * 1000, 2),
                    _number(sample.mean_bytes, 0),
                    f"{sample.requests:,}",
                    str(sample.errors),
                    _mib(sample.peak_rss),
                ]
            )
    lines += markdown_table(
        [
            "workload",
            "conc.",
            "target",
            "req/s",
            "p50 ms",
            "p99 ms",
            "bytes/response",
            "requests",
            "errors",
            "peak RSS MiB",
        ],
        detail_rows,
    )
    peaks = ", ".join(f"{name} {_mib(value)} MiB" for name, value in result.lifetime_rss.items())
    if peaks:
        lines += ["", f"Peak RSS of each server process over the whole run (VmHWM): {peaks}."]
    if result.skipped:
        lines += ["", "### Not measured", ""] + [f"- {s}" for s in result.skipped]
    if result.notes:
        lines += ["", "### Checks and notes", ""] + [f"- {n}" for n in result.notes]
    return [*lines, ""]


def render(
    results: list[RowCountResult],
    *,
    date: str,
    machine_info: dict[str, str],
    versions: dict[str, str],
    settings: dict[str, str],
    notes: list[str],
) -> str:
    """The whole RESULTS.md."""
    lines = [
        "# Benchmark results",
        "",
        f"Measured on {date} by `python -m benchmarks.run` (see [README.md](README.md) for what is measured"
        " and how to run it).",
        "",
    ]
    lines += [f"> {note}" for note in notes]
    if notes:
        lines.append("")
    lines += ["## Machine and software", ""]
    lines += [f"- **{k}**: {v}" for k, v in machine_info.items()]
    lines += [f"- **{k}**: {v}" for k, v in versions.items()]
    lines += ["", "## Settings", ""]
    lines += [f"- **{k}**: {v}" for k, v in settings.items()]
    lines += ["", "Targets:", ""] + [f"- {title}" for title in TARGET_TITLES.values()]
    if results:
        lines += ["", "Workloads:", ""]
        lines += [f"- `{k}`: {v}" for k, v in results[0].descriptions.items()]
    lines.append("")
    for result in results:
        lines += _section(result)
    return "\n".join(lines)


def as_json(results: list[RowCountResult], **meta: Any) -> dict[str, Any]:
    """Every number, for later comparison (written to benchmarks/output/)."""
    return {
        **meta,
        "results": [
            {
                "rows": r.rows,
                "load_seconds": r.load_seconds,
                "skipped": r.skipped,
                "notes": r.notes,
                "lifetime_rss": r.lifetime_rss,
                "cells": [
                    {
                        "workload": c.workload,
                        "concurrency": c.concurrency,
                        "targets": {k: v.as_dict() for k, v in c.samples.items()},
                    }
                    for c in r.cells
                ],
            }
            for r in results
        ],
    }


def cells_json(group: Sequence[Cell], samples_key: str) -> list[dict[str, Any]]:
    """Cells as JSON: workload, concurrency and each sample's figures under `samples_key`."""
    return [
        {
            "workload": c.workload,
            "concurrency": c.concurrency,
            samples_key: {n: s.as_dict() for n, s in c.samples.items()},
        }
        for c in group
    ]
