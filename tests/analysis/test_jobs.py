"""Asynchronous execution (`Prefer: respond-async`): jobs in PostgreSQL, their status, results, list and
dismissal; the bound per client; and that jobs survive a restart, a killed process and a shutdown."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geo_service.app import create_app
from geo_service.catalog import Catalog
from geo_service.db.engine import sync_engine
from geo_service.loader import load
from geo_service.settings import Settings
from tests.analysis.conftest import execute
from tests.conftest import private_database, start_jxplan, wait_until_up

ASYNC = {"Prefer": "respond-async"}
RESULTS = "http://www.opengis.net/def/rel/ogc/1.0/results"


@pytest.fixture(scope="module")
def engine(server_url: str, catalog: Catalog) -> Iterator[Engine]:
    """A private loaded database of this module's: no app runs on it but those a test starts, so every job
    runner there is one the test controls."""
    with private_database(server_url, "jobs") as url:
        eng = sync_engine(url)
        load(eng, catalog)
        yield eng
        eng.dispose()


@contextlib.contextmanager
def service(engine: Engine, settings: Settings, catalog: Catalog, **overrides: Any) -> Iterator[TestClient]:
    """The app on the module's database, with settings changed (e.g. no job runner)."""
    url = engine.url.render_as_string(hide_password=False)
    changed = settings.model_copy(update={"database_url": url, **overrides})
    with TestClient(create_app(changed, catalog), raise_server_exceptions=False) as client:
        yield client


def submit(client: Any, process: str, inputs: dict[str, Any]) -> str:
    """Ask for a job; its id (after checking the 201, its Location and Preference-Applied)."""
    response = client.post(f"/processes/{process}/execution", json={"inputs": inputs}, headers=ASYNC)
    assert response.status_code == 201, response.text
    status = response.json()
    assert response.headers["location"].endswith(f"/jobs/{status['jobID']}")
    assert response.headers["preference-applied"] == "respond-async"
    assert status["status"] == "accepted" and status["processID"] == process
    return str(status["jobID"])


def wait_for(client: Any, job_id: str, *statuses: str, timeout_s: float = 30) -> dict[str, Any]:
    """Poll the job until its status is one of `statuses`."""
    deadline = time.monotonic() + timeout_s
    while True:
        status: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
        if status.get("status") in statuses:
            return status
        assert time.monotonic() < deadline, f"job still {status.get('status')}: {status}"
        time.sleep(0.05)


