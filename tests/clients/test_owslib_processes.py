"""OWSLib's OGC API – Processes client listing, describing and executing each process of the live service,
synchronously and as a job."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from owslib.ogcapi.processes import Processes

Seeds = dict[str, dict[str, dict[str, Any]]]


@pytest.fixture(scope="module")
def processes_api(live_server: str) -> Processes:
    """An OWSLib Processes client opened on the landing page."""
    return Processes(live_server)


def _station(seeds: Seeds) -> dict[str, Any]:
    return dict(seeds["rail_stations"]["c01_jiaxing_south_stn"]["geometry"])


def test_lists_and_describes(processes_api: Processes) -> None:
    """OWSLib lists the three processes and reads each description's inputs and outputs."""
    listed = {p["id"]: p for p in processes_api.processes()}
    assert set(listed) == {"site-check", "county-summary", "nearby"}
    for process_id in listed:
        described = processes_api.process(process_id)
        assert described["id"] == process_id
        assert described["inputs"] and described["outputs"]
    assert "site" in processes_api.process("site-check")["inputs"]


def test_executes_site_check(processes_api: Processes, seeds: Seeds) -> None:
    """OWSLib's execute (a results document, as it asks by default) checks a site by 嘉兴南站."""
    lon, lat = _station(seeds)["coordinates"]
    site = {
        "type": "Polygon",
        "coordinates": [[[lon - 0.01, lat], [lon, lat], [lon, lat + 0.01], [lon - 0.01, lat]]],
    }
    result = processes_api.execute("site-check", {"site": site})
    report = result["report"]
    assert report["county"]["name_zh"] == "南湖区"
    assert report["nearest"]["rail_station"]["code"] == "c01_jiaxing_south_stn"


def test_executes_county_summary_and_nearby(processes_api: Processes, seeds: Seeds) -> None:
    """OWSLib runs county-summary and nearby."""
    areas = processes_api.execute("county-summary", {})["summary"]["areas"]
    assert [a["adcode"] for a in areas][:1] == ["330400"]
    near = processes_api.execute("nearby", {"site": _station(seeds), "distance": 1500})["nearby"]
    assert near["layers"] and all(i["distance_m"] <= 1500 for layer in near["layers"] for i in layer["items"])


def test_executes_as_a_job(processes_api: Processes, live_server: str, seeds: Seeds) -> None:
    """OWSLib's async_ execution answers the job's status document; the job finishes and its results hold
    the answer (OWSLib 0.35 has no job methods: the status and results are read as its link says)."""
    status = processes_api.execute("nearby", {"site": _station(seeds)}, async_=True)
    assert status["status"] in ("accepted", "running", "successful")
    job = next(link["href"] for link in status["links"] if link["rel"] == "self")
    deadline = time.monotonic() + 30
    while (status := httpx.get(job).json())["status"] != "successful":
        assert time.monotonic() < deadline, status
        time.sleep(0.1)
    assert httpx.get(f"{job}/results").json()["nearby"]["distance_m"] == 1000
