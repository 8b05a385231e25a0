"""`python -m benchmarks.analysis`: its command line and its report, from samples made up here (the run itself
is a benchmark, never a test: nothing here is timed), and one real pass of its request bodies through the
service and the raw statements on a small private database."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from sqlalchemy import Engine

from benchmarks import analysis
from benchmarks.database import Target
from benchmarks.loadgen import PostRequest, Sample, run_http_jobs, run_http_post, run_wrk_post, wrk_path
from benchmarks.report import Cell
from geo_service.app import create_app
from geo_service.bench import BENCH_LAYER, REGION, load_bench_layer
from geo_service.catalog import load_catalog, read_bench_layer
from geo_service.loader import load
from geo_service.settings import PROJECT_ROOT, Settings
from tests.conftest import running_server

LAYERS = PROJECT_ROOT / "layers"
MAPS = PROJECT_ROOT / "maps"


def test_defaults_and_options() -> None:
    """100,000 rows, 10 s per cell in 2 rounds, concurrency 1 and 16 (jobs 1 and 4), every workload."""
    args = analysis.parse_args([])
    assert args.rows == 100_000 and args.duration == 10 and args.rounds == 2
    assert args.concurrency == [1, 16] and args.job_concurrency == [1, 4]
    assert args.workloads == list(analysis.WORKLOAD_KEYS) and args.workloads[-1] == "job"
    assert args.output.endswith("RESULTS-analysis.md") and args.database == "jxplan_bench"
    args = analysis.parse_args(
        ["--rows", "1000000", "--duration", "4", "--concurrency", "1", "8", "--workloads", "nearby", "job"]
    )
    assert args.rows == 1_000_000 and args.duration == 4 and args.concurrency == [1, 8]
    assert args.workloads == ["nearby", "job"]


@pytest.mark.parametrize(
    "argv",
    [["--rows", "0"], ["--workloads", "tile-z12"], ["--concurrency", "0"], ["--job-concurrency", "0"]],
)
def test_bad_options_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """A row count or concurrency below 1, or an unknown workload, stops with a usage error."""
    with pytest.raises(SystemExit) as stopped:
        analysis.parse_args(argv)
    assert stopped.value.code == 2
    assert "usage: python -m benchmarks.analysis" in capsys.readouterr().err


def test_workloads_ask_what_the_brief_says() -> None:
    """The draft site by 嘉兴南站, a 2 km square of parcels (limit 5000), both summaries, nearby 2 km."""
    found = {w.key: w for w in analysis.build_workloads()}
    assert list(found) == list(analysis.SYNC_KEYS)
    assert found["site-check-plan"].inputs == {"site": analysis.DRAFT_SITE}
    parcels = found["site-check-parcels"].inputs
    assert parcels["layers"] == [BENCH_LAYER] and parcels["limit"] == 5000
    ring = parcels["site"]["coordinates"][0]
    west, south = ring[0]
    east, north = ring[2]
    assert west < 120.75 < east and south < 30.75 < north
    assert REGION[0] < west and east < REGION[2] and REGION[1] < south and north < REGION[3]
    assert 1.9 < (north - south) * 111.32 < 2.1  # km
    assert found["county-summary-csv"].inputs == {"format": "csv"}
    assert found["nearby"].inputs["distance"] == 2000
    request = found["nearby"].request
    assert request.path == "/processes/nearby/execution"
    assert json.loads(request.body) == {"inputs": found["nearby"].inputs}
    assert request.headers == {"Content-Type": "application/json"}


def _sample(requests: int, seconds: float, latency: float, errors: int = 0, size: int = 100) -> Sample:
    return Sample(latencies=[latency] * requests, bytes=size * requests, errors=errors, elapsed=seconds)


def _result() -> analysis.AnalysisResult:
    result = analysis.AnalysisResult(1_000_000)
    result.descriptions = {
        "site-check-parcels": "a 2 km square on the parcels",
        "nearby": "within 2 km of 嘉兴南站",
        "job": "site-check-plan as a job",
    }
    result.cells = [
        Cell("nearby", 1, {"service": _sample(100, 2.0, 0.010), "raw": _sample(400, 2.0, 0.002)}),
        Cell("site-check-parcels", 16, {"service": _sample(30, 3.0, 0.5, errors=2, size=440_000)}),
    ]
    result.jobs = [Cell("job", 4, {"service": _sample(20, 10.0, 0.8, size=5000)})]
    result.probes = {
        "site-check-parcels": analysis.Probe(200, 441_036, "items_total 629, 629 listed", True),
        "nearby": analysis.Probe(200, 4550, "total 9 in 5 layers", False),
    }
    result.clients = {"nearby": "wrk", "site-check-parcels": "httpx"}
    result.skipped = ["raw `site-check-parcels`: its statement could not be built (made up)"]
    result.notes = ["a note"]
    return result


def test_report_puts_service_and_raw_side_by_side(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A row per workload and concurrency: each target's req/s, p50 and p99, the ratios, bytes, errors; the
    job round trips; the workloads with what they answered; what was not measured; the JSON file."""
    monkeypatch.setattr(analysis, "OUTPUT", tmp_path / "output")
    output = tmp_path / "RESULTS-analysis.md"
    numbers = analysis.write_report(
        _result(), output, date="2026-12-04 20:00 UTC", settings={"Load average (1, 5, 15 min)": "1.0"}
    )
    text = output.read_text(encoding="utf-8")
    assert (
        "| `nearby` | 1 | 50.0 | 10.0 | 10.0 | 200.0 | 2.0 | 2.0 | 0.25 | 5.00 | 100 | 0 / 0 | wrk |" in text
    )
    assert (
        "| `site-check-parcels` | 16 | 9.3 | 500.0 | 500.0 | – | – | – | – | – | 471,429 | **2** | httpx |"
        in text
    )
    assert "| 4 | 2.0 | 800.0 | 800.0 | 20 | 5,000 | 0 |" in text
    assert "441,036 bytes, items_total 629, 629 listed; the same bytes as the raw statement's" in text
    assert "**not** the raw statement's bytes" in text
    assert "- raw `site-check-parcels`: its statement could not be built (made up)" in text
    assert "> a note" in text and "| Load average (1, 5, 15 min) | 1.0 |" in text
    assert "Run 2026-12-04 20:00 UTC" in text and "--rows 1000000" in text
    assert "tipg has no processes" in text and "pygeoapi" in text
    assert numbers == tmp_path / "output" / "results-analysis.json"
    data = json.loads(numbers.read_text(encoding="utf-8"))
    assert data["cells"][0]["targets"]["raw"]["req_per_s"] == 200
    assert data["jobs"][0]["targets"]["service"]["requests"] == 20
    assert data["probes"]["nearby"]["same_as_raw"] is False
    assert data["clients"] == {"nearby": "wrk", "site-check-parcels": "httpx"}


