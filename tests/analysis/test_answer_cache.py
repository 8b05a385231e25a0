"""The county summary is kept under its layers' versions: a repeated execution is answered from memory, and
the one after an edit (of any layer it reads) is computed afresh and shows the edit."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import text

from tests.analysis.conftest import execute
from tests.conftest import Writable


def _metric(client: TestClient, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        key, _, value = line.rpartition(" ")
        if key == name:
            return float(value)
    raise AssertionError(f"no metric {name}")


def _jiashan(client: TestClient, **inputs: str) -> dict[str, object]:
    response = execute(client, "county-summary", dict(inputs))
    assert response.status_code == 200, response.text
    return next(a for a in response.json()["areas"] if a["adcode"] == "330421")


def test_summary_is_cached_until_an_edit(writable: Writable) -> None:
    """Two executions: the second a cache hit with the same answer; after a rail line of 嘉善 is marked
    completed (any write bumps the layer's version), the next is a miss and counts it."""
    client = writable.client
    first = _jiashan(client)
    hits = _metric(client, "jxplan_process_cache_hits_total")
    assert _jiashan(client) == first
    assert _metric(client, "jxplan_process_cache_hits_total") == hits + 1
    with writable.engine.begin() as conn:
        changed = conn.execute(
            text(
                'UPDATE features SET properties = properties || \'{"status": "completed"}\''
                " WHERE id = (SELECT f.id FROM features f, features b WHERE f.layer_id = 'rail_lines'"
                " AND f.status = 'planned' AND b.layer_id = 'admin_boundaries' AND b.code = 'cn-330421'"
                " AND ST_Intersects(f.geom, b.geom) ORDER BY f.id LIMIT 1) RETURNING id"
            )
        ).all()
    assert len(changed) == 1
    misses = _metric(client, "jxplan_process_cache_misses_total")
    after = _jiashan(client)
    assert _metric(client, "jxplan_process_cache_misses_total") == misses + 1
    by_status = after["by_status"]
    assert isinstance(by_status, dict) and isinstance(first["by_status"], dict)
    assert by_status.get("completed", 0) == first["by_status"].get("completed", 0) + 1
    assert by_status.get("planned", 0) == first["by_status"].get("planned", 0) - 1
    # the CSV form is kept apart from the JSON one
    csv = execute(client, "county-summary", {"format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
