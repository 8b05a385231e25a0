"""The benchmark database: which one, the generated rows, tipg's copy of them, and what the server runs."""

from __future__ import annotations

import os
from dataclasses import dataclass

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from geo_service.bench import BENCH_LAYER, load_bench_layer
from geo_service.catalog import Layer
from geo_service.db import migrate
from geo_service.db.embedded import EmbeddedCluster
from geo_service.db.engine import ensure_database, normalize_url
from geo_service.settings import PROJECT_ROOT

TIPG_SCHEMA = "bench"
TIPG_TABLE = f"{TIPG_SCHEMA}.parcels"


@dataclass(frozen=True)
class Target:
    """Where the benchmark runs: a SQLAlchemy URL (psycopg driver) and where it came from."""

    url: str
    origin: str
    started_cluster: bool = False  # the embedded cluster was not running and resolve() started it

    @property
    def libpq_url(self) -> str:
        """The same URL as libpq, psycopg and asyncpg (tipg) take it."""
        return make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)


def resolve(database_url: str | None, database: str, *, environment: bool = True) -> Target:
    """`database_url` (or DATABASE_URL, with `environment`) as given; otherwise database `database` on the
    embedded cluster, started if it is not running (`started_cluster` says whether this call started it)."""
    given = database_url or (os.environ.get("DATABASE_URL") if environment else None)
    if given:
        return Target(normalize_url(given), "DATABASE_URL" if not database_url else "--database-url")
    cluster = EmbeddedCluster(PROJECT_ROOT / ".data")
    started = cluster.start()
    url = make_url(cluster.url("postgres")).set(database=database).render_as_string(hide_password=False)
    ensure_database(url)
    return Target(url, f"embedded cluster, database {database}", started)


def layer_rows(engine: Engine) -> int:
    """How many bench_parcels rows the database holds (0 before the first load)."""
    with engine.connect() as conn:
        count = conn.scalar(text("SELECT feature_count FROM layers WHERE id = :l"), {"l": BENCH_LAYER})
    return int(count or 0)


def prepare_rows(url: str, engine: Engine, layer: Layer, rows: int, *, reload: bool) -> float | None:
    """Migrate, and generate `rows` parcels unless exactly that many are there (the same rows every time);
    the load's duration in seconds, or None when nothing was loaded."""
    migrate.upgrade(url)
    if not reload and layer_rows(engine) == rows:
        return None
    return load_bench_layer(engine, layer, rows).total_s


def _layer_version(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(text("SELECT version FROM layers WHERE id = :l"), {"l": BENCH_LAYER}))


def prepare_tipg_table(engine: Engine) -> bool:
    """tipg's table `bench.parcels`: the bench_parcels rows with their properties as typed columns, the
    same ids, a typed geometry column, a primary key and a GiST index. Rebuilt when the layer changed;
    True when it was."""
    marker = f"copy of {BENCH_LAYER} version {_layer_version(engine)}"
    with engine.begin() as conn:
        comment = conn.scalar(text("SELECT obj_description(to_regclass(:t), 'pg_class')"), {"t": TIPG_TABLE})
        if comment == marker:
            return False
        conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {TIPG_SCHEMA}"))
        conn.execute(text(f"DROP TABLE IF EXISTS {TIPG_TABLE}"))
        conn.execute(
            text(
                f"""
                CREATE TABLE {TIPG_TABLE} AS
                SELECT id, code, name_zh, name_en, category, status, accuracy,
                       (properties->>'accuracy_m')::float8 AS accuracy_m,
                       properties->>'source' AS source,
                       properties->>'land_use' AS land_use,
                       (properties->>'area_m2')::float8 AS area_m2,
                       geom::geometry(MultiPolygon, 4326) AS geom
                FROM features WHERE layer_id = :l ORDER BY id
                """
            ),
            {"l": BENCH_LAYER},
        )
        conn.execute(text(f"ALTER TABLE {TIPG_TABLE} ADD PRIMARY KEY (id)"))
        conn.execute(text(f"CREATE INDEX parcels_geom_idx ON {TIPG_TABLE} USING gist (geom)"))
        conn.execute(text(f"COMMENT ON TABLE {TIPG_TABLE} IS '{marker}'"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"VACUUM (ANALYZE) {TIPG_TABLE}"))
    return True


def sample_ids(engine: Engine, count: int) -> list[int]:
    """`count` feature ids spread evenly over the layer, in a fixed shuffled order."""
    with engine.connect() as conn:
        ids = list(
            conn.scalars(
                text(
                    "SELECT id FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM features"
                    " WHERE layer_id = :l) t WHERE n % :step = 0 ORDER BY md5(id::text) LIMIT :count"
                ),
                {"l": BENCH_LAYER, "step": max(1, layer_rows(engine) // count), "count": count},
            )
        )
    return [int(i) for i in ids]


def id_at(engine: Engine, position: int) -> int:
    """The id of the `position`-th feature (1-based) in id order."""
    with engine.connect() as conn:
        found = conn.scalar(
            text("SELECT id FROM features WHERE layer_id = :l ORDER BY id OFFSET :o LIMIT 1"),
            {"l": BENCH_LAYER, "o": position - 1},
        )
    return int(found)


def server_versions(engine: Engine) -> dict[str, str]:
    """PostgreSQL, PostGIS and GEOS versions, and the settings that matter most for speed."""
    with engine.connect() as conn:
        versions = {
            "PostgreSQL": str(conn.scalar(text("SHOW server_version"))),
            "PostGIS": str(conn.scalar(text("SELECT postgis_lib_version()"))),
            "GEOS": str(conn.scalar(text("SELECT postgis_geos_version()"))),
        }
        for name in ("shared_buffers", "work_mem", "max_connections", "jit"):
            versions[name] = str(conn.scalar(text(f"SHOW {name}")))
    return versions
