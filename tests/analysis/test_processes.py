"""`/processes` and synchronous execution of each process, with answers checked against the seed data
measured independently (shapely in EPSG:4549)."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator
from pyproj import Transformer
from shapely.geometry import Point, shape

from tests.analysis.conftest import execute, metric, seed_shape

PROCESSES = {"site-check", "county-summary", "nearby"}
EXECUTE = "http://www.opengis.net/def/rel/ogc/1.0/execute"


def test_process_list(client: TestClient) -> None:
    """Every process is listed with its job control options and its execute link."""
    response = client.get("/processes")
    assert response.status_code == 200
    doc = response.json()
    assert {p["id"] for p in doc["processes"]} == PROCESSES
    for summary in doc["processes"]:
        assert summary["version"]
        assert set(summary["jobControlOptions"]) == {"sync-execute", "async-execute"}
        rels = {link["rel"]: link["href"] for link in summary["links"]}
        assert rels[EXECUTE].endswith(f"/processes/{summary['id']}/execution")
        assert rels["self"].endswith(f"/processes/{summary['id']}")
    assert response.headers["cache-control"] == "public, no-cache"
    assert client.get("/processes", headers={"If-None-Match": response.headers["etag"]}).status_code == 304


@pytest.mark.parametrize("process_id", sorted(PROCESSES))
def test_description_schemas_are_json_schema(client: TestClient, process_id: str) -> None:
    """Each input and output is described by a valid JSON Schema, with min/maxOccurs for inputs."""
    doc = client.get(f"/processes/{process_id}").json()
    assert doc["id"] == process_id
    assert doc["inputs"] and doc["outputs"]
    for spec in [*doc["inputs"].values(), *doc["outputs"].values()]:
        Draft202012Validator.check_schema(spec["schema"])
        assert spec["title"]
    for spec in doc["inputs"].values():
        assert spec["minOccurs"] in (0, 1) and spec["maxOccurs"] == 1


def test_landing_links_processes_and_jobs(client: TestClient) -> None:
    """The landing page links the process list and the job list with their OGC relations."""
    rels = {link["rel"] for link in client.get("/").json()["links"]}
    assert "http://www.opengis.net/def/rel/ogc/1.0/processes" in rels
    assert "http://www.opengis.net/def/rel/ogc/1.0/job-list" in rels


def _by_code(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["code"]: item for item in report["items"]}


def test_site_check_next_to_south_station(
    client: TestClient, south_station_site: dict[str, Any], seeds: dict[str, Any]
) -> None:
    """A draft site by 嘉兴南站: in 南湖区, within the 高铁新城 platform, the station nearest at the distance
    shapely measures in EPSG:4549, the town unknown and said so."""
    response = execute(client, "site-check", {"site": south_station_site})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    report = response.json()
    site = shape(south_station_site)
    assert report["site"]["type"] == "Polygon"
    assert report["site"]["area_m2"] == pytest.approx(metric(site).area, rel=1e-3)
    assert report["county"]["adcode"] == "330402"
    assert report["county"]["name_zh"] == "南湖区"
    assert report["town"] is None
    assert "西塘" in report["town_note"]
    items = _by_code(report)
    new_town = items["e10_hsr_new_town"]
    assert new_town["layer"] == "strategic_platforms"
    platform = seed_shape(seeds, "strategic_platforms", "e10_hsr_new_town")
    expected = metric(platform.intersection(site)).area
    assert new_town["overlap_m2"] == pytest.approx(expected, rel=2e-3)
    assert new_town["share"] == pytest.approx(expected / metric(site).area, abs=2e-3)
    assert new_town["relation"] == ("within" if platform.contains(site) else "intersects")
    assert (
        new_town["plan_text"] == seeds["strategic_platforms"]["e10_hsr_new_town"]["properties"]["plan_text"]
    )
    assert new_town["accuracy"] == "schematic" and new_town["accuracy_m"] > 0
    assert "schematic" in new_town["accuracy_note"]
    assert new_town["href"].endswith(f"/collections/strategic_platforms/items/{new_town['id']}")
    station = report["nearest"]["rail_station"]
    assert station["code"] == "c01_jiaxing_south_stn"
    point = shape(seeds["rail_stations"]["c01_jiaxing_south_stn"]["geometry"])
    assert station["distance_m"] == pytest.approx(metric(site).distance(metric(point)), abs=1)
    assert report["nearest"]["hub"]["layer"] == "hubs"
    assert report["nearest"]["road_project"]["layer"] == "road_projects"
    assert report["items_total"] == len(report["items"]) == sum(report["by_layer"].values())


def test_site_check_flags_conflicts_first(client: TestClient, nanhu_site: dict[str, Any]) -> None:
    """A site on 南湖 lists the culture areas it touches first, as conflicts with a reason."""
    report = execute(client, "site-check", {"site": nanhu_site}).json()
    assert report["conflicts"] >= 1
    flags = [item["conflict"] for item in report["items"]]
    assert flags == sorted(flags, reverse=True)  # every conflict before any other item
    nanhu = _by_code(report)["e19_nanhu_lake"]
    assert nanhu["conflict"] is True
    assert "culture" in nanhu["conflict_reason"]
    assert not any(item["conflict"] for item in report["items"] if item["layer"] != "ecology_culture")


def test_site_check_locates_a_town(client: TestClient, seeds: dict[str, Any]) -> None:
    """A site inside 西塘镇 (the demonstration zone's town outline) names the town, in 嘉善县."""
    point = seed_shape(seeds, "demonstration_zone", "a04_xitang").representative_point()
    report = execute(
        client, "site-check", {"site": {"type": "Point", "coordinates": [point.x, point.y]}}
    ).json()
    assert report["town"]["code"] == "a04_xitang"
    assert report["county"]["adcode"] == "330421"


def test_site_check_of_a_feature_reference(client: TestClient) -> None:
    """A feature given by its href is checked as its geometry, and not listed as touching itself."""
    page = client.get("/collections/g60_platforms/items", params={"limit": 1}).json()
    feature = page["features"][0]
    href = f"/collections/g60_platforms/items/{feature['id']}"
    report = execute(client, "site-check", {"site": {"href": href}}).json()
    assert report["site"]["source"] == href
    assert feature["properties"]["code"] not in _by_code(report)
    by_geometry = execute(client, "site-check", {"site": feature["geometry"]}).json()
    assert by_geometry["county"] == report["county"]
    assert feature["properties"]["code"] in _by_code(by_geometry)


@pytest.mark.parametrize("epsg", [4549, 4326])
def test_site_in_another_crs(client: TestClient, south_station_site: dict[str, Any], epsg: int) -> None:
    """The same site sent in EPSG:4549 (northing first) or EPSG:4326 (latitude first): the same report."""
    transformer = Transformer.from_crs(4326, epsg, always_xy=True)
    ring = []
    for lon, lat in south_station_site["coordinates"][0]:
        x, y = transformer.transform(lon, lat)
        ring.append([y, x])  # both CRSs put the second axis first
    uri = f"http://www.opengis.net/def/crs/EPSG/0/{epsg}"
    sent = {"site": {"type": "Polygon", "coordinates": [ring]}, "crs": uri}
    report = execute(client, "site-check", sent).json()
    crs84 = execute(client, "site-check", {"site": south_station_site}).json()
    assert report["site"]["area_m2"] == pytest.approx(crs84["site"]["area_m2"], rel=1e-4)
    assert sorted(_by_code(report)) == sorted(_by_code(crs84))


def test_results_document(client: TestClient, south_station_site: dict[str, Any]) -> None:
    """`response: document` answers {outputId: value}; raw answers the value itself."""
    raw = execute(client, "site-check", {"site": south_station_site}).json()
    document = execute(client, "site-check", {"site": south_station_site}, response="document").json()
    assert document == {"report": raw}


def test_county_summary(client: TestClient, seeds: dict[str, Any]) -> None:
    """嘉兴市 first, then its seven counties; rail length in 嘉善县 as shapely measures it in EPSG:4549; a
    county's counts are within the city's."""
    response = execute(client, "county-summary", {})
    assert response.status_code == 200
    areas = response.json()["areas"]
    assert areas[0]["level"] == "city"
    assert len(areas) == 8
    city, counties = areas[0], areas[1:]
    assert city["adcode"] == "330400"
    assert {a["adcode"] for a in counties} == {c[3:] for c in seeds["admin_boundaries"]} - {"330400"}
    jiashan = next(a for a in counties if a["adcode"] == "330421")
    boundary = metric(seed_shape(seeds, "admin_boundaries", "cn-330421"))
    rail = sum(
        metric(shape(f["geometry"])).intersection(boundary).length
        for f in seeds["rail_lines"].values()
        if f["geometry"] is not None
    )
    assert jiashan["rail_km"] == pytest.approx(rail / 1000, abs=0.1)
    for area in counties:
        assert area["items"] <= city["items"]
        assert area["rail_km"] <= city["rail_km"] + 0.1
        assert sum(area["by_status"].values()) == area["items"]
        for share in ("built_share", "rail_built_share", "road_built_share"):
            assert area[share] is None or 0 <= area[share] <= 1
    # every county's rail, clipped to it, adds up to the city's (the counties tile the city)
    assert sum(a["rail_km"] for a in counties) == pytest.approx(city["rail_km"], rel=0.01)


def test_county_summary_csv(client: TestClient) -> None:
    """format csv: a file with a header line and one row per area, the same figures as the JSON."""
    response = execute(client, "county-summary", {"format": "csv"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    areas = execute(client, "county-summary", {}).json()["areas"]
    assert [r["adcode"] for r in rows] == [a["adcode"] for a in areas]
    for row, area in zip(rows, areas, strict=True):
        assert row["name_zh"] == area["name_zh"]
        assert int(row["items"]) == area["items"]
        assert float(row["rail_km"]) == pytest.approx(area["rail_km"])
        assert int(row["planned"]) == area["by_status"].get("planned", 0)


def test_nearby_from_south_station(client: TestClient, seeds: dict[str, Any]) -> None:
    """Items within 2 km of 嘉兴南站, by layer, nearest first, each within the distance shapely measures."""
    lon, lat = seeds["rail_stations"]["c01_jiaxing_south_stn"]["geometry"]["coordinates"]
    point = {"type": "Point", "coordinates": [lon, lat]}
    doc = execute(client, "nearby", {"site": point, "distance": 2000, "limit": 3}).json()
    assert doc["distance_m"] == 2000
    nearest = [layer["items"][0]["distance_m"] for layer in doc["layers"]]
    assert nearest == sorted(nearest)
    here = metric(Point(lon, lat))
    for layer in doc["layers"]:
        distances = [item["distance_m"] for item in layer["items"]]
        assert distances == sorted(distances)
        assert len(layer["items"]) <= 3 <= layer["matched"] or len(layer["items"]) == layer["matched"]
        for item in layer["items"]:
            assert item["distance_m"] <= 2000
            geometry = seeds[item["layer"]][item["code"]]["geometry"]
            assert item["distance_m"] == pytest.approx(here.distance(metric(shape(geometry))), abs=1)
    stations = next(layer for layer in doc["layers"] if layer["layer"] == "rail_stations")
    assert stations["items"][0]["code"] == "c01_jiaxing_south_stn"
    assert stations["items"][0]["distance_m"] == 0


def test_nearby_layers_input(client: TestClient, seeds: dict[str, Any]) -> None:
    """`layers` limits where nearby looks."""
    lon, lat = seeds["rail_stations"]["c01_jiaxing_south_stn"]["geometry"]["coordinates"]
    inputs = {"site": {"type": "Point", "coordinates": [lon, lat]}, "distance": 5000, "layers": ["hubs"]}
    doc = execute(client, "nearby", inputs).json()
    assert [layer["layer"] for layer in doc["layers"]] == ["hubs"]


def test_process_metrics(client: TestClient, south_station_site: dict[str, Any]) -> None:
    """Executions are counted by process, mode and outcome."""
    execute(client, "site-check", {"site": south_station_site})
    execute(client, "site-check", {"site": {"type": "Point", "coordinates": [0, 0]}})
    text = client.get("/metrics").text
    assert 'jxplan_process_executions_total{mode="sync",outcome="successful",process="site-check"}' in text
    assert 'jxplan_process_executions_total{mode="sync",outcome="failed",process="site-check"}' in text
    assert 'jxplan_process_duration_seconds_count{mode="sync",process="site-check"}' in text


def test_execution_from_another_origin(client: TestClient, south_station_site: dict[str, Any]) -> None:
    """A page on another origin may run a process (it changes no feature): its preflight is granted with
    Content-Type and Prefer, and the answer carries the read grant; dismissing a job is not granted."""
    origin = {"Origin": "https://planning.example.org"}
    preflight = client.options(
        "/processes/site-check/execution",
        headers=origin
        | {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"},
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "prefer" in preflight.headers["access-control-allow-headers"].lower()
    answer = client.post(
        "/processes/site-check/execution", json={"inputs": {"site": south_station_site}}, headers=origin
    )
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "*"
    dismiss = client.options(
        "/jobs/3f2c1c1e-0000-4000-8000-000000000000",
        headers=origin | {"Access-Control-Request-Method": "DELETE"},
    )
    assert dismiss.status_code == 403
