"""Query parameters: declared once (this table feeds both the OpenAPI document and request parsing).

FastAPI's own parameter handling answers bad values with 422 and ignores unknown names, while the
OGC standard wants 400 for both; so each endpoint parses `request.query_params` here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from starlette.datastructures import QueryParams

from geo_service.errors import InvalidParameter
from geo_service.ogc.crs import CRS, CRS84_CRS, SUPPORTED

MAX_VERSION = 2**31 - 1  # feature versions are PostgreSQL integers


def declarations(default_limit: int, max_limit: int) -> dict[str, dict[str, Any]]:
    """OpenAPI parameter objects, keyed by their name in `components.parameters`."""
    return {
        "f": {
            "name": "f",
            "in": "query",
            "required": False,
            "style": "form",
            "explode": False,
            "description": "Output format: json (GeoJSON for features) or html. Overrides the Accept header.",
            "schema": {"type": "string", "enum": ["json", "html"]},
        },
        "limit": {
            "name": "limit",
            "in": "query",
            "required": False,
            "style": "form",
            "explode": False,
            "description": "Number of features per page.",
            "schema": {"type": "integer", "minimum": 1, "maximum": max_limit, "default": default_limit},
        },
        "bbox": {
            "name": "bbox",
            "in": "query",
            "required": False,
            "style": "form",
            "explode": False,
            "description": "Only features that intersect the box: minLon,minLat,maxLon,maxLat (CRS84); "
            "a 6-number box adds min/max height, which is ignored. minLon > maxLon crosses the antimeridian.",
            "schema": {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}},
        },
        "datetime": {
            "name": "datetime",
            "in": "query",
            "required": False,
            "style": "form",
            "explode": False,
            "description": "An instant or interval (RFC 3339, `..` for open ends, ISO 8601 durations). "
            "Plan features carry no time stamp, so a valid value matches every feature.",
            "schema": {"type": "string"},
        },
        "cursor": {
            "name": "cursor",
            "in": "query",
            "required": False,
            "style": "form",
            "explode": False,
            "description": "Opaque position of the next page, taken from a `next` link.",
            "schema": {"type": "string"},
        },
        "crs": {
            "name": "crs",
            "in": "query",
            "required": False,
            "style": "form",
            "explode": False,
            "description": "CRS of the returned geometries, in its own axis order (EPSG:4326 and EPSG:4490 "
            "latitude first, EPSG:4549 northing first). Default CRS84.",
            "schema": {"type": "string", "format": "uri", "enum": list(SUPPORTED)},
        },
        "bbox-crs": {
            "name": "bbox-crs",
            "in": "query",
            "required": False,
            "style": "form",
            "explode": False,
            "description": "CRS of the bbox numbers, in its axis order. Default CRS84.",
            "schema": {"type": "string", "format": "uri", "enum": list(SUPPORTED)},
        },
        "filter": {
            "name": "filter",
            "in": "query",
            "required": False,
            "style": "form",
            "explode": False,
            "description": "A CQL2 condition on the collection's queryables (see its /queryables), e.g. "
            "`status = 'planned' AND S_INTERSECTS(geometry, BBOX(120.8,30.8,121.0,31.0))`.",
            "schema": {"type": "string"},
        },
        "filter-lang": {
            "name": "filter-lang",
            "in": "query",
            "required": False,
            "style": "form",
            "explode": False,
            "description": "Encoding of `filter`: cql2-text (default) or cql2-json.",
            "schema": {"type": "string", "enum": ["cql2-text", "cql2-json"], "default": "cql2-text"},
        },
        "filter-crs": {
            "name": "filter-crs",
            "in": "query",
            "required": False,
            "style": "form",
            "explode": False,
            "description": "CRS of the geometry literals in `filter`, in its axis order. Default CRS84.",
            "schema": {"type": "string", "format": "uri", "enum": list(SUPPORTED)},
        },
        "sortby": {
            "name": "sortby",
            "in": "query",
            "required": False,
            "style": "form",
            "explode": False,
            "description": "Sort keys from the collection's /sortables, comma-separated; prefix - for "
            "descending, + (or nothing) for ascending. Empty values sort last either way.",
            "schema": {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": r"^[+-]?\w+$"}},
        },
        "properties": {
            "name": "properties",
            "in": "query",
            "required": False,
            "style": "form",
            "explode": False,
            "description": "Only these properties in each feature, comma-separated (empty: none).",
            "schema": {"type": "array", "items": {"type": "string"}},
        },
        "version": {
            "name": "version",
            "in": "query",
            "required": False,
            "style": "form",
            "explode": False,
            "description": "An earlier version of the feature (see …/items/{featureId}/history); also works "
            "for a deleted feature. GeoJSON, CRS84.",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_VERSION},
        },
        "collectionId": {
            "name": "collectionId",
            "in": "path",
            "required": True,
            "description": "Identifier of a collection (layer).",
            "schema": {"type": "string"},
        },
        "featureId": {
            "name": "featureId",
            "in": "path",
            "required": True,
            "description": "Identifier of a feature (an integer).",
            "schema": {"type": "string"},
        },
    }


def reject_unknown(params: QueryParams, allowed: Iterable[str]) -> None:
    """400 for a parameter the endpoint does not know, or one given twice."""
    allowed_set = set(allowed)
    unknown = sorted({key for key in params if key not in allowed_set})
    if unknown:
        raise InvalidParameter(
            f"Unknown query parameter(s): {', '.join(unknown)}. "
            f"This endpoint accepts: {', '.join(sorted(allowed_set))}.",
            parameter=unknown[0],
        )
    for key in params:
        if len(params.getlist(key)) > 1:
            raise InvalidParameter(f"Parameter {key} is given more than once; give it once.", parameter=key)
        if "\x00" in params[key]:
            raise InvalidParameter(f"Parameter {key} contains a NUL character.", parameter=key)


def parse_limit(raw: str | None, default: int, maximum: int) -> int:
    """The page size: an integer from 1 to the maximum (larger values are capped, as the standard allows)."""
    if raw is None:
        return default
    digits = raw.strip().removeprefix("+")
    if not re.fullmatch(r"\d+", digits):
        raise InvalidParameter(
            f"limit must be a whole number from 1 to {maximum}; got {raw!r}.", parameter="limit"
        )
    digits = digits.lstrip("0") or "0"
    value = maximum if len(digits) > 18 else int(digits)  # more digits than any page: the maximum
    if value < 1:
        raise InvalidParameter(f"limit must be at least 1; got {value}.", parameter="limit")
    return min(value, maximum)


def parse_version(raw: str, parameter: str, hint: str = "") -> int:
    """A feature version (`?version=`, `?to=`): a whole number from 1, in ASCII digits."""
    if not re.fullmatch(r"[0-9]{1,10}", raw) or not 1 <= int(raw) <= MAX_VERSION:
        raise InvalidParameter(
            f"{parameter} is a whole number from 1 to {MAX_VERSION}; got {raw!r}.{hint}", parameter=parameter
        )
    return int(raw)


@dataclass(frozen=True)
class BBox:
    """A box in its CRS, east/north coordinates whatever the CRS's axis order; for degrees,
    `west > east` means it crosses the antimeridian."""

    west: float
    south: float
    east: float
    north: float

    def envelopes(self) -> list[tuple[float, float, float, float]]:
        """One box, or two when it crosses the antimeridian."""
        if self.west <= self.east:
            return [(self.west, self.south, self.east, self.north)]
        return [(self.west, self.south, 180.0, self.north), (-180.0, self.south, self.east, self.north)]


def parse_bbox(raw: str | None, crs: CRS = CRS84_CRS) -> BBox | None:
    """4 or 6 comma-separated numbers in the axis order of `crs` (`bbox-crs`), checked against its range."""
    if raw is None:
        return None
    order = crs.bbox_order
    parts = raw.split(",")
    if len(parts) not in (4, 6):
        raise InvalidParameter(
            f"bbox needs 4 numbers ({order}) or 6 (with heights); got {len(parts)}.",
            parameter="bbox",
        )
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        raise InvalidParameter(
            f"bbox must be comma-separated numbers; got {raw!r}.", parameter="bbox"
        ) from None
    return bbox_from_numbers(numbers, crs)


def bbox_from_numbers(numbers: list[float], crs: CRS = CRS84_CRS, parameter: str = "bbox") -> BBox:
    """A box from 4 or 6 numbers in the axis order of `crs`, checked against its range."""
    order = crs.bbox_order
    name = "bbox" if parameter == "bbox" else f"{parameter}: BBOX"  # a literal in a filter
    if len(numbers) not in (4, 6):
        raise InvalidParameter(
            f"{name} needs 4 numbers ({order}) or 6 (with heights); got {len(numbers)}.",
            parameter=parameter,
        )
    if not all(math.isfinite(n) for n in numbers):
        raise InvalidParameter(f"{name} numbers must be finite.", parameter=parameter)
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    if crs.flip_axes:
        south, west, north, east = numbers
    else:
        west, south, east, north = numbers
    if not crs.geographic:
        if west > east or south > north:
            raise InvalidParameter(
                f"{name} minimum is greater than maximum (axis order of {crs.uri}: {order}).",
                parameter=parameter,
            )
        return BBox(west, south, east, north)
    if not (-180 <= west <= 180 and -180 <= east <= 180):
        raise InvalidParameter(f"{name} longitudes must be between -180 and 180.", parameter=parameter)
    if not (-90 <= south <= 90 and -90 <= north <= 90):
        raise InvalidParameter(
            f"{name} latitudes must be between -90 and 90 (the order for {crs.uri} is {order}).",
            parameter=parameter,
        )
    if south > north:
        raise InvalidParameter(f"{name} minLat is greater than maxLat.", parameter=parameter)
    return BBox(west, south, east, north)


_DURATION = re.compile(r"^P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$")


def _instant(text: str) -> datetime | date | None:
    """Parse one bound; None for year 0000, which RFC 3339 allows and QGIS sends as an open lower bound."""
    value = text.strip()
    if re.fullmatch(r"0000-\d\d-\d\d([Tt].*)?", value):
        _instant("0001" + value[4:])  # still check the rest of it
        return None
    try:
        if "T" in value or "t" in value:
            parsed = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidParameter(
            f"datetime part {text!r} is not an RFC 3339 date or date-time "
            "(e.g. 2021-01-01 or 2021-01-01T00:00:00Z).",
            parameter="datetime",
        ) from None


def parse_datetime(raw: str | None) -> str | None:
    """Validate an instant or interval (`a/b`, `../b`, `a/..`, `a/P2D`); returns it unchanged."""
    if raw is None:
        return None
    parts = raw.split("/")
    if len(parts) > 2 or not raw.strip():
        raise InvalidParameter("datetime is an instant or one interval start/end.", parameter="datetime")
    if len(parts) == 1:
        _instant(parts[0])
        return raw
    start, end = parts
    if start in ("", "..") and end in ("", ".."):
        raise InvalidParameter("datetime interval needs at least one bound.", parameter="datetime")
    bounds: list[datetime | date | None] = []
    for part in (start, end):
        if part in ("", ".."):
            bounds.append(None)
        elif part.startswith("P"):
            if not _DURATION.match(part):
                raise InvalidParameter(
                    f"datetime duration {part!r} is not ISO 8601 (e.g. P2D).", parameter="datetime"
                )
            bounds.append(None)
        else:
            bounds.append(_instant(part))
    if start.startswith("P") and end.startswith("P"):
        raise InvalidParameter("datetime interval cannot be two durations.", parameter="datetime")
    first, last = bounds
    if first is not None and last is not None:
        as_dt = [
            b if isinstance(b, datetime) else datetime(b.year, b.month, b.day, tzinfo=UTC)
            for b in (first, last)
        ]
        if as_dt[0] > as_dt[1]:
            raise InvalidParameter("datetime interval ends before it starts.", parameter="datetime")
    return raw
