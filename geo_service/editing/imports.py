"""Importing features from files: GeoJSON, GeoPackage, zipped Shapefile (read by GDAL through pyogrio).

Rows are matched to the layer by `code`: new codes are created, known ones updated (their previous state goes
to history), identical ones left alone. Every row is checked like a single write; one bad row and nothing is
imported, and the report says which row and why. Coordinates are converted from the declared source
datum: `wgs84`/`cgcs2000` as they are, `gcj02`/`bd09` (AMap/Tencent, Baidu) converted, `EPSG:nnnn`
transformed. A batch whose known features sit where GCJ-02 (or BD-09) would put them gets a warning naming
the likely datum.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pyproj import CRS as ProjCRS
from pyproj import Transformer
from shapely.geometry import mapping
from sqlalchemy import Connection, Engine, text

from geo_service.catalog import Layer
from geo_service.datum import (
    bd09_to_wgs84,
    convert_geometry,
    gcj02_to_wgs84,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)
from geo_service.editing.import_checks import (
    ImportLimits,
    ImportProblem,
    checked_source,
    too_many_features,
)
from geo_service.editing.statements import RECORD_STATE, geometry_sql
from geo_service.settings import Settings, get_settings
from geo_service.validation import (
    MAX_JSON_DEPTH,
    Violation,
    geometry_violations,
    property_violations,
    too_deep,
)

DATUMS = ("wgs84", "cgcs2000", "gcj02", "bd09")
IGNORED_FIELDS = {"id", "fid", "ogc_fid"}
# A row's geometry is the stored one when no vertex moved more than 1e-7° (about 1 cm): a datum converted
# there and back, or a file that stores coordinates as single floats, is not an edit.
SAME_PLACE = (
    "CASE WHEN geom IS NULL OR {new} IS NULL THEN geom IS NULL AND {new} IS NULL"
    " ELSE GeometryType(geom) = GeometryType({new}) AND ST_HausdorffDistance(geom, {new}) < 1e-7 END"
)


@dataclass
class RowReport:
    """What happened (or would happen) to one row of the file."""

    row: int
    code: str | None
    outcome: str  # created, updated, unchanged, invalid
    reasons: list[str] = field(default_factory=list)


@dataclass
class ImportReport:
    """The outcome of an import: per row, warnings, and whether it was applied."""

    rows: list[RowReport]
    warnings: list[str]
    applied: bool

    def counts(self) -> dict[str, int]:
        """How many rows had each outcome."""
        out: dict[str, int] = {}
        for row in self.rows:
            out[row.outcome] = out.get(row.outcome, 0) + 1
        return out

    def counts_text(self) -> str:
        """The counts in a few words: `3 created, 1 updated`."""
        return ", ".join(f"{n} {k}" for k, n in sorted(self.counts().items()))

    def as_json(self) -> dict[str, Any]:
        """The report as a JSON document."""
        return {
            "applied": self.applied,
            "counts": self.counts(),
            "warnings": self.warnings,
            "rows": [vars(r) for r in self.rows],
        }


def _source_transform(datum: str | None, file_crs: str | None) -> tuple[str, Any]:
    """Which conversion the geometries need: ('datum', name) or ('epsg', transformer) or ('none', None)."""
    if datum is None:
        if file_crs:
            crs = ProjCRS.from_user_input(file_crs)
            if crs.to_epsg() not in (4326, 4490):
                return "epsg", Transformer.from_crs(crs, 4326, always_xy=True)
        return "none", None
    lowered = datum.lower()
    if lowered in ("wgs84", "cgcs2000"):
        return "none", None
    if lowered in ("gcj02", "bd09"):
        return "datum", lowered
    if lowered.startswith("epsg:") and lowered[5:].isdigit():
        try:
            return "epsg", Transformer.from_crs(ProjCRS.from_epsg(int(lowered[5:])), 4326, always_xy=True)
        except Exception as exc:  # pyproj raises several types for unknown codes
            raise ImportProblem(f"unknown datum {datum!r}: {exc}") from None
    raise ImportProblem(f"datum must be one of {', '.join(DATUMS)} or EPSG:nnnn; got {datum!r}")


def _value(raw_value: Any, schema: dict[str, Any]) -> Any:
    """A file value as the layer's schema wants it (lists from JSON text, numpy scalars as Python)."""
    if isinstance(raw_value, np.ndarray):  # GDAL's list fields (e.g. from GeoJSON)
        raw_value = [v.item() if isinstance(v, np.generic) else v for v in raw_value]
    if isinstance(raw_value, np.generic):
        raw_value = raw_value.item()
    if isinstance(raw_value, float) and math.isnan(raw_value):
        return None
    declared = schema.get("type")
    kinds = declared if isinstance(declared, list) else [declared]
    if isinstance(raw_value, datetime.date) and "string" in kinds:  # GDAL types date-like text as dates
        return raw_value.isoformat()
    if "array" in kinds and isinstance(raw_value, str):
        text_value = raw_value.strip()
        if text_value.startswith("["):
            try:
                parsed = json.loads(text_value)
            except (ValueError, RecursionError):
                return raw_value
            # too deep to check safely: left as text, which the schema then refuses as not a list
            return raw_value if too_deep(parsed) else parsed
        return [part.strip() for part in text_value.split(",") if part.strip()]
    if raw_value == "" and "null" in kinds:
        return None
    return raw_value