def row(engine: Engine, job_id: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(text("SELECT * FROM jobs WHERE id = :id"), {"id": job_id}).first()


@contextlib.contextmanager
def features_locked(engine: Engine) -> Iterator[None]:
    """Hold an exclusive lock on the features table, so that a process's statement waits until released."""
    with engine.connect() as conn:
        conn.execute(text("LOCK TABLE features IN ACCESS EXCLUSIVE MODE"))
        yield
        conn.rollback()


def test_job_lifecycle(
    engine: Engine, settings: Settings, catalog: Catalog, south_station_site: dict[str, Any]
) -> None:
    """201 with Location; status with progress until successful; results equal the synchronous answer as a
    results document; listed in /jobs; never cached."""
    with service(engine, settings, catalog) as client:
        _lifecycle(client, south_station_site)


def _lifecycle(client: TestClient, south_station_site: dict[str, Any]) -> None:
    job_id = submit(client, "site-check", {"site": south_station_site})
    status = wait_for(client, job_id, "successful")
    assert status["progress"] == 100
    assert status["started"] and status["finished"]
    results_link = next(link["href"] for link in status["links"] if link["rel"] == RESULTS)
    results = client.get(results_link)
    assert results.status_code == 200
    sync = execute(client, "site-check", {"site": south_station_site}).json()
    assert results.json() == {"report": sync}
    listed = client.get("/jobs").json()["jobs"]
    assert job_id in [job["jobID"] for job in listed]
    for path in (f"/jobs/{job_id}", "/jobs", f"/jobs/{job_id}/results"):
        assert client.get(path).headers["cache-control"] == "private, no-store"


def test_csv_job_results(engine: Engine, settings: Settings, catalog: Catalog) -> None:
    """A CSV output comes back in the results document as a qualified value with its media type."""
    with service(engine, settings, catalog) as client:
        job_id = submit(client, "county-summary", {"format": "csv"})
        wait_for(client, job_id, "successful")
        summary = client.get(f"/jobs/{job_id}/results").json()["summary"]
    assert summary["mediaType"] == "text/csv"
    assert summary["value"].startswith("adcode,name_zh,name_en")
    assert summary["value"].count("\r\n") == 9  # the header and eight areas


def test_jobs_bounded_per_client(
    engine: Engine,
    settings: Settings,
    catalog: Catalog,
    problem: Callable[..., dict[str, Any]],
    south_station_site: dict[str, Any],
) -> None:
    """With no runner, a client's third waiting job is refused with 429 and Retry-After; nothing written."""
    with service(engine, settings, catalog, job_workers=0, jobs_per_client=2) as client:
        waiting = [submit(client, "site-check", {"site": south_station_site}) for _ in range(2)]
        with engine.connect() as conn:
            before = conn.execute(text("SELECT count(*) FROM jobs")).scalar_one()
        refused = client.post(
            "/processes/site-check/execution", json={"inputs": {"site": south_station_site}}, headers=ASYNC
        )
        problem(refused, 429, "2 jobs", "dismiss")
        assert int(refused.headers["retry-after"]) > 0
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM jobs")).scalar_one() == before
        # a synchronous execution is not bounded by the queue
        assert execute(client, "site-check", {"site": south_station_site}).status_code == 200
        for job_id in waiting:
            assert client.delete(f"/jobs/{job_id}").json()["status"] == "dismissed"
        submit(client, "site-check", {"site": south_station_site})  # dismissed jobs free the place


def test_job_survives_a_restart(
    engine: Engine, settings: Settings, catalog: Catalog, south_station_site: dict[str, Any]
) -> None:
    """A job accepted by a process that stops before running it is run by the next one."""
    with service(engine, settings, catalog, job_workers=0) as client:
        job_id = submit(client, "nearby", {"site": south_station_site, "distance": 3000})
    assert row(engine, job_id).status == "accepted"
    with service(engine, settings, catalog) as client:
        status = wait_for(client, job_id, "successful")
        assert status["progress"] == 100
        assert client.get(f"/jobs/{job_id}/results").json()["nearby"]["distance_m"] == 3000


def test_dismissed_job_is_not_run(
    engine: Engine,
    settings: Settings,
    catalog: Catalog,
    problem: Callable[..., dict[str, Any]],
    south_station_site: dict[str, Any],
) -> None:
    """A dismissed job is never run, and has no results."""
    with service(engine, settings, catalog, job_workers=0) as client:
        job_id = submit(client, "site-check", {"site": south_station_site})
        dismissed = client.delete(f"/jobs/{job_id}")
        assert dismissed.status_code == 200 and dismissed.json()["status"] == "dismissed"
    with service(engine, settings, catalog) as client:
        time.sleep(1.5)  # longer than a runner takes to find a waiting job
        assert client.get(f"/jobs/{job_id}").json()["status"] == "dismissed"
        problem(client.get(f"/jobs/{job_id}/results"), 404, "job")
        problem(client.delete(f"/jobs/{job_id}"), 404, "job")
    assert row(engine, job_id).started_at is None


def test_job_that_fails_when_run(
    engine: Engine,
    settings: Settings,
    catalog: Catalog,
    problem: Callable[..., dict[str, Any]],
) -> None:
    """A job whose site feature is deleted after it was accepted fails, and its results say why (a 400)."""
    with engine.begin() as conn:
        feature_id = conn.execute(
            text(
                "INSERT INTO features (layer_id, properties, geom) SELECT layer_id,"
                ' properties || \'{"code": "job_probe"}\', geom FROM features'
                " WHERE layer_id = 'g60_platforms' LIMIT 1 RETURNING id"
            )
        ).scalar_one()
    site = {"href": f"/collections/g60_platforms/items/{feature_id}"}
    with service(engine, settings, catalog, job_workers=0) as client:
        job_id = submit(client, "site-check", {"site": site})
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM features WHERE id = :id"), {"id": feature_id})
    with service(engine, settings, catalog) as client:
        status = wait_for(client, job_id, "failed")
        assert str(feature_id) in status["message"]
        body = problem(client.get(f"/jobs/{job_id}/results"), 400, "job failed", str(feature_id))
        assert body["type"].endswith("job-results-failed")


def test_expired_jobs_are_gone(
    engine: Engine,
    settings: Settings,
    catalog: Catalog,
    problem: Callable[..., dict[str, Any]],
    south_station_site: dict[str, Any],
) -> None:
    """A job past its expiry answers 404 at once, and its row is deleted."""
    with service(engine, settings, catalog) as client:
        job_id = submit(client, "site-check", {"site": south_station_site})
        wait_for(client, job_id, "successful")
        with engine.begin() as conn:
            expire = "UPDATE jobs SET expires_at = now() - interval '1 second' WHERE id = :id"
            conn.execute(text(expire), {"id": job_id})
        problem(client.get(f"/jobs/{job_id}"), 404, "expired")
        assert job_id not in [job["jobID"] for job in client.get("/jobs").json()["jobs"]]
    with service(engine, settings, catalog):  # a runner deletes expired jobs when it starts
        deadline = time.monotonic() + 10
        while row(engine, job_id) is not None:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_shutdown_gives_a_running_job_back(
    engine: Engine, settings: Settings, catalog: Catalog, south_station_site: dict[str, Any]
) -> None:
    """A job still running when the service stops is given back to the queue within the shutdown time, and a
    later process runs it."""
    with service(engine, settings, catalog, job_workers=0) as client:
        job_id = submit(client, "site-check", {"site": south_station_site})
    with features_locked(engine):  # the job's statement waits: it runs until the shutdown
        with service(engine, settings, catalog, job_shutdown_s=0.5) as client:
            wait_for(client, job_id, "running")
            stopping = time.monotonic()
        stopped_in = time.monotonic() - stopping
        job = row(engine, job_id)
        assert job.status == "accepted", job
        assert "returned to the queue" in job.message
        assert job.attempts == 0
        assert stopped_in < 10  # the shutdown waited its 0.5 s, not for the statement
    with service(engine, settings, catalog) as client:
        wait_for(client, job_id, "successful")


def test_job_of_a_killed_process_is_run_again(
    engine: Engine,
    settings: Settings,
    catalog: Catalog,
    tmp_path: Path,
    south_station_site: dict[str, Any],
) -> None:
    """A `jxplan serve` killed (SIGKILL) while it runs a job leaves it running; when its lease runs out,
    another process takes it and finishes it (its second attempt)."""
    with service(engine, settings, catalog, job_workers=0) as client:
        job_id = submit(client, "site-check", {"site": south_station_site})
    url = engine.url.render_as_string(hide_password=False)
    # a 2 s statement limit makes the lease 14 s (twice the limit, and 10 s)
    env = {"DATABASE_URL": url, "JXPLAN_READ_TIMEOUT_MS": "2000", "JXPLAN_ACCESS_LOG": "false"}
    served = start_jxplan(tmp_path, "killed", "serve", **env)
    try:
        with features_locked(engine):
            wait_until_up(served)
            with httpx.Client(base_url=served.base, timeout=10) as client:
                wait_for(client, job_id, "running")
            served.stop(signal.SIGKILL)
        job = row(engine, job_id)
        assert job.status == "running" and job.attempts == 1
    finally:
        served.stop(signal.SIGKILL)
    with service(engine, settings, catalog, read_timeout_ms=2000) as client:
        status = wait_for(client, job_id, "successful", timeout_s=60)
        assert client.get(f"/jobs/{job_id}/results").json()["report"]["county"]["adcode"] == "330402"
    assert status["progress"] == 100
    assert row(engine, job_id).attempts == 2


def test_two_processes_share_the_queue(
    engine: Engine, settings: Settings, catalog: Catalog, south_station_site: dict[str, Any]
) -> None:
    """Two service processes' runners on one database take each job once: every job succeeds at its first
    attempt, whichever process ran it."""
    with (
        service(engine, settings, catalog, job_workers=0, jobs_per_client=16) as accepting,
        service(engine, settings, catalog, job_workers=2) as first,
        service(engine, settings, catalog, job_workers=2) as second,
    ):
        jobs = [
            submit(accepting, "nearby", {"site": south_station_site, "distance": d})
            for d in range(500, 4500, 500)
        ]
        for job_id in jobs:
            wait_for(first, job_id, "successful")
        assert second.get(f"/jobs/{jobs[0]}").json()["status"] == "successful"
    for job_id in jobs:
        assert row(engine, job_id).attempts == 1


def test_finished_jobs_kept_per_client_are_bounded(
    engine: Engine,
    settings: Settings,
    catalog: Catalog,
    problem: Callable[..., dict[str, Any]],
    south_station_site: dict[str, Any],
) -> None:
    """Finished jobs count too: past JXPLAN_JOBS_KEPT_PER_CLIENT a client must dismiss some (429 until then,
    nothing written); a dismissed job frees its place and keeps no inputs."""
    with service(engine, settings, catalog, jobs_kept_per_client=3, jobs_per_client=3) as client:
        with engine.begin() as conn:  # this module's earlier jobs are the same client's: start afresh
            conn.execute(text("DELETE FROM jobs"))
        done = [submit(client, "site-check", {"site": south_station_site}) for _ in range(3)]
        for job_id in done:
            wait_for(client, job_id, "successful")
        refused = client.post(
            "/processes/site-check/execution", json={"inputs": {"site": south_station_site}}, headers=ASYNC
        )
        problem(refused, 429, "keeps 3 jobs", "dismiss")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM jobs")).scalar_one() == 3
        assert client.delete(f"/jobs/{done[0]}").status_code == 200
        assert row(engine, done[0]).inputs == {}
        submit(client, "site-check", {"site": south_station_site})
