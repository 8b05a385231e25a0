"""`python -m benchmarks.scale`: its command line and its report, from samples made up here (the run itself is
a benchmark, never a test: nothing here is timed), and the streaming replica it reads from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import scale
from benchmarks.loadgen import Sample
from benchmarks.report import Cell


def test_defaults_and_options() -> None:
    """100,000 rows, concurrency 1 and 16, every leg and workload, the service's tile cache, edits on."""
    args = scale.parse_args([])
    assert args.rows == 100_000 and args.concurrency == [1, 16]
    assert args.legs == list(scale.LEGS) and args.workloads == list(scale.WORKLOADS)
    assert args.tile_cache == 32 and args.write_seconds > 0 and not args.no_cold_tiles
    assert args.output.endswith("RESULTS-scale.md")
    args = scale.parse_args(
        ["--rows", "1000000", "--concurrency", "1", "16", "32", "--legs", "w1", "nginx", "--no-cold-tiles"]
    )
    assert args.rows == 1_000_000 and args.concurrency == [1, 16, 32] and args.legs == ["w1", "nginx"]
    assert args.no_cold_tiles


@pytest.mark.parametrize(
    "argv", [["--rows", "0"], ["--legs", "w3"], ["--workloads", "items-7"], ["--concurrency", "0"]]
)
def test_bad_options_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """A row count or concurrency below 1, or an unknown leg or workload, stops with a usage error."""
    with pytest.raises(SystemExit) as stopped:
        scale.parse_args(argv)
    assert stopped.value.code == 2
    assert "usage: python -m benchmarks.scale" in capsys.readouterr().err


def _sample(requests: int, seconds: float, latency: float, errors: int = 0) -> Sample:
    return Sample(latencies=[latency] * requests, bytes=100 * requests, errors=errors, elapsed=seconds)


def _result() -> scale.ScaleResult:
    result = scale.ScaleResult(100_000, ["w1", "w2", "nginx"])
    result.descriptions = {"items-100": "first page of 100 features", "tile-z12": "vector tile at zoom 12"}
    result.cells = [
        Cell(
            "items-100",
            16,
            {
                "w1": _sample(1000, 2.0, 0.030),
                "w2": _sample(1500, 2.0, 0.020),
                "nginx": _sample(3000, 2.0, 0.01),
            },
        ),
    ]
    result.cold_legs = ["w1", "w2"]
    result.cold = [Cell("tile-z12", 1, {"w1": _sample(700, 1.0, 0.001), "w2": _sample(700, 1.0, 0.001, 7)})]
    writes = scale.WriteSample(
        writes=[0.01] * 50, reads=[0.004] * 49 + [0.05], stale=1, elapsed=2.0, carried=50
    )
    result.writes = {"w1": writes}
    result.skipped = ["the replica leg: no replica (give --replica-url)"]
    return result


def test_report_lists_every_leg_side_by_side(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One row per workload and concurrency with each leg's req/s and p50, the ratios to one worker, the
    cold tiles with their errors, the edits, and what was not measured; every number in the JSON file."""
    monkeypatch.setattr(scale, "OUTPUT", tmp_path / "output")
    output = tmp_path / "RESULTS-scale.md"
    numbers = scale.write_report(
        _result(), output, date="2026-12-03 18:00 UTC", settings={"Concurrency": "16"}
    )
    text = output.read_text(encoding="utf-8")
    assert "| `items-100` | 16 | 500 (30.0) | 750 (20.0) | 1,500 (10.0) | 1.50 | 3.00 |" in text
    assert "| w2/w1 | nginx/w1 |" in text
    assert "## Tiles, tile cache off" in text
    assert "| `tile-z12` | 1 | 700 (1.0) | 693 (1.0, **7 errors**) | 0.99 |" in text
    assert "| 1 worker | 25.0 | 10.0 | 4.0 | 50.0 | 50 | 1 | 0 |" in text
    assert "- the replica leg: no replica (give --replica-url)" in text
    assert "Run 2026-12-03 18:00 UTC" in text and "| Concurrency | 16 |" in text
    assert "--rows 100000" in text
    assert "## Reading these numbers" in text and "not how far it scales" in text
    assert numbers == tmp_path / "output" / "results-scale.json"
    data = json.loads(numbers.read_text(encoding="utf-8"))
    assert data["reads"][0]["legs"]["nginx"]["req_per_s"] == 1500
    assert data["cold_tiles"][0]["legs"]["w2"]["errors"] == 7
    assert data["writes"]["w1"]["edits_per_s"] == 25 and data["writes"]["w1"]["stale_reads"] == 1


def test_per_core_takes_the_highest_concurrency() -> None:
    """Throughput per core is read at the highest concurrency measured, per workload."""
    cells = [
        Cell("feature", 1, {"w2": _sample(100, 1.0, 0.01)}),
        Cell("feature", 16, {"w2": _sample(900, 1.0, 0.01)}),
    ]
    assert scale.per_core(cells, "w2", 2) == {"feature": 450}
    assert scale.per_core(cells, "replica", 2) == {}