def _read_file(source: Path, limits: ImportLimits) -> tuple[dict[str, Any], Any, list[Any]]:
    """GDAL's metadata, geometries and columns of a checked file: at most one feature over the limit."""
    # GDAL is loaded on first use: it adds ~27 MiB to every process that imports it
    from pyogrio import raw

    with checked_source(source, limits) as readable:
        try:
            meta, _, geometries, columns = raw.read(str(readable), max_features=limits.max_features + 1)
        except Exception as exc:  # GDAL reports unreadable files with several error types
            if "nested" in str(exc):  # GDAL's JSON parser stops at 1024 levels
                raise ImportProblem(
                    f"{source.name} nests arrays or objects too deep for GDAL to read ({exc}); a GeoJSON "
                    f"feature needs fewer than {MAX_JSON_DEPTH} levels: flatten its properties"
                ) from None
            raise ImportProblem(f"cannot read {source.name}: {exc}") from None
    count = len(geometries) if geometries is not None else len(columns[0]) if len(columns) else 0
    if count > limits.max_features:
        raise too_many_features(source.name, limits)
    return meta, geometries, columns


def read_rows(
    source: str | Path, layer: Layer, datum: str | None, settings: Settings | None = None
) -> list[tuple[dict[str, Any], Any]]:
    """The file's rows as (properties, WGS 84 shapely geometry or None), after the file's safety checks
    and within the import limits of `settings` (the process's settings when not given)."""
    limits = ImportLimits.from_settings(settings or get_settings())
    meta, geometries, columns = _read_file(Path(source), limits)
    kind, how = _source_transform(datum, meta.get("crs"))
    schema = layer.json_schema["properties"]
    names = list(meta["fields"])
    rows: list[tuple[dict[str, Any], Any]] = []
    for index in range(len(geometries) if geometries is not None else 0):
        properties: dict[str, Any] = {}
        for name, column in zip(names, columns, strict=True):
            if name.lower() in IGNORED_FIELDS:
                continue
            value = _value(column[index], schema.get(name, {}))
            if value is not None:
                properties[name] = value
        wkb = geometries[index]
        geom = shapely.from_wkb(wkb) if wkb is not None else None
        if geom is not None and not geom.is_empty:
            geom = shapely.force_2d(geom)
            if kind == "datum":
                geom = convert_geometry(geom, how)
            elif kind == "epsg":
                geom = shapely.transform(geom, lambda xy: np.column_stack(how.transform(xy[:, 0], xy[:, 1])))
        rows.append((properties, geom))
    return rows


def _offset_warning(engine: Engine, layer: Layer, rows: list[tuple[dict[str, Any], Any]]) -> list[str]:
    """A warning when the file's known features lie where GCJ-02 or BD-09 would put the stored ones."""
    codes = {p.get("code"): g for p, g in rows if g is not None and p.get("code")}
    if not codes:
        return []
    with engine.connect() as conn:
        stored = conn.execute(
            text(
                "SELECT code, ST_X(ST_PointOnSurface(geom)) AS x, ST_Y(ST_PointOnSurface(geom)) AS y"
                " FROM features WHERE layer_id = :l AND geom IS NOT NULL AND code = ANY(:codes)"
            ),
            {"l": layer.id, "codes": list(codes)},
        ).all()
    if len(stored) == 0:
        return []
    shifts, gcj, bd = [], [], []
    for row in stored:
        point = codes[row.code].point_on_surface()
        shifts.append((point.x - row.x, point.y - row.y))
        gx, gy = wgs84_to_gcj02(row.x, row.y)
        bx, by = wgs84_to_bd09(row.x, row.y)
        gcj.append((gx - row.x, gy - row.y))
        bd.append((bx - row.x, by - row.y))
    shift = np.median(np.array(shifts), axis=0)
    metres = float(np.hypot(shift[0] * 96_000, shift[1] * 111_000))  # degrees at 30.7°N, near enough
    for name, offsets in (("GCJ-02 (AMap, Tencent)", gcj), ("BD-09 (Baidu)", bd)):
        expected = np.median(np.array(offsets), axis=0)
        miss = float(np.hypot((shift - expected)[0] * 96_000, (shift - expected)[1] * 111_000))
        if metres > 100 and miss < 0.25 * metres:
            return [
                f"the file's features lie about {metres:.0f} m from the stored ones, as {name} coordinates "
                f"do: if the file was drawn on that map, import it with --datum "
                f"{'gcj02' if name.startswith('GCJ') else 'bd09'}"
            ]
    return []


def _without_nulls(properties: dict[str, Any]) -> dict[str, Any]:
    """Properties without null values: a file cannot tell a null field from an absent one."""
    return {k: v for k, v in properties.items() if v is not None}


