"""What the soak proves afterwards: no acknowledged write lost (from the database itself), and whether the
service's memory grew after warm-up."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Engine, text

MARK = "note"  # the property each soak write sets to a text naming that write


@dataclass(frozen=True)
class Ack:
    """A write a client was answered 2xx for: the version it made (or, for a delete, the version it
    removed) and the mark that version carries."""

    layer: str
    feature: int
    version: int
    operation: str  # create, patch, put, revert, restore, delete
    mark: str | None


@dataclass(frozen=True)
class State:
    """One version of a feature as the database holds it: in history (`update`/`delete`) or `current`."""

    version: int
    operation: str
    mark: str | None


STATES_SQL = """
    SELECT feature_id AS id, version, operation, properties->>:mark AS mark
      FROM feature_history WHERE feature_id = ANY(:ids)
    UNION ALL
    SELECT id, version, 'current', properties->>:mark FROM features WHERE id = ANY(:ids)
"""


def read_states(engine: Engine, features: Iterable[int]) -> dict[int, list[State]]:
    """Every stored version of each feature, oldest first."""
    ids = sorted(set(features))
    states: dict[int, list[State]] = {i: [] for i in ids}
    with engine.connect() as conn:
        for row in conn.execute(text(STATES_SQL), {"ids": ids, "mark": MARK}):
            states[row.id].append(State(row.version, row.operation, row.mark))
    for versions in states.values():
        versions.sort(key=lambda s: s.version)
    return states


def lost_updates(
    acks: Iterable[Ack], states: dict[int, list[State]], unsure: Iterable[int] = ()
) -> list[str]:
    """Every way the database disagrees with what the clients were told, one line each (none: nothing
    lost). Per feature: its versions are 1..N without a gap; every acknowledged version is stored with the
    mark the client sent (a delete: as a deleted state); the last version is the highest one acknowledged
    — unless a write to it had no answer (`unsure`: a timeout or a dropped connection), which may or may
    not have been applied."""
    problems: list[str] = []
    by_feature: dict[int, list[Ack]] = defaultdict(list)
    for ack in acks:
        by_feature[ack.feature].append(ack)
    unsure = set(unsure)
    for fid, acked in sorted(by_feature.items()):
        stored = states.get(fid, [])
        versions = [s.version for s in stored]
        name = f"{acked[0].layer}/{fid}"
        if not stored:
            problems.append(
                f"{name}: {len(acked)} acknowledged write(s) but the feature is not stored at all"
            )
            continue
        if versions != list(range(1, len(versions) + 1)):
            missing = sorted(set(range(1, max(versions) + 1)) - set(versions))
            problems.append(f"{name}: versions not contiguous 1..{max(versions)}: missing {missing}")
        at = {s.version: s for s in stored}
        for ack in acked:
            state = at.get(ack.version)
            if state is None:
                problems.append(f"{name}: {ack.operation} acknowledged version {ack.version}, not stored")
            elif ack.operation == "delete" and state.operation != "delete":
                problems.append(
                    f"{name}: delete of version {ack.version} acknowledged, stored as {state.operation}"
                )
            elif state.mark != ack.mark:
                problems.append(
                    f"{name}: version {ack.version} ({ack.operation}) should carry {ack.mark!r},"
                    f" stored {state.mark!r}"
                )
        # a delete acknowledges the version it removed: after any other write to that version
        last, highest = stored[-1], max(acked, key=lambda a: (a.version, a.operation == "delete"))
        if fid in unsure and last.version >= highest.version:
            continue  # an unanswered write may have been applied after the last answered one
        if last.version != highest.version:
            problems.append(
                f"{name}: the last version stored is {last.version}, the last acknowledged {highest.version}"
            )
        elif (highest.operation == "delete") != (last.operation == "delete"):
            problems.append(
                f"{name}: version {last.version} is {last.operation} in the database, but the last"
                f" acknowledged write was a {highest.operation}"
            )
    return problems


@dataclass(frozen=True)
class MemoryTrend:
    """The service's resident memory over the run (MiB) and its slope after warm-up (MiB per minute)."""

    start_mib: float
    warm_mib: float
    end_mib: float
    peak_mib: float
    slope_mib_per_min: float
    judged_s: float  # how long the slope was measured over
    judged: bool  # long enough to tell growth from the tail of warm-up
    grows: bool


JUDGED_AFTER_S = 240.0  # a slope over less time after warm-up says too little to flag growth


def memory_trend(
    samples: list[tuple[float, int]],
    warmup_s: float,
    max_slope: float,
    judged_after_s: float = JUDGED_AFTER_S,
) -> MemoryTrend | None:
    """From (seconds since start, RSS bytes) samples: start, after warm-up, end, and the least-squares
    slope of the samples after warm-up; `grows` when the slope exceeds `max_slope` MiB per minute over at
    least `judged_after_s` seconds (a shorter run reports its slope but judges nothing)."""
    if not samples:
        return None
    mib = [(t, rss / 2**20) for t, rss in samples]
    after = [(t, m) for t, m in mib if t >= warmup_s] or mib[-1:]
    slope = 0.0
    if len(after) >= 2:
        mean_t = sum(t for t, _ in after) / len(after)
        mean_m = sum(m for _, m in after) / len(after)
        spread = sum((t - mean_t) ** 2 for t, _ in after)
        if spread > 0:
            slope = sum((t - mean_t) * (m - mean_m) for t, m in after) / spread * 60
    return MemoryTrend(
        start_mib=mib[0][1],
        warm_mib=after[0][1],
        end_mib=mib[-1][1],
        peak_mib=max(m for _, m in mib),
        slope_mib_per_min=slope,
        judged_s=after[-1][0] - after[0][0],
        judged=after[-1][0] - after[0][0] >= judged_after_s,
        grows=after[-1][0] - after[0][0] >= judged_after_s and slope > max_slope,
    )
