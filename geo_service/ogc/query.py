"""The one query builder: SQL that makes PostgreSQL build the GeoJSON, from named clauses.

Values are always bound; the only identifiers are fixed column names. The response body is assembled
inside PostgreSQL (`json_build_object`, `ST_AsGeoJSON`, `string_agg`): Python never loops over features.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import TextClause, text

from geo_service.ogc.crs import CRS, CRS84_CRS
from geo_service.ogc.parameters import BBox


def feature_json(crs: CRS) -> str:
    """SQL of one feature as GeoJSON text, its geometry in `crs` and that CRS's axis order."""
    return (
        "json_build_object('type', 'Feature', 'id', f.id,"
        f" 'geometry', ST_AsGeoJSON({crs.geometry_sql('f.geom')}, {crs.digits}, 0)::json,"
        " 'properties', f.properties)::text"
    )


@dataclass(frozen=True)
class ItemsFilter:
    """What selects features of one layer (the cursor position aside)."""

    layer_id: str
    bbox: BBox | None = None
    bbox_crs: CRS = CRS84_CRS

    @property
    def is_filtered(self) -> bool:
        """Whether the filter selects less than the whole layer."""
        return self.bbox is not None

    def fingerprint(self) -> str:
        """A stable text that identifies the filter, bound into cursors."""
        box = self.bbox
        if box is None:
            return self.layer_id
        return f"{self.layer_id}|{box.west},{box.south},{box.east},{box.north}|{self.bbox_crs.uri}"


@dataclass
class _Where:
    clauses: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    def sql(self) -> str:
        return " AND ".join(self.clauses) if self.clauses else "TRUE"


def _where(filter_: ItemsFilter) -> _Where:
    where = _Where(["f.layer_id = :layer_id"], {"layer_id": filter_.layer_id})
    if filter_.bbox is not None:
        # ST_Intersects uses the GiST index through its && test on the (transformed) literal
        boxes = []
        for i, (w, s, e, n) in enumerate(filter_.bbox.envelopes()):
            envelope = filter_.bbox_crs.envelope_sql((f"w{i}", f"s{i}", f"e{i}", f"n{i}"))
            boxes.append(f"ST_Intersects(f.geom, {envelope})")
            where.params.update({f"w{i}": w, f"s{i}": s, f"e{i}": e, f"n{i}": n})
        where.clauses.append("(" + " OR ".join(boxes) + ")")
    return where


def page_statement(
    filter_: ItemsFilter, *, after: int | None, limit: int, count: bool, crs: CRS = CRS84_CRS
) -> TextClause:
    """One statement: the page's features as a JSON array body, whether more follow, and the count if asked.

    One extra row is fetched to learn whether a next page exists without counting.
    """
    where = _where(filter_)
    base = where.sql()
    page_where = base + (" AND f.id > :after" if after is not None else "")
    matched = f"(SELECT count(*) FROM features f WHERE {base})" if count else "NULL::bigint"
    sql = f"""
        WITH page AS (
            SELECT f.id, f.geom, f.properties FROM features f
            WHERE {page_where}
            ORDER BY f.id
            LIMIT :fetch
        ), shown AS (
            SELECT * FROM page f ORDER BY f.id LIMIT :limit
        )
        SELECT (SELECT count(*) FROM page) > :limit AS has_more,
               (SELECT max(id) FROM shown) AS last_id,
               (SELECT count(*) FROM shown) AS returned,
               (SELECT string_agg({feature_json(crs)}, ',' ORDER BY f.id) FROM shown f) AS features,
               {matched} AS matched
    """
    params = where.params | {"fetch": limit + 1, "limit": limit}
    if after is not None:
        params["after"] = after
    return text(sql).bindparams(**params)


def feature_statement(layer_id: str, feature_id: int, crs: CRS = CRS84_CRS) -> TextClause:
    """One feature as GeoJSON text, with its version and time of last change."""
    return text(
        f"SELECT {feature_json(crs)} AS feature, f.version, f.updated_at FROM features f"
        " WHERE f.layer_id = :layer_id AND f.id = :id"
    ).bindparams(layer_id=layer_id, id=feature_id)


def layer_states_statement() -> TextClause:
    """Version, count, change time and extent of every layer (stale extents are computed on the fly)."""
    return text(
        """
        SELECT l.id, l.version, l.feature_count, l.updated_at,
               ST_XMin(e.box) AS xmin, ST_YMin(e.box) AS ymin, ST_XMax(e.box) AS xmax, ST_YMax(e.box) AS ymax
        FROM layers l
        CROSS JOIN LATERAL (
            SELECT COALESCE(l.extent, (SELECT ST_Extent(f.geom)::geometry FROM features f
                                       WHERE f.layer_id = l.id)) AS box
        ) e
        """
    )
