"""The workloads: for each, the requests of every target (service URL paths, raw SQL statements, tipg URL
paths), equivalent to one another and cycled through in the same order by each target.

The raw SQL statements come from the service's own query builders (`geo_service.ogc.query`, and
`geo_service.ogc.tiles` when it exists), compiled by the same SQLAlchemy psycopg dialect the service uses, so
they are literally the statements the service sends.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import TextClause
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

from geo_service.bench import BENCH_LAYER, REGION
from geo_service.catalog import Layer
from geo_service.ogc.crs import CRS84_CRS
from geo_service.ogc.parameters import parse_bbox
from geo_service.ogc.query import ItemsFilter, feature_statement, page_statement

TIPG_COLLECTION = "bench.parcels"
SERVICE_ITEMS = f"/collections/{BENCH_LAYER}/items"
TIPG_ITEMS = f"/collections/{TIPG_COLLECTION}/items"
# the columns of tipg's table besides id and geometry (benchmarks/database.py makes it)
TIPG_COLUMNS = ("code", "name_zh", "name_en", "category", "status", "accuracy")
TIPG_COLUMNS += ("accuracy_m", "source", "land_use", "area_m2")
DEEP_OFFSET = 50_000
BOX_M = 2000.0
SEED = 20261123  # the boxes, ids and tiles drawn are the same on every run

_DIALECT = PGDialect_psycopg()


@dataclass(frozen=True)
class RawQuery:
    """One SQL statement with its parameters, as psycopg receives them from SQLAlchemy."""

    sql: str
    params: dict[str, Any]


def compile_statement(statement: TextClause) -> RawQuery:
    """The SQL text and parameters SQLAlchemy's psycopg dialect sends for `statement`."""
    compiled = statement.compile(dialect=_DIALECT)
    return RawQuery(str(compiled), dict(compiled.params))


@dataclass
class Workload:
    """One kind of request, in each target's form; None where a target has no equivalent."""

    key: str
    description: str
    service: list[str]
    raw: list[RawQuery] | None
    tipg: list[str] | None
    skipped: dict[str, str] = field(default_factory=dict)  # target → why it is not measured
    # tipg as it answers by default (tiles with every column), where that differs from `tipg`
    tipg_all: list[str] | None = None

    def paths(self, target: str) -> list[str] | None:
        """The request paths of an HTTP target."""
        return {"service": self.service, "tipg": self.tipg, "tipg-all": self.tipg_all}.get(target)


@dataclass(frozen=True)
class Dataset:
    """What the workloads need to know about the loaded rows."""

    layer: Layer
    rows: int
    sample_ids: list[int]  # feature ids spread over the layer
    deep_after_id: int  # the id of the last feature before the deep page
    deep_cursor: str | None  # the service's own cursor for that position (None: it could not be had)


def url_path(base: str, **query: Any) -> str:
    """`base` with the query string of `query`."""
    return f"{base}?{urlencode(query)}" if query else base


def region_boxes(count: int) -> list[tuple[float, float, float, float]]:
    """`count` boxes of about 2 km × 2 km inside the region."""
    rng = random.Random(SEED)
    west, south, east, north = REGION
    boxes = []
    for _ in range(count):
        lat = rng.uniform(south + 0.02, north - 0.02)
        lon = rng.uniform(west + 0.02, east - 0.02)
        half_lat = BOX_M / 2 / 110574.0
        half_lon = BOX_M / 2 / (111320.0 * math.cos(math.radians(lat)))
        west_, south_ = round(lon - half_lon, 6), round(lat - half_lat, 6)
        boxes.append((west_, south_, round(lon + half_lon, 6), round(lat + half_lat, 6)))
    return boxes


def _tile(lon: float, lat: float, z: int) -> tuple[int, int]:
    """Column (x) and row (y) of the WebMercatorQuad tile holding a point."""
    n = 2**z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return x, y


def region_tiles(z: int, count: int) -> list[tuple[int, int]]:
    rng = random.Random(SEED + z)
    west, south, east, north = REGION
    tiles: list[tuple[int, int]] = []
    while len(tiles) < count:
        tile = _tile(rng.uniform(west + 0.05, east - 0.05), rng.uniform(south + 0.05, north - 0.05), z)
        if tile not in tiles:
            tiles.append(tile)
    return tiles


