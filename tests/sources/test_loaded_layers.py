"""Data checks over the loaded database: what the plan layers claim about themselves holds in PostGIS.

Each check is a query that lists the offending features; the tests assert the lists are empty on the shared
loaded database, and the last test breaks a private copy on purpose to show every check can fail.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, text

from geo_service.catalog import Catalog
from geo_service.loader import load

ROOT = Path(__file__).resolve().parents[2]
SEEDS = ROOT / "layers" / "sources" / "seeds"
ADMIN = "admin_boundaries"
CITY_ADCODE = "330400"
# The city outline is good to ~100 m; a geometry may reach this far past it and still count as inside.
OUTSIDE_TOLERANCE_M = 200
STATED_AREA_TOLERANCE = 0.30

CITY = (
    f"""(SELECT geom FROM features WHERE layer_id = '{ADMIN}' AND properties->>'adcode' = '{CITY_ADCODE}')"""
)
PLAN = f"layer_id <> '{ADMIN}'"


def invalid_geometries(conn: Connection) -> list[tuple[str, str]]:
    """Features whose geometry PostGIS finds invalid, with the reason."""
    rows = conn.execute(
        text(
            "SELECT code, ST_IsValidReason(geom) FROM features"
            " WHERE geom IS NOT NULL AND NOT ST_IsValid(geom)"
        )
    )
    return [tuple(r) for r in rows]


def wrong_geometry_types(conn: Connection) -> list[tuple[str, str, str]]:
    """Features whose geometry type is not their layer's."""
    rows = conn.execute(
        text(
            "SELECT f.code, l.geometry_type, ST_GeometryType(f.geom) FROM features f JOIN layers l ON l.id ="
            " f.layer_id WHERE f.geom IS NOT NULL AND 'ST_' || l.geometry_type <> ST_GeometryType(f.geom)"
        )
    )
    return [tuple(r) for r in rows]


def unlocated_mismatches(conn: Connection) -> list[str]:
    """Plan features where a null geometry and accuracy "unlocated" do not go together."""
    rows = conn.execute(
        text(f"SELECT code FROM features WHERE {PLAN} AND (geom IS NULL) <> (accuracy = 'unlocated')")
    )
    return [r[0] for r in rows]


def outside_jiaxing(conn: Connection) -> tuple[list[str], list[str]]:
    """Plan features that leave Jiaxing without saying so, and those that say so but do not."""
    rows = conn.execute(
        text(
            f"""
            SELECT code, properties->>'outside_jiaxing' IS NOT NULL AS declared,
                   NOT ST_Covers(ST_Buffer(ST_Transform({CITY}, 4549), :tolerance),
                                 ST_Transform(geom, 4549)) AS outside
            FROM features WHERE {PLAN} AND geom IS NOT NULL ORDER BY code
            """
        ),
        {"tolerance": OUTSIDE_TOLERANCE_M},
    ).all()
    undeclared = [r.code for r in rows if r.outside and not r.declared]
    false_claims = [r.code for r in rows if r.declared and not r.outside]
    return undeclared, false_claims


def missed_counties(conn: Connection) -> list[tuple[str, float]]:
    """Plan features that miss the Jiaxing counties they claim, beyond what their own error and note allow.

    A proxy point the sources put just across a boundary is kept where they put it; its geometry_method says
    so and the miss must be within its accuracy_m. A feature that claims no Jiaxing county must say where
    outside Jiaxing it lies.
    """
    rows = conn.execute(
        text(
            f"""
            SELECT f.code, f.properties->>'outside_jiaxing' AS outside,
                   (f.properties->>'accuracy_m')::float AS error_m,
                   coalesce(f.properties->>'geometry_method', '') AS method,
                   c.geom IS NULL AS claims_none,
                   ST_Intersects(c.geom, f.geom) AS meets,
                   ST_Distance(ST_Transform(c.geom, 4549), ST_Transform(f.geom, 4549)) AS distance_m
            FROM features f
            CROSS JOIN LATERAL (
                SELECT ST_Union(a.geom) AS geom FROM features a
                WHERE a.layer_id = '{ADMIN}' AND a.properties->>'adcode' <> '{CITY_ADCODE}'
                  AND a.properties->>'adcode' IN (SELECT jsonb_array_elements_text(f.properties->'county'))
            ) c
            WHERE f.{PLAN} AND f.geom IS NOT NULL ORDER BY f.code
            """
        )
    ).all()
    missed = []
    for r in rows:
        if r.claims_none:
            if r.outside is None:
                missed.append((r.code, float("inf")))
        elif not r.meets:
            excused = (
                "outside the claimed" in r.method and r.error_m is not None and r.distance_m <= r.error_m
            )
            if not excused:
                missed.append((r.code, r.distance_m))
    return missed


