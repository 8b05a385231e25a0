"""Properties of the site check that must hold for any site (hypothesis, fixed seed): sites drawn anywhere
over and around Jiaxing, of any size from 50 m to 20 km, and junk geometries. Each answer is a 200 or a 400,
never a 5xx, and a report never claims more than the site holds."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import example, given, settings
from hypothesis import strategies as st
from shapely.geometry import box, mapping, shape

from tests.analysis.conftest import execute, metric
from tests.hostile import FUZZ

# corners over Jiaxing and just beyond it (the bay, Hangzhou, Shanghai): most sites inside, some partly
# or wholly outside
LON = st.floats(min_value=120.3, max_value=121.3)
LAT = st.floats(min_value=30.3, max_value=31.05)
SIZE_DEG = st.floats(min_value=0.0005, max_value=0.2)


@settings(FUZZ, max_examples=40)
@given(lon=LON, lat=LAT, width=SIZE_DEG, height=SIZE_DEG)
# always among them: sites on 南湖 and by 嘉兴南站, one across three counties, one half in the bay
@example(lon=120.755, lat=30.755, width=0.01, height=0.01)
@example(lon=120.778, lat=30.6964, width=0.0125, height=0.01)
@example(lon=120.85, lat=30.70, width=0.2, height=0.2)
@example(lon=120.9, lat=30.45, width=0.1, height=0.1)
def test_any_box_gives_a_consistent_report(
    client: TestClient, lon: float, lat: float, width: float, height: float
) -> None:
    """Shares are fractions; the counties' shares add up to the part inside Jiaxing; no item overlaps more
    than the site's area; conflicts come first; items_total counts what by_layer counts."""
    site = box(lon, lat, lon + width, lat + height)
    response = execute(client, "site-check", {"site": dict(mapping(site))})
    if response.status_code == 400:
        assert "outside Jiaxing" in response.json()["detail"]
        return
    assert response.status_code == 200, response.text
    report = response.json()
    area = metric(site).area
    assert report["site"]["area_m2"] == pytest.approx(area, rel=1e-3)
    inside = report["site"]["inside_share"]
    assert 0 < inside <= 1
    assert sum(c["share"] for c in report["counties"]) == pytest.approx(inside, abs=0.01)
    assert report["items_total"] == sum(report["by_layer"].values())
    flags = [i["conflict"] for i in report["items"]]
    assert flags == sorted(flags, reverse=True)
    assert report["conflicts"] == sum(flags) or report["items_total"] > len(report["items"])
    for item in report["items"]:
        if item["overlap_m2"] is not None:
            assert item["overlap_m2"] <= area * 1.001
            assert 0 <= item["share"] <= 1 and 0 <= item["item_share"] <= 1


JUNK = st.one_of(
    st.none(),
    st.integers(),
    st.text(max_size=20),
    st.lists(st.floats(allow_nan=True), max_size=4),
    st.fixed_dictionaries({"type": st.sampled_from(["Polygon", "Point", "LineString", "Feature"])}).flatmap(
        lambda d: st.fixed_dictionaries(
            {"type": st.just(d["type"]), "coordinates": st.recursive(st.floats(), st.lists, max_leaves=12)}
        )
    ),
    st.fixed_dictionaries({"href": st.text(max_size=60)}),
)


@settings(FUZZ, max_examples=60)
@given(site=JUNK, crs=st.one_of(st.none(), st.text(max_size=30)))
def test_junk_sites_are_refused(client: TestClient, site: Any, crs: str | None) -> None:
    """Any junk as a site (or as its CRS) is a 4xx problem, never a 5xx nor a report."""
    inputs: dict[str, Any] = {"site": site}
    if crs is not None:
        inputs["crs"] = crs
    response = execute(client, "site-check", inputs)
    if response.status_code == 200:  # junk that happens to be a valid site inside Jiaxing
        assert shape(site).is_valid
        return
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
