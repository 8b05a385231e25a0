"""`python -m benchmarks.soak`: a few seconds of it with few clients on a private database — the report's
structure, and a lost-update check that passes on the real run and flags what is fabricated after it.
Nothing here is timed: the soak's figures come from the command, never from the test suite."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import NamedTuple

import pytest
from sqlalchemy import Engine, text

from benchmarks.soak import report
from benchmarks.soak.__main__ import RESULTS, parse_args
from benchmarks.soak.checks import MARK, Ack, State, lost_updates, memory_trend, read_states
from benchmarks.soak.clients import ETAG_VERSION
from benchmarks.soak.run import Options, SoakResult, run_soak
from geo_service.db.engine import sync_engine
from geo_service.ogc.responses import feature_etag
from tests.conftest import private_database

SECONDS = 8


class Run(NamedTuple):
    """A finished short soak and an engine on its database."""

    result: SoakResult
    engine: Engine


@pytest.fixture(scope="module")
def soak(server_url: str) -> Iterator[Run]:
    """A short soak: 4 editors, 6 readers, 300 parcels, one client process."""
    with private_database(server_url, "soak") as url:
        options = Options(
            minutes=SECONDS / 60,
            editors=4,
            readers=6,
            rows=300,
            processes=1,
            database_url=url,
            warmup_s=2,
            rss_interval_s=1,
        )
        result = run_soak(options)
        engine = sync_engine(url)
        yield Run(result, engine)
        engine.dispose()


def test_short_soak_passes_its_checks(soak: Run) -> None:
    """Every kind of read and the main writes ran; no 5xx, nothing lost, no contradiction, no backend left
    once the service stopped; memory was sampled throughout."""
    result = soak.result
    for kind in ("page", "bbox", "filter", "feature", "tile", "queryables", "collections", "map"):
        assert sum(result.stats[kind].statuses.values()) > 0, kind
    for kind in ("create", "patch", "put", "hot-read"):
        assert sum(result.stats[kind].statuses.values()) > 0, kind
    assert result.server_errors == 0, result.server_error_samples
    assert result.lost == [] and result.surprises == [] and result.stuck_backends == 0
    assert {"create", "patch", "put"} <= {a.operation for a in result.acks}
    assert result.backends_stopped == {}
    assert result.elapsed_s >= SECONDS and len(result.rss) >= SECONDS - 2
    assert result.memory is not None and result.memory.peak_mib >= result.memory.start_mib > 0
    assert result.service_cpu_s is not None and result.service_cpu_s > 0
    assert result.postgres_cpu_s is not None and result.postgres_cpu_s > 0


def test_the_report(soak: Run) -> None:
    """The Markdown report says it was a short run and has the checks, the machine, the parameters, a row
    per kind of request, the writes, the 5xx, the memory over time and the backends."""
    text_ = report.render(soak.result)
    assert "**Short run:" in text_
    for heading in (
        "## Checks",
        "## Machine and software",
        "## Parameters",
        "## Requests by kind",
        "## Writes",
        "## 5xx responses",
        "## Service memory (VmRSS)",
        "## PostgreSQL backends",
    ):
        assert f"\n{heading}\n" in text_, heading
    assert "| 5xx responses | 0 | pass |" in text_
    assert "| lost updates | 0 | pass |" in text_
    assert "| service RSS slope after warm-up | " in text_ and "not judged (too short)" in text_
    assert "- **CPUs (logical)**:" in text_ and "- **RAM**:" in text_
    assert "- **Editors**: 4" in text_ and "**readers**: 6" in text_
    assert "- **CPU**: the service " in text_ and "% of one core), PostgreSQL " in text_
    assert "| kind | requests | req/s | p50 ms | p99 ms | other statuses |" in text_
    assert "\n| tile | " in text_ and "\n| create | " in text_
    assert "| time s | RSS MiB |" in text_
    assert "- **Lost updates**: 0" in text_
    full = replace(soak.result, options=replace(soak.result.options, minutes=10))
    assert "Short run" not in report.render(full)


def _live(result: SoakResult) -> list[Ack]:
    """The last acknowledged write of each feature that was not a delete (features that still exist)."""
    last: dict[int, Ack] = {}
    for ack in result.acks:
        if ack.feature not in last or (ack.version, ack.operation == "delete") > (
            last[ack.feature].version,
            last[ack.feature].operation == "delete",
        ):
            last[ack.feature] = ack
    return [a for a in last.values() if a.operation != "delete"]


def test_lost_update_check_flags_what_is_fabricated(soak: Run) -> None:
    """On the real run's database the check finds nothing; a client-seen version the database lacks, a
    version skipped in the database and a version whose content differs are each flagged."""
    result, engine = soak
    touched = {a.feature for a in result.acks}
    assert lost_updates(result.acks, read_states(engine, touched)) == []

    first, second, *_ = _live(result)
    seen = Ack(first.layer, first.feature, first.version + 1, "patch", "never written")
    flagged = lost_updates([*result.acks, seen], read_states(engine, touched))
    assert (
        f"{first.layer}/{first.feature}: patch acknowledged version {first.version + 1}, not stored"
        in flagged
    )
    assert any(f"the last acknowledged {first.version + 1}" in p for p in flagged)

    with engine.begin() as conn:  # a gap: the current row jumps a version, as a lost write would leave it
        conn.execute(text("UPDATE features SET version = version + 1 WHERE id = :id"), {"id": first.feature})
        conn.execute(
            text(
                "UPDATE features SET properties = jsonb_set(properties, ARRAY[CAST(:m AS text)],"
                " '\"tampered\"') WHERE id = :id"
            ),
            {"id": second.feature, "m": MARK},
        )
    flagged = lost_updates(result.acks, read_states(engine, touched))
    name = f"{first.layer}/{first.feature}"
    assert f"{name}: versions not contiguous 1..{first.version + 1}: missing [{first.version}]" in flagged
    assert f"{name}: {first.operation} acknowledged version {first.version}, not stored" in flagged
    assert (
        f"{name}: the last version stored is {first.version + 1}, the last acknowledged {first.version}"
        in flagged
    )
    assert (
        f"{second.layer}/{second.feature}: version {second.version} ({second.operation}) should carry"
        f" {second.mark!r}, stored 'tampered'" in flagged
    )
    assert len(flagged) == 4
    # a write without an answer to a feature may explain a later version there, never a gap or a mismatch
    unsure = lost_updates(result.acks, read_states(engine, touched), unsure={first.feature})
    assert len(unsure) == 3


def test_a_delete_is_the_last_write_of_the_version_it_removed() -> None:
    """A delete acknowledges the version it removed: a feature whose last version is that deleted state
    passes, and one still current after an acknowledged delete is flagged."""
    acks = [Ack("hubs", 7, 1, "create", "a"), Ack("hubs", 7, 2, "put", "b"), Ack("hubs", 7, 2, "delete", "b")]
    deleted = {7: [State(1, "update", "a"), State(2, "delete", "b")]}
    assert lost_updates(acks, deleted) == []
    still_there = {7: [State(1, "update", "a"), State(2, "current", "b")]}
    assert lost_updates(acks, still_there) == [
        "hubs/7: delete of version 2 acknowledged, stored as current",
        "hubs/7: version 2 is current in the database, but the last acknowledged write was a delete",
    ]


def test_memory_trend() -> None:
    """Flat after warm-up is no growth whatever the warm-up did; a steady climb is flagged with its slope;
    a climb over too short a time after warm-up is reported, not judged."""
    warm = [(t, int((100 + min(t, 60) / 2) * 2**20)) for t in range(0, 600, 10)]
    flat = memory_trend(warm, warmup_s=120, max_slope=1.0)
    assert flat is not None and flat.judged and not flat.grows and abs(flat.slope_mib_per_min) < 1e-9
    assert (flat.start_mib, flat.warm_mib, flat.end_mib) == (100, 130, 130)
    leak = memory_trend([(t, int((100 + t / 20) * 2**20)) for t in range(0, 600, 10)], 120, 1.0)
    assert leak is not None and leak.grows and abs(leak.slope_mib_per_min - 3.0) < 0.01
    assert memory_trend([], 120, 1.0) is None
    short = memory_trend([(t, int((100 + t / 20) * 2**20)) for t in range(0, 130, 10)], 24, 1.0)
    assert short is not None and short.slope_mib_per_min > 1 and not short.judged and not short.grows


def test_command_line_defaults() -> None:
    """The defaults the issue asks for: 10 minutes, 16 editors, 64 readers, 100k rows, RESULTS-soak.md;
    the ETag pattern the editors read versions from is the service's."""
    args = parse_args([])
    assert (args.minutes, args.editors, args.readers, args.rows) == (10, 16, 64, 100_000)
    assert args.output == str(RESULTS) and RESULTS.name == "RESULTS-soak.md"
    found = ETAG_VERSION.match(feature_etag(12, 34, "x"))
    assert found is not None and found.groups() == ("12", "34")