def _tile_statements(layer: Layer, z: int, tiles: list[tuple[int, int]]) -> tuple[list[RawQuery] | None, str]:
    """The service's tile statements, when `geo_service.ogc.tiles` offers its builder."""
    try:
        from geo_service.ogc import tiles as tiles_module  # being written alongside: may not be there
    except Exception as exc:  # any failure only means: no raw tiles
        return None, f"geo_service.ogc.tiles cannot be imported ({exc.__class__.__name__})"
    builder = getattr(tiles_module, "tile_statement", None)
    if builder is None:
        return None, "geo_service.ogc.tiles has no tile_statement builder"
    try:
        return [compile_statement(builder([layer], z, x, y)) for x, y in tiles], ""
    except Exception as exc:  # its signature may change while it is written
        return None, f"tile_statement failed: {exc}"


def build_workloads(data: Dataset) -> list[Workload]:
    """Every workload for the loaded rows, in the order they run."""
    layer, every = data.layer, ItemsFilter(data.layer.id)
    workloads: list[Workload] = []
    for limit in (100, 1000, 10_000):  # 10,000 (the largest page) shows what a big page does to memory
        workloads.append(
            Workload(
                f"items-{limit}",
                f"first page of {limit} features",
                [url_path(SERVICE_ITEMS, limit=limit, f="json")],
                [compile_statement(page_statement(every, after=None, limit=limit, count=False))],
                [url_path(TIPG_ITEMS, limit=limit, f="geojson")],
            )
        )

    boxes = region_boxes(16)
    bbox_texts = [",".join(str(v) for v in box) for box in boxes]
    # The service counts a filter's matches once per layer version (below a size threshold) and reuses
    # the count: after the warm-up its statement has no count, and neither has the raw one.
    workloads.append(
        Workload(
            "bbox-2km",
            "features in a ~2 km × 2 km box (16 boxes in turn), limit 1000",
            [url_path(SERVICE_ITEMS, bbox=text, limit=1000, f="json") for text in bbox_texts],
            [
                compile_statement(
                    page_statement(
                        ItemsFilter(layer.id, parse_bbox(text, CRS84_CRS), CRS84_CRS),
                        after=None,
                        limit=1000,
                        count=False,
                    )
                )
                for text in bbox_texts
            ],
            [url_path(TIPG_ITEMS, bbox=text, limit=1000, f="geojson") for text in bbox_texts],
        )
    )

    workloads.append(
        Workload(
            "feature",
            f"one feature by id ({len(data.sample_ids)} ids in turn)",
            [url_path(f"{SERVICE_ITEMS}/{i}", f="json") for i in data.sample_ids],
            [compile_statement(feature_statement(layer.id, i)) for i in data.sample_ids],
            [url_path(f"{TIPG_ITEMS}/{i}", f="geojson") for i in data.sample_ids],
        )
    )

    offset = min(DEEP_OFFSET, data.rows // 2)
    deep = Workload(
        "deep-page",
        f"100 features after the first {offset:,} (service: its cursor; tipg: offset)",
        [],
        [compile_statement(page_statement(every, after=[data.deep_after_id], limit=100, count=False))],
        [url_path(TIPG_ITEMS, limit=100, offset=offset, f="geojson")],
    )
    if data.deep_cursor is None:
        deep.skipped["service"] = "no cursor: the service gave no `next` link to follow"
    else:
        deep.service = [url_path(SERVICE_ITEMS, limit=100, cursor=data.deep_cursor, f="json")]
    workloads.append(deep)

    for z in (12, 14):
        tiles = region_tiles(z, 8)
        raw, why = _tile_statements(layer, z, tiles)
        # tipg is asked for the properties our tiles carry at this zoom (the catalogue's tiles.properties)
        carried = [name for name in layer.tile_properties(z) if name in TIPG_COLUMNS]
        tipg_path = f"/collections/{TIPG_COLLECTION}/tiles/WebMercatorQuad/{z}/{{x}}/{{y}}"
        tile_workload = Workload(
            f"tile-z{z}",
            f"vector tile at zoom {z} (8 tiles in turn)",
            # OGC API – Tiles order: …/{tileMatrix}/{tileRow}/{tileCol}, i.e. z/y/x
            [f"/collections/{BENCH_LAYER}/tiles/WebMercatorQuad/{z}/{y}/{x}" for x, y in tiles],
            raw,
            [url_path(tipg_path.format(x=x, y=y), properties=",".join(carried)) for x, y in tiles],
            tipg_all=[tipg_path.format(x=x, y=y) for x, y in tiles],
        )
        if raw is None:
            tile_workload.skipped["raw"] = why
        workloads.append(tile_workload)
    return workloads
