"""Fixtures of the analysis tests: real plan sites, and an independent way to measure them (shapely in
EPSG:4549 through pyproj, never the service's SQL)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import shapely
from pyproj import Transformer
from shapely.geometry import box, mapping, shape
from shapely.geometry.base import BaseGeometry

TO_4549 = Transformer.from_crs(4326, 4549, always_xy=True)


def metric(geom: BaseGeometry) -> BaseGeometry:
    """`geom` (WGS 84) in EPSG:4549 metres, easting first."""
    return shapely.transform(geom, lambda xy: np.column_stack(TO_4549.transform(xy[:, 0], xy[:, 1])))


def seed_shape(seeds: dict[str, Any], layer: str, code: str) -> BaseGeometry:
    """A seed feature's geometry as shapely."""
    return shape(seeds[layer][code]["geometry"])


@pytest.fixture(scope="session")
def south_station_site(seeds: dict[str, Any]) -> dict[str, Any]:
    """A draft site of about 1.2 km × 1.1 km just north-west of 嘉兴南站 (the station itself outside it)."""
    lon, lat = seeds["rail_stations"]["c01_jiaxing_south_stn"]["geometry"]["coordinates"]
    return dict(mapping(box(lon - 0.0145, lat + 0.001, lon - 0.002, lat + 0.011)))


@pytest.fixture(scope="session")
def nanhu_site(seeds: dict[str, Any]) -> dict[str, Any]:
    """A site of about 600 m square in the middle of 南湖 (South Lake, a culture area of the plan)."""
    centre = seed_shape(seeds, "ecology_culture", "e19_nanhu_lake").representative_point()
    return dict(mapping(box(centre.x - 0.003, centre.y - 0.003, centre.x + 0.003, centre.y + 0.003)))


def execute(client: Any, process: str, inputs: dict[str, Any], **body: Any) -> Any:
    """POST an execute request; the response."""
    return client.post(f"/processes/{process}/execution", json={"inputs": inputs, **body})
