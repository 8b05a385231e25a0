"""`jxplan bench load`: a large synthetic layer for benchmarks (`bench_parcels`, see `layers/bench.yaml`).

Every row is made inside PostgreSQL by one `INSERT … SELECT` over `generate_series`: no Python per row. Row
`i` depends on `i` alone (its "random" numbers are hashes of `i`), so a load of N rows is the same every time
and its first k rows are those of a load of k rows. Each parcel is a star-shaped polygon around a point of the
Jiaxing region: 4–7 vertices in strictly increasing angle around the centre (one per sector, jittered within
it), radii jittered, nominally 30–300 m across (log-uniform), randomly rotated. Vertices in angular order
around an interior point make a simple ring, so every geometry is valid by construction; the table's
`ST_IsValid` check constraint verifies it on insert. Rows go into the same `features` table the service
reads, so its triggers keep the layer's version, count and extent.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from sqlalchemy import Engine, text

from geo_service.catalog import Layer
from geo_service.loader import ensure_layer_row, refresh_extents

BENCH_LAYER = "bench_parcels"
BENCH_BY = "bench"  # `updated_by` of generated rows
# the region the parcels are scattered over: lon 120.3–121.3 E, lat 30.4–31.05 N
REGION = (120.3, 30.4, 121.3, 31.05)
# centres keep this far (degrees) from the region's edges, so every parcel (≤ 150 m from its centre) is inside
MARGIN_DEG = 0.002
MIN_ACROSS_M, MAX_ACROSS_M = 30.0, 300.0
GRID_DEG = 1e-7  # coordinates are stored on a 1e-7 degree grid (≈ 1 cm), as surveyed data would be

# First-level classes of 国土空间调查、规划、用途管制用地用海分类, the code's number as index (01 → 1).
LAND_USE_LABELS = (
    "耕地",
    "园地",
    "林地",
    "草地",
    "湿地",
    "农业设施建设用地",
    "居住用地",
    "公共管理与公共服务用地",
    "商业服务业用地",
    "工矿用地",
    "仓储用地",
    "交通运输用地",
    "公用设施用地",
    "绿地与开敞空间用地",
    "特殊用地",
    "留白用地",
    "陆地水域",
    "渔业用海",
    "工矿通信用海",
    "交通运输用海",
    "游憩用海",
    "特殊用海",
    "其他土地",
    "其他海域",
)
# the land classes drawn for parcels, repeated by weight (cropland, housing and industry most often)
LAND_USE_DRAW = (
    *["01"] * 6,
    "02",
    *["03"] * 2,
    "04",
    "05",
    "06",
    *["07"] * 5,
    *["08"] * 2,
    *["09"] * 2,
    *["10"] * 3,
    "11",
    *["12"] * 2,
    "13",
    *["14"] * 2,
    "15",
    "16",
    *["17"] * 2,
    "23",
)
STATUS_DRAW = ("planned",) * 5 + ("existing",) * 3 + ("under_construction", "completed")
ACCURACY_DRAW = (("schematic", 50), ("schematic", 50), ("schematic", 50), ("approximate", 10))


@dataclass(frozen=True)
class BenchLoad:
    """What a load did and how long it took."""

    rows: int
    delete_s: float
    insert_s: float
    analyze_s: float

    @property
    def total_s(self) -> float:
        """Wall time of the whole load."""
        return self.delete_s + self.insert_s + self.analyze_s

    def summary(self) -> str:
        """One line for the terminal."""
        return (
            f"{BENCH_LAYER}: {self.rows:,} rows in {self.total_s:.1f} s"
            f" (delete {self.delete_s:.1f} s, insert {self.insert_s:.1f} s,"
            f" vacuum/analyze {self.analyze_s:.1f} s)"
        )


def _uniform(seed_sql: str, salt: int) -> str:
    """SQL of a number in [0, 1) that depends only on the bigint expression `seed_sql` and `salt`: the
    portable 64-bit hash PostgreSQL uses for hash partitioning, its low 53 bits as a float."""
    return f"((hashint8extended({seed_sql}, {salt}) & 9007199254740991)::float8 / 9007199254740992.0)"


def _pick(values: tuple[str, ...], u: str) -> str:
    """SQL choosing one of `values` by the uniform number `u`."""
    array = ", ".join(f"'{v}'" for v in values)
    return f"(ARRAY[{array}])[1 + floor({u} * {len(values)})::int]"


def generate_statement() -> str:
    """The one `INSERT … SELECT` that makes `:rows` parcels of layer `:layer` (both bound)."""
    west, south, east, north = REGION

    def u(salt: int) -> str:  # a draw per row
        return _uniform("s.i", salt)

    def v(salt: int) -> str:  # a draw per vertex (the closing vertex repeats the first one's)
        return _uniform("s.i * 8 + k.k % c.n", salt)

    accuracy = ", ".join(f"'{a}'" for a, _ in ACCURACY_DRAW)
    accuracy_m = ", ".join(str(m) for _, m in ACCURACY_DRAW)
    labels = ", ".join(f"'{label}'" for label in LAND_USE_LABELS)
    log_span = math.log(MAX_ACROSS_M / MIN_ACROSS_M)
    return f"""
        INSERT INTO features (layer_id, properties, geom, updated_by)
        SELECT :layer,
               jsonb_build_object(
                   'code', 'bench-' || c.num,
                   'name_zh', '嘉兴地块-' || c.num,
                   'name_en', 'Jiaxing parcel ' || c.num,
                   'category', (ARRAY[{labels}])[c.land_use::int],
                   'status', c.status,
                   'accuracy', (ARRAY[{accuracy}])[c.acc],
                   'accuracy_m', (ARRAY[{accuracy_m}])[c.acc],
                   'source', '合成数据 synthetic (jxplan bench load)',
                   'land_use', c.land_use,
                   'area_m2', round(ST_Area(ST_Transform(g.geom, 4549))::numeric, 1)
               ),
               g.geom,
               '{BENCH_BY}'
        FROM generate_series(1::bigint, CAST(:rows AS bigint)) AS s(i)
        CROSS JOIN LATERAL (
            SELECT CASE WHEN s.i < 1000000 THEN lpad(s.i::text, 6, '0') ELSE s.i::text END AS num,
                   {west + MARGIN_DEG:.6f} + {east - west - 2 * MARGIN_DEG:.6f} * {u(1)} AS lon,
                   {south + MARGIN_DEG:.6f} + {north - south - 2 * MARGIN_DEG:.6f} * {u(2)} AS lat,
                   {MIN_ACROSS_M / 2} * exp({log_span:.12f} * {u(3)}) AS radius,
                   2 * pi() * {u(4)} AS rotation,
                   4 + floor(4 * {u(5)})::int AS n,
                   {_pick(LAND_USE_DRAW, u(6))} AS land_use,
                   {_pick(STATUS_DRAW, u(7))} AS status,
                   1 + floor({len(ACCURACY_DRAW)} * {u(8)})::int AS acc
        ) c
        CROSS JOIN LATERAL (
            SELECT ST_Multi(ST_SnapToGrid(ST_MakePolygon(ST_MakeLine(array_agg(
                       ST_SetSRID(ST_MakePoint(
                           c.lon + p.r * cos(p.a) / (111320.0 * cos(radians(c.lat))),
                           c.lat + p.r * sin(p.a) / 110574.0), 4326)
                       ORDER BY p.k))), {GRID_DEG})) AS geom
            FROM (
                -- vertex k in its own sector (±0.35 of a sector), the last one repeating the first
                SELECT k.k,
                       c.rotation + 2 * pi() / c.n * ((k.k % c.n) + 0.7 * {v(9)} - 0.35) AS a,
                       c.radius * (0.75 + 0.25 * {v(10)}) AS r
                FROM generate_series(0, c.n) AS k(k)
            ) p
        ) g
        ORDER BY s.i
    """


def load_bench_layer(engine: Engine, layer: Layer, rows: int) -> BenchLoad:
    """Replace the layer's rows with `rows` generated parcels, then VACUUM ANALYZE the features table."""
    if rows < 1:
        raise ValueError("rows must be at least 1")
    if layer.file is not None:
        raise ValueError(f"layer {layer.id} has a seed file; only generated layers may be replaced")
    with engine.begin() as conn:
        ensure_layer_row(conn, layer)
        started = time.perf_counter()
        conn.execute(text("DELETE FROM features WHERE layer_id = :layer"), {"layer": layer.id})
        deleted = time.perf_counter()
        conn.execute(text(generate_statement()), {"layer": layer.id, "rows": rows})
        refresh_extents(conn)
        inserted = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        # fresh statistics for the planner, and no dead rows left by the replaced load
        conn.execute(text("VACUUM (ANALYZE) features"))
        conn.execute(text("ANALYZE layers"))
    done = time.perf_counter()
    return BenchLoad(rows, deleted - started, inserted - deleted, done - inserted)
