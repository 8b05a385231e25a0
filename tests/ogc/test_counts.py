"""`numberMatched` of filtered queries: remembered per layer version, never stale after an edit."""

from __future__ import annotations

from sqlalchemy import text

from geo_service.ogc.counts import MatchedCounts
from tests.conftest import Writable


def _matched(writable: Writable, **params: str) -> int:
    return writable.client.get("/collections/rail_stations/items", params={"limit": 1, **params}).json()[
        "numberMatched"
    ]


def test_count_follows_an_edit(writable: Writable) -> None:
    """A filtered count asked twice is the same; once a feature starts matching, the next answer counts it."""
    with writable.engine.connect() as conn:
        existing = conn.execute(
            text("SELECT count(*) FROM features WHERE layer_id = 'rail_stations' AND status = 'existing'")
        ).scalar_one()
    assert _matched(writable, filter="status = 'existing'") == existing
    assert _matched(writable, filter="status = 'existing'") == existing
    with writable.engine.begin() as conn:
        conn.execute(
            text(
                'UPDATE features SET properties = properties || \'{"status": "existing"}\'::jsonb'
                " WHERE id = (SELECT min(id) FROM features WHERE layer_id = 'rail_stations'"
                " AND status <> 'existing')"
            )
        )
    assert _matched(writable, filter="status = 'existing'") == existing + 1
    assert _matched(writable, status="existing") == existing + 1


def test_counts_are_bounded_and_keyed_by_version() -> None:
    """The store forgets the least recently used entries beyond its size, and a new layer version misses."""
    counts = MatchedCounts(size=2)
    counts.put("a", 1, "f", 10)
    counts.put("a", 1, "g", 20)
    assert counts.get("a", 1, "f") == 10  # f is now the most recently used
    counts.put("a", 1, "h", 30)
    assert counts.get("a", 1, "g") is None
    assert counts.get("a", 1, "f") == 10 and counts.get("a", 1, "h") == 30
    assert counts.get("a", 2, "f") is None