def plan_text_not_in_seed(conn: Connection) -> list[str]:
    """Features whose plan_text does not occur byte for byte in the seed file they name."""
    rows = conn.execute(
        text(
            "SELECT code, properties->>'plan_text' AS plan_text, properties->>'plan_source' AS seed "
            "FROM features WHERE properties->>'plan_text' IS NOT NULL"
        )
    ).all()
    seeds: dict[str, str] = {}
    wrong = []
    for r in rows:
        path = SEEDS / (r.seed or "")
        if r.seed is None or not path.is_file():
            wrong.append(r.code)
            continue
        seeds.setdefault(r.seed, path.read_text(encoding="utf-8"))
        if r.plan_text not in seeds[r.seed]:
            wrong.append(r.code)
    return wrong


def duplicate_codes(conn: Connection) -> list[str]:
    """Codes carried by more than one feature."""
    rows = conn.execute(text("SELECT code FROM features GROUP BY code HAVING count(*) > 1 ORDER BY code"))
    return [r[0] for r in rows]


def co_location_faults(conn: Connection) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Pairs at identical coordinates not declared co-located, and declared pairs that are not identical."""
    identical = conn.execute(
        text(
            f"""
            SELECT a.code AS a, b.code AS b,
                   (a.properties->'co_located_with') ? b.code AND (b.properties->'co_located_with') ? a.code
                       AS declared
            FROM features a JOIN features b ON a.id < b.id AND a.geom && b.geom AND ST_Equals(a.geom, b.geom)
            WHERE a.{PLAN} AND b.{PLAN} ORDER BY a.code, b.code
            """
        )
    ).all()
    undeclared = [(r.a, r.b) for r in identical if not r.declared]
    stale = conn.execute(
        text(
            f"""
            SELECT a.code AS a, other AS b
            FROM features a CROSS JOIN LATERAL jsonb_array_elements_text(
                coalesce(a.properties->'co_located_with', '[]'::jsonb)) AS other
            LEFT JOIN features b ON b.code = other
            WHERE a.{PLAN} AND (b.id IS NULL OR a.geom IS NULL OR b.geom IS NULL
                                OR NOT ST_Equals(a.geom, b.geom))
            ORDER BY a.code, other
            """
        )
    ).all()
    return undeclared, [(r.a, r.b) for r in stale]


def areas_off_stated(conn: Connection) -> list[tuple[str, float, float]]:
    """Zones whose drawn area (EPSG:4549) is more than 30 % off the area the sources state."""
    rows = conn.execute(
        text(
            f"""
            SELECT code, (properties->>'stated_area_km2')::float AS stated,
                   ST_Area(ST_Transform(geom, 4549)) / 1e6 AS drawn
            FROM features
            WHERE {PLAN} AND geom IS NOT NULL AND ST_Dimension(geom) = 2
              AND jsonb_typeof(properties->'stated_area_km2') = 'number'
            ORDER BY code
            """
        )
    ).all()
    return [
        (r.code, r.stated, r.drawn)
        for r in rows
        if abs(r.drawn - r.stated) > STATED_AREA_TOLERANCE * r.stated
    ]


@pytest.fixture(scope="module")
def conn(engine: Engine) -> Any:
    """A connection to the shared loaded database."""
    with engine.connect() as connection:
        yield connection


def test_the_plan_layers_are_loaded(conn: Connection, seeds: dict[str, dict[str, dict[str, Any]]]) -> None:
    """Every seed feature of every layer is in the database (so the checks below look at real rows)."""
    stored = dict(conn.execute(text("SELECT layer_id, count(*) FROM features GROUP BY layer_id")).all())
    assert stored == {layer_id: len(features) for layer_id, features in seeds.items()}
    assert sum(stored.values()) > 100


def test_every_geometry_is_valid(conn: Connection) -> None:
    """ST_IsValid holds for every stored geometry."""
    assert invalid_geometries(conn) == []


def test_every_geometry_has_its_layers_type(conn: Connection) -> None:
    """Each layer holds one geometry type, the one its catalogue entry declares."""
    assert wrong_geometry_types(conn) == []


def test_unlocated_exactly_when_geometry_is_null(conn: Connection) -> None:
    """A feature without geometry says "unlocated", and only such a feature does."""
    assert unlocated_mismatches(conn) == []


def test_every_feature_inside_jiaxing_unless_declared(conn: Connection) -> None:
    """A geometry leaving the city (by more than the outline's error) names where in `outside_jiaxing`."""
    undeclared, false_claims = outside_jiaxing(conn)
    assert undeclared == []
    assert false_claims == []


def test_every_feature_meets_the_counties_it_claims(conn: Connection) -> None:
    """Each drawn feature intersects the union of the counties it claims (against admin_boundaries)."""
    assert missed_counties(conn) == []


def test_plan_text_occurs_verbatim_in_a_seed(conn: Connection) -> None:
    """Every stored plan_text is a byte-for-byte quotation of the seed file it names."""
    quoted = conn.scalar(text("SELECT count(*) FROM features WHERE properties->>'plan_text' IS NOT NULL"))
    assert quoted > 50
    assert plan_text_not_in_seed(conn) == []


def test_codes_are_unique(conn: Connection) -> None:
    """No code is carried by two features, within or across layers."""
    assert duplicate_codes(conn) == []


def test_no_two_features_at_identical_coordinates_unless_declared(conn: Connection) -> None:
    """Identical geometries are declared co-located both ways, and every declaration is true."""
    undeclared, stale = co_location_faults(conn)
    assert undeclared == []
    assert stale == []


def test_zone_areas_match_stated_areas(conn: Connection) -> None:
    """Every drawn zone with a stated area is within ±30 % of it."""
    checked = conn.scalar(
        text(
            f"SELECT count(*) FROM features"
            f" WHERE {PLAN} AND jsonb_typeof(properties->'stated_area_km2') = 'number'"
        )
    )
    assert checked >= 10
    assert areas_off_stated(conn) == []


def test_each_check_catches_a_broken_feature(private_engine: Engine, catalog: Catalog) -> None:
    """On a private copy, features broken on purpose are reported by the check that guards against it."""
    load(private_engine, catalog)
    with private_engine.begin() as conn:
        # a station moved to central Shanghai: outside Jiaxing undeclared, and off its claimed county
        conn.execute(
            text(
                "UPDATE features SET geom = ST_SetSRID(ST_MakePoint(121.47, 31.23), 4326)"
                " WHERE code = 'c03_jiashan_south_stn'"
            )
        )
        # a self-intersecting zone (a bow tie); the table refuses one, so this private copy drops that guard
        conn.execute(text("ALTER TABLE features DROP CONSTRAINT features_geom_check"))
        conn.execute(
            text(
                "UPDATE features SET geom = ST_GeomFromText('MULTIPOLYGON(((120.85 30.8, 120.9 30.85,"
                " 120.9 30.8, 120.85 30.85, 120.85 30.8)))', 4326) WHERE code = 'a12_shanghai_window'"
            )
        )
        # a misquoted plan sentence, a taken code in another layer, a station put onto another
        conn.execute(
            text(
                "UPDATE features SET properties = jsonb_set(properties, '{plan_text}', to_jsonb("
                "(properties->>'plan_text') || '!')) WHERE code = 'e21_qiandaohu_water'"
            )
        )
        conn.execute(
            text(
                "UPDATE features SET properties = jsonb_set(properties, '{code}', '\"c04_tongxiang_stn\"')"
                " WHERE code = 'e15_modern_logistics_park'"
            )
        )
        conn.execute(
            text(
                "UPDATE features SET geom = (SELECT geom FROM features WHERE code = 'c11_haining_stn')"
                " WHERE code = 'c10_haining_guanchao_stn'"
            )
        )
        # a zone shrunk to a fifth of its stated area; an outline declared outside Jiaxing moved inside
        conn.execute(
            text(
                "UPDATE features SET geom = ST_Multi(ST_Buffer(ST_PointOnSurface(geom), 0.01))"
                " WHERE code = 'a11_sino_singapore_park'"
            )
        )
        conn.execute(
            text(
                "UPDATE features SET geom = ST_Multi(ST_Buffer(ST_SetSRID(ST_MakePoint(120.75, 30.75), 4326),"
                " 0.01)) WHERE code = 'a01_demo_zone'"
            )
        )
    with private_engine.connect() as conn:
        assert [code for code, _ in invalid_geometries(conn)] == ["a12_shanghai_window"]
        assert outside_jiaxing(conn) == (["c03_jiashan_south_stn"], ["a01_demo_zone"])
        assert "c03_jiashan_south_stn" in [code for code, _ in missed_counties(conn)]
        assert plan_text_not_in_seed(conn) == ["e21_qiandaohu_water"]
        assert duplicate_codes(conn) == ["c04_tongxiang_stn"]
        assert co_location_faults(conn)[0] == [("c10_haining_guanchao_stn", "c11_haining_stn")]
        assert "a11_sino_singapore_park" in [code for code, _, _ in areas_off_stated(conn)]
