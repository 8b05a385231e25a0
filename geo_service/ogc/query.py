"""The one query builder: SQL that makes PostgreSQL build the GeoJSON, from named clauses.

Values are always bound; the only identifiers are fixed column names. The response body is assembled
inside PostgreSQL (`json_build_object`, `ST_AsGeoJSON`, `string_agg`): Python never loops over features.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import TextClause, text

from geo_service.db.engine import pyformat
from geo_service.ogc.cql import Predicate
from geo_service.ogc.crs import CRS, CRS84_CRS
from geo_service.ogc.fields import SortKey
from geo_service.ogc.parameters import BBox

CHUNK = 500  # features per streamed piece of a page


@dataclass(frozen=True)
class Sql:
    """A statement with `:name` placeholders and its values: a SQLAlchemy `text()` clause for the engine, or
    psycopg's form for the read pool (the same SQL either way)."""

    sql: str
    params: dict[str, Any]

    def clause(self) -> TextClause:
        """For SQLAlchemy."""
        return text(self.sql).bindparams(**self.params)

    def psycopg(self) -> tuple[str, dict[str, Any]]:
        """For psycopg: `%(name)s` placeholders (the conversion of each SQL text is cached)."""
        return pyformat(self.sql), self.params


@dataclass(frozen=True)
class CountUnless:
    """Count the matches inside the page's statement unless the layer is still at `known_version` (whose
    count the caller has) or holds more than `threshold` features (then the count is left out)."""

    known_version: int | None
    threshold: int


# the layer's state (version, feature count, time of last change) as a JSON array, in the page's snapshot
LAYER_STATE_SQL = (
    "(SELECT json_build_array(l.version, l.feature_count, l.updated_at)"
    " FROM layers l WHERE l.id = :layer_id)::text"
)


def feature_json(crs: CRS, *, drop_properties: bool = False) -> str:
    """SQL of one feature as GeoJSON text, its geometry in `crs` and that CRS's axis order.

    With `drop_properties`, the members named by the bound text array `:drop` are left out.
    """
    properties = "f.properties - CAST(:drop AS text[])" if drop_properties else "f.properties"
    return (
        "json_build_object('type', 'Feature', 'id', f.id,"
        f" 'geometry', ST_AsGeoJSON({crs.geometry_sql('f.geom')}, {crs.digits}, 0)::json,"
        f" 'properties', {properties})::text"
    )


@dataclass(frozen=True)
class ItemsFilter:
    """What selects features of one layer (the cursor position aside)."""

    layer_id: str
    bbox: BBox | None = None
    bbox_crs: CRS = CRS84_CRS
    predicate: Predicate | None = None

    @property
    def is_filtered(self) -> bool:
        """Whether the filter selects less than the whole layer."""
        return self.bbox is not None or self.predicate is not None

    def fingerprint(self) -> str:
        """A stable text that identifies the filter, bound into cursors."""
        parts = [self.layer_id]
        if (box := self.bbox) is not None:
            parts.append(f"{box.west},{box.south},{box.east},{box.north}|{self.bbox_crs.uri}")
        if self.predicate is not None:
            parts.append(self.predicate.canonical)
        return "|".join(parts)


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
    if filter_.predicate is not None:
        where.clauses.append(filter_.predicate.sql)
        where.params.update(filter_.predicate.params)
    return where


@dataclass(frozen=True)
class _Order:
    """The page order: each sort key (NULLs last in either direction), then the feature id."""

    keys: tuple[SortKey, ...]

    def clause(self, column: Callable[[int], str], *, id_column: str = "f.id", reverse: bool = False) -> str:
        terms = []
        for i, key in enumerate(self.keys):
            expr = column(i)
            terms.append(f"({expr} IS NULL){' DESC' if reverse else ''}")
            terms.append(f"{expr}{' DESC' if key.descending != reverse else ''}")
        terms.append(f"{id_column} DESC" if reverse else id_column)
        return "ORDER BY " + ", ".join(terms)

    def after(self, position: list[Any], params: dict[str, Any]) -> str:
        """SQL selecting the rows after `position` (the last row's key values, then its id)."""
        *values, last_id = position
        params["after"] = last_id
        disjuncts: list[str] = []
        equal: list[str] = []
        for i, (key, value) in enumerate(zip(self.keys, values, strict=True)):
            expr = key.field.sort_sql
            if value is None:  # the last row had NULL here: only later NULLs, ordered by what follows
                equal.append(f"{expr} IS NULL")
                continue
            params[f"k{i}"] = value
            later = f"{expr} {'<' if key.descending else '>'} :k{i}"
            disjuncts.append(" AND ".join([*equal, f"{expr} IS NOT NULL", later]))
            disjuncts.append(" AND ".join([*equal, f"{expr} IS NULL"]))
            equal.append(f"{expr} = :k{i}")
        disjuncts.append(" AND ".join([*equal, "f.id > :after"]))
        return "(" + " OR ".join(f"({d})" for d in disjuncts) + ")"


def page_statement(
    filter_: ItemsFilter,
    *,
    after: list[Any] | None,
    limit: int,
    count: bool,
    crs: CRS = CRS84_CRS,
    sort: tuple[SortKey, ...] = (),
    drop: list[str] | None = None,
) -> TextClause:
    """`page_sql` as a SQLAlchemy clause (without the layer's state)."""
    return page_sql(filter_, after=after, limit=limit, count=count, crs=crs, sort=sort, drop=drop).clause()