def test_client_choice() -> None:
    """auto: wrk for what answers within 100 ms, httpx for slower answers; httpx whenever wrk is missing."""
    fast = analysis.Probe(200, 10, "", True, 0.004)
    slow = analysis.Probe(200, 10, "", True, 0.4)
    assert analysis.http_client(fast, "wrk", "auto") == "wrk"
    assert analysis.http_client(slow, "wrk", "auto") == "httpx"
    assert analysis.http_client(slow, "wrk", "wrk") == "wrk"
    assert analysis.http_client(fast, "wrk", "httpx") == "httpx"
    assert analysis.http_client(fast, None, "auto") == "httpx"
    assert analysis.parse_args([]).client == "auto"


def test_summaries_of_each_answer() -> None:
    """What the workloads list of each answer: items_total, totals, areas, CSV rows."""
    found = {w.key: w for w in analysis.build_workloads()}
    site = json.dumps({"items_total": 7, "items": [{}, {}]}).encode()
    assert analysis.summarise(found["site-check-plan"], site) == "items_total 7, 2 listed"
    nearby = json.dumps({"total": 3, "layers": [{}]}).encode()
    assert analysis.summarise(found["nearby"], nearby) == "total 3 in 1 layers"
    assert analysis.summarise(found["county-summary"], b'{"areas": [1, 2]}') == "2 areas"
    assert analysis.summarise(found["county-summary-csv"], b"a,b\n1,2\n3,4\n") == "2 CSV rows"


def test_workloads_answer_200_and_raw_is_the_same_statement(
    private_url: str, private_engine: Engine, tmp_path: Path
) -> None:
    """A real pass on a small private database (the plan layers and 300 parcels): each workload's body
    answers 200 through the service, its raw statement answers the same bytes, the POST driver counts no
    error and the job round trip completes (durations of a fraction of a second: nothing is timed)."""
    catalog = load_catalog(LAYERS, MAPS, bench_layers=True)
    load(private_engine, catalog)
    load_bench_layer(private_engine, read_bench_layer(LAYERS, BENCH_LAYER), 300)
    settings = Settings(database_url=private_url, data_dir=tmp_path, bench_layers=True, jobs_per_client=100)
    workloads = analysis.build_workloads()
    with running_server(create_app(settings)) as base:
        raws = {w.key: analysis.raw_query(w, catalog, base) for w in workloads}
        bodies = asyncio.run(analysis._raw_bodies(Target(private_url, "test").libpq_url, raws))
        for workload in workloads:
            found = analysis.probe(base, workload, bodies[workload.key])
            assert found.status == 200, (workload.key, found.summary)
            assert found.same_as_raw, workload.key
        requests: list[PostRequest] = [w.request for w in workloads]
        posted = asyncio.run(run_http_post(base, requests, 2, 0.2, None))
        assert posted.requests >= 1 and posted.errors == 0, posted.first_error
        if (wrk := wrk_path()) is not None:  # wrk's POSTs of the same bodies: every answer a 200
            posted = asyncio.run(run_wrk_post(wrk, base, requests, 2, 1, None, mean_body=1.0))
            assert posted.requests >= 1 and posted.errors == 0, posted.first_error
        job = asyncio.run(run_http_jobs(base, [workloads[0].request], 1, 0.05, None, poll_s=0.01))
        assert job.requests >= 1 and job.errors == 0, job.first_error
        assert job.mean_bytes > 0
