"""Keys limited to layers: writes there work, writes elsewhere are 403 naming the layers the key may write,
with nothing written."""

from __future__ import annotations

import io
import json

import pytest
from sqlalchemy import text

from geo_service.editing.keys import KeyProblem, add_key, checked_layers
from tests.conftest import Writable, check_problem, database_state

MERGE = {"Content-Type": "application/merge-patch+json"}


@pytest.fixture(scope="module")
def limited(writable: Writable) -> dict[str, str]:
    """The headers of an editor key that may write only rail_lines and road_projects."""
    token = add_key(writable.engine, "轨道 rail only", "editor", layers=["rail_lines", "road_projects"])
    return {"Authorization": f"Bearer {token}"}


def _first(writable: Writable, layer: str) -> int:
    with writable.engine.connect() as conn:
        fid: int = conn.execute(
            text("SELECT min(id) FROM features WHERE layer_id = :l"), {"l": layer}
        ).scalar_one()
    return fid


def test_a_limited_key_writes_its_layers(writable: Writable, limited: dict[str, str]) -> None:
    """PATCH on rail_lines and road_projects goes through."""
    for layer in ("rail_lines", "road_projects"):
        path = f"/collections/{layer}/items/{_first(writable, layer)}"
        response = writable.client.patch(
            path, headers=limited | MERGE, json={"properties": {"name_en": "ok"}}
        )
        assert response.status_code == 204, response.text


def test_a_limited_key_is_refused_elsewhere(writable: Writable, limited: dict[str, str]) -> None:
    """Create, change, delete, revert and import on another layer: 403 naming the layers it may write, and
    the data is unchanged."""
    fid = _first(writable, "rail_stations")
    item = f"/collections/rail_stations/items/{fid}"
    feature = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [120.8, 30.7]},
        "properties": {"code": "limited_probe", "name_zh": "限", "status": "planned"},
    }
    upload = {
        "file": (
            "stations.geojson",
            io.BytesIO(json.dumps({"type": "FeatureCollection", "features": []}).encode()),
        )
    }
    before = database_state(writable.engine)
    for response in (
        writable.client.post("/collections/rail_stations/items", headers=limited, json=feature),
        writable.client.patch(item, headers=limited | MERGE, json={"properties": {"name_en": "no"}}),
        writable.client.put(item, headers=limited, json=feature),
        writable.client.delete(item, headers=limited),
        writable.client.post(f"{item}/revert", headers=limited, params={"to": 1}),
        writable.client.post("/collections/rail_stations/import", headers=limited, files=upload),
    ):
        body = check_problem(response, 403, "rail_lines", "road_projects", "rail_stations")
        assert body["layers"] == ["rail_lines", "road_projects"]
    assert database_state(writable.engine) == before


def test_layers_are_checked_against_the_catalogue() -> None:
    """Unknown or reference layers, or none at all, are refused; repeats are dropped."""
    editable = ["rail_lines", "road_projects", "rail_stations"]
    assert checked_layers(["rail_lines", " road_projects", "rail_lines"], editable) == [
        "rail_lines",
        "road_projects",
    ]
    with pytest.raises(KeyProblem, match="not an editable layer: railway"):
        checked_layers(["railway"], editable)
    with pytest.raises(KeyProblem, match="not an editable layer: admin_boundaries"):
        checked_layers(["admin_boundaries"], editable)
    with pytest.raises(KeyProblem, match="names no layer"):
        checked_layers([" ", ""], editable)


def test_a_reader_key_cannot_be_limited_to_layers(writable: Writable) -> None:
    """--layers is for keys that write."""
    with pytest.raises(KeyProblem, match="reader"):
        add_key(writable.engine, "读者 reader", "reader", layers=["rail_lines"])