def _boundary_warning(engine: Engine, rows: list[tuple[dict[str, Any], Any]]) -> list[str]:
    """A warning when rows that lie outside the counties they claim would lie inside them as GCJ-02 (or
    BD-09) coordinates converted to WGS 84: the file was probably drawn on such a web map."""
    claims = [
        (p["county"], g.point_on_surface())
        for p, g in rows
        if g is not None and isinstance(p.get("county"), list) and p["county"]
    ]
    if not claims:
        return []
    with engine.connect() as conn:
        counties = {
            row.adcode: shapely.from_wkb(bytes(row.wkb))
            for row in conn.execute(
                text(
                    "SELECT properties->>'adcode' AS adcode, ST_AsBinary(geom) AS wkb FROM features"
                    " WHERE layer_id = 'admin_boundaries' AND geom IS NOT NULL"
                )
            )
        }

    def outside(points: list[tuple[list[str], Any]]) -> int:
        return sum(
            1
            for codes, point in points
            if not any(code in counties and counties[code].intersects(point) for code in codes)
        )

    as_is = outside(claims)
    if as_is == 0:
        return []
    for name, datum, inverse in (
        ("GCJ-02 (AMap, Tencent)", "gcj02", gcj02_to_wgs84),
        ("BD-09 (Baidu)", "bd09", bd09_to_wgs84),
    ):
        moved = [(codes, shapely.Point(inverse(point.x, point.y))) for codes, point in claims]
        if outside(moved) == 0:
            return [
                f"{as_is} of {len(claims)} features lie outside the counties they claim, and all would lie "
                f"inside them as {name} coordinates: if the file was drawn on that map, import it with "
                f"--datum {datum}"
            ]
    return []


def import_rows(
    engine: Engine,
    layer: Layer,
    rows: list[tuple[dict[str, Any], Any]],
    *,
    who: str,
    comment: str,
    dry_run: bool = False,
    on_apply: Callable[[Connection, list[int], str], None] | None = None,
) -> ImportReport:
    """Check every row, then (unless a row is invalid, or this is a dry run) apply all in one transaction.
    `on_apply(conn, feature ids written, counts)` runs in that transaction before it commits (the audit)."""
    reports: list[RowReport] = []
    seen: dict[str, int] = {}
    checked: list[tuple[dict[str, Any], str | None]] = []
    for index, (properties, geom) in enumerate(rows, start=1):
        code = properties.get("code")
        shape_json = None if geom is None or geom.is_empty else dict(mapping(geom))
        problems: list[Violation] = property_violations(layer, properties) + geometry_violations(
            layer, shape_json
        )
        if isinstance(code, str) and code in seen:
            problems.append(Violation("code", f"repeats row {seen[code]}"))
        if isinstance(code, str):
            seen.setdefault(code, index)
        outcome = "invalid" if problems else "pending"
        reports.append(
            RowReport(index, code if isinstance(code, str) else None, outcome, [str(p) for p in problems])
        )
        checked.append((properties, None if shape_json is None else json.dumps(shape_json)))
    warnings = _offset_warning(engine, layer, rows) or _boundary_warning(engine, rows)
    invalid = any(r.outcome == "invalid" for r in reports)
    geometry = geometry_sql(layer)
    written: list[int] = []
    with engine.begin() as conn:
        for report, (properties, geojson) in zip(reports, checked, strict=True):
            if report.outcome == "invalid":
                continue
            current = conn.execute(
                text(
                    f"SELECT id, properties, {SAME_PLACE.format(new=geometry)} AS same_geom"
                    " FROM features WHERE layer_id = :l AND code = :c FOR UPDATE"
                ),
                {"l": layer.id, "c": report.code, "geometry": geojson},
            ).first()
            if current is None:
                report.outcome = "created"
            elif _without_nulls(current.properties) == _without_nulls(properties) and current.same_geom:
                report.outcome = "unchanged"
            else:
                report.outcome = "updated"
            if invalid or dry_run or report.outcome == "unchanged":
                continue
            params = {
                "l": layer.id,
                "p": json.dumps(properties, ensure_ascii=False),
                "geometry": geojson,
                "who": who,
            }
            if current is None:
                created = conn.execute(
                    text(
                        "INSERT INTO features (layer_id, properties, geom, updated_by)"
                        f" VALUES (:l, CAST(:p AS jsonb), {geometry}, :who) RETURNING id"
                    ),
                    params,
                ).scalar_one()
                written.append(created)
            else:
                written.append(current.id)
                conn.execute(
                    text(RECORD_STATE), {"id": current.id, "op": "update", "who": who, "comment": comment}
                )
                conn.execute(
                    text(
                        f"UPDATE features SET properties = CAST(:p AS jsonb), geom = {geometry},"
                        " version = version + 1, updated_at = now(), updated_by = :who WHERE id = :id"
                    ),
                    params | {"id": current.id},
                )
        if invalid or dry_run:
            conn.rollback()
        elif on_apply is not None:
            on_apply(conn, written, ImportReport(reports, warnings, applied=True).counts_text())
    return ImportReport(reports, warnings, applied=not invalid and not dry_run)