def page_sql(
    filter_: ItemsFilter,
    *,
    after: list[Any] | None,
    limit: int,
    count: bool | CountUnless,
    crs: CRS = CRS84_CRS,
    sort: tuple[SortKey, ...] = (),
    drop: list[str] | None = None,
    state: bool = False,
) -> Sql:
    """One statement for a page, returned as rows so a big page streams in pieces: with `state`, first the
    layer's state (part -1, LAYER_STATE_SQL; NULL when the layer is not loaded), then the features as
    GeoJSON text in chunks of CHUNK features (part 0, in page order), then one row (part 1) saying whether
    more follow, where the page ends (the last row's sort values and id, for the next cursor), how many
    were returned and the count if asked (or as `CountUnless` says).

    One extra row is fetched to learn whether a next page exists without counting. The state and the page
    come from one statement, hence one snapshot: numberMatched, the ETag and the page agree.
    """
    where = _where(filter_)
    base = where.sql()
    order = _Order(sort)
    params = dict(where.params)
    page_where = base + (f" AND {order.after(after, params)}" if after is not None else "")
    matched = f"(SELECT count(*) FROM features f WHERE {base})" if count else "NULL::bigint"
    if isinstance(count, CountUnless):
        matched = (
            "CASE WHEN (SELECT l.version FROM layers l WHERE l.id = :layer_id) IS DISTINCT FROM"
            " CAST(:known_version AS bigint) AND"
            f" (SELECT l.feature_count FROM layers l WHERE l.id = :layer_id) <= :count_threshold"
            f" THEN {matched} END"
        )
        params |= {"known_version": count.known_version, "count_threshold": count.threshold}
    head = f"SELECT -1 AS part, 0 AS chunk, {LAYER_STATE_SQL} AS body UNION ALL " if state else ""
    keys = "".join(f", {key.field.sort_sql} AS k{i}" for i, key in enumerate(sort))
    key_columns = "".join(f"k{i}, " for i in range(len(sort)))
    shown_order = order.clause(lambda i: f"f.k{i}")
    feature = feature_json(crs, drop_properties=drop is not None)
    sql = f"""
        WITH page AS (
            SELECT f.id, f.geom, f.properties{keys} FROM features f
            WHERE {page_where}
            {order.clause(lambda i: sort[i].field.sort_sql)}
            LIMIT :fetch
        ), shown AS (
            SELECT * FROM page f {shown_order} LIMIT :limit
        ), numbered AS (
            SELECT f.*, row_number() OVER ({shown_order}) AS rn FROM shown f
        )
        SELECT part, body FROM (
            {head}SELECT 0 AS part, (f.rn - 1) / {CHUNK} AS chunk,
                   string_agg({feature}, ',' ORDER BY f.rn) AS body
            FROM numbered f GROUP BY 2
            UNION ALL
            SELECT 1, 0, json_build_object(
                'has_more', (SELECT count(*) FROM page) > :limit,
                'last', (SELECT json_build_array({key_columns}id) FROM shown f
                         {order.clause(lambda i: f"f.k{i}", reverse=True)} LIMIT 1),
                'returned', (SELECT count(*) FROM shown),
                'matched', {matched})::text
        ) parts ORDER BY part, chunk
    """
    params |= {"fetch": limit + 1, "limit": limit}
    if drop is not None:
        params["drop"] = drop
    return Sql(sql, params)


def download_statement(
    filter_: ItemsFilter,
    columns: list[str],
    geometry: str,
    *,
    sort: tuple[SortKey, ...] = (),
    limit: int | None = None,
) -> TextClause:
    """Every matching feature (or the first `limit`) as typed columns, for writing a file."""
    where = _where(filter_)
    order = _Order(sort).clause(lambda i: sort[i].field.sort_sql)
    select = ", ".join(["f.id", *columns, geometry])
    sql = f"SELECT {select} FROM features f WHERE {where.sql()} {order}"
    params = dict(where.params)
    if limit is not None:
        sql += " LIMIT :limit"
        params["limit"] = limit
    return text(sql).bindparams(**params)


def feature_statement(
    layer_id: str, feature_id: int, crs: CRS = CRS84_CRS, drop: list[str] | None = None
) -> TextClause:
    """`feature_sql` as a SQLAlchemy clause."""
    return feature_sql(layer_id, feature_id, crs, drop).clause()


def feature_sql(layer_id: str, feature_id: int, crs: CRS = CRS84_CRS, drop: list[str] | None = None) -> Sql:
    """One feature as GeoJSON text, with its version and time of last change."""
    params: dict[str, Any] = {"layer_id": layer_id, "id": feature_id}
    if drop is not None:
        params["drop"] = drop
    return Sql(
        f"SELECT {feature_json(crs, drop_properties=drop is not None)} AS feature, f.version, f.updated_at"
        " FROM features f WHERE f.layer_id = :layer_id AND f.id = :id",
        params,
    )


# Every version of one feature (bound :layer and :id): the states history kept, and the current row.
FEATURE_STATES = """
    SELECT version, properties, geom, operation, changed_by, comment, valid_to AS changed_at
      FROM feature_history WHERE layer_id = :layer AND feature_id = :id
    UNION ALL
    SELECT version, properties, geom, 'current', updated_by, NULL, updated_at
      FROM features WHERE layer_id = :layer AND id = :id
"""


def feature_version_statement(layer_id: str, feature_id: int, version: int) -> TextClause:
    """One version of a feature (current or from history) as GeoJSON text, with whether it is current."""
    return text(
        "SELECT json_build_object('type', 'Feature', 'id', :id,"
        " 'geometry', ST_AsGeoJSON(s.geom, 7, 0)::json, 'properties', s.properties)::text AS feature,"
        " s.operation = 'current' AS current"
        f" FROM ({FEATURE_STATES}) s WHERE s.version = :version"
    ).bindparams(layer=layer_id, id=feature_id, version=version)


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
            OFFSET 0  -- kept a subquery: a stale extent computed once, not once per ST_XMin … ST_YMax
        ) e
        """
    )
