"""Coordinate reference systems offered by reference (OGC API – Features Part 2).

Coordinates are written in each CRS's authority axis order: EPSG:4326 and EPSG:4490 are latitude first and
EPSG:4549 is northing first, so those are flipped; CRS84 and EPSG:3857 are east first, as stored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry.base import BaseGeometry

from geo_service.errors import InvalidParameter

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
STORAGE_SRID = 4326


def epsg_uri(code: int) -> str:
    """The OGC URI of an EPSG code."""
    return f"http://www.opengis.net/def/crs/EPSG/0/{code}"


@dataclass(frozen=True)
class CRS:
    """One supported CRS: its URI, PostGIS SRID, axis order and how many decimals are meaningful."""

    uri: str
    srid: int
    flip_axes: bool
    digits: int  # ≈ 1 cm: 7 decimals of a degree, 2 of a metre

    def geometry_sql(self, column: str) -> str:
        """SQL turning the stored geometry into this CRS, in its axis order."""
        expr = column if self.srid == STORAGE_SRID else f"ST_Transform({column}, {self.srid})"
        return f"ST_FlipCoordinates({expr})" if self.flip_axes else expr

    @property
    def bbox_order(self) -> str:
        """How a `bbox` in this CRS is written, for error messages."""
        if self.geographic:
            return "minLat,minLon,maxLat,maxLon" if self.flip_axes else "minLon,minLat,maxLon,maxLat"
        return "minNorthing,minEasting,maxNorthing,maxEasting" if self.flip_axes else "minX,minY,maxX,maxY"

    @property
    def geographic(self) -> bool:
        """Whether coordinates are degrees (and a box may cross the antimeridian)."""
        return self.srid in (4326, 4490)

    def to_storage_sql(self, expr: str) -> str:
        """SQL turning a geometry in this CRS's SRID (east/north order) into the stored CRS.

        Edges are densified before a transform so a projected shape keeps its form in degrees.
        """
        if self.srid == STORAGE_SRID:
            return expr
        step = "0.001" if self.srid == 4490 else "100"
        return f"ST_Transform(ST_Segmentize({expr}, {step}), {STORAGE_SRID})"

    def envelope_sql(self, names: tuple[str, str, str, str]) -> str:
        """SQL of a box in this CRS (bound parameters west/east-most x, south/north-most y) as WGS 84.

        The literal is transformed, not the column, so the GiST index stays usable.
        """
        xmin, ymin, xmax, ymax = (f":{n}" for n in names)
        return self.to_storage_sql(f"ST_MakeEnvelope({xmin}, {ymin}, {xmax}, {ymax}, {self.srid})")

    def literal_sql(self, expr: str) -> str:
        """SQL turning a geometry literal written in this CRS and its axis order into the stored CRS."""
        geometry = f"ST_SetSRID({expr}, {self.srid})"
        if self.flip_axes:
            geometry = f"ST_FlipCoordinates({geometry})"
        return self.to_storage_sql(geometry)


CRS84_CRS = CRS(CRS84, STORAGE_SRID, flip_axes=False, digits=7)
SUPPORTED: dict[str, CRS] = {
    c.uri: c
    for c in (
        CRS84_CRS,
        CRS(epsg_uri(4326), 4326, flip_axes=True, digits=7),
        CRS(epsg_uri(4490), 4490, flip_axes=True, digits=7),
        CRS(epsg_uri(3857), 3857, flip_axes=False, digits=2),
        CRS(epsg_uri(4549), 4549, flip_axes=True, digits=2),
    )
}


def parse_crs(raw: str | None, parameter: str) -> CRS:
    """The CRS named by a `crs`/`bbox-crs` value or a `Content-Crs` header (angle brackets optional)."""
    if raw is None:
        return CRS84_CRS
    uri = raw.strip().removeprefix("<").removesuffix(">").strip()
    if uri.startswith("https://"):
        uri = "http://" + uri.removeprefix("https://")
    crs = SUPPORTED.get(uri)
    if crs is None:
        raise InvalidParameter(
            f"{parameter} {raw!r} is not supported. Use one of: {', '.join(SUPPORTED)}.", parameter=parameter
        )
    return crs


def content_crs(crs: CRS) -> str:
    """The `Content-Crs` header value: the URI in angle brackets."""
    return f"<{crs.uri}>"


def to_storage_geometry(geom: BaseGeometry, crs: CRS) -> BaseGeometry:
    """A geometry whose coordinates are written in `crs` (its axis order), in CRS84 longitude/latitude."""
    if crs.srid == STORAGE_SRID and not crs.flip_axes:
        return geom
    transformer = Transformer.from_crs(crs.srid, STORAGE_SRID, always_xy=True)

    def convert(xy: np.ndarray) -> np.ndarray:
        east, north = (xy[:, 1], xy[:, 0]) if crs.flip_axes else (xy[:, 0], xy[:, 1])
        return np.column_stack(transformer.transform(east, north))

    return shapely.transform(geom, convert)
