"""File downloads of a collection or a filtered query: GeoPackage, FlatGeobuf, CSV (WKT) and KML.

PostgreSQL selects the features (same filter, bbox, sortby and properties as the GeoJSON items) as typed
columns and WKB geometry; GDAL, through pyogrio, writes the file from those column arrays in one call.
Coordinates in files are in the GIS order of their CRS (east/north), which is what every file reader
expects; the CRS is recorded in GeoPackage and FlatGeobuf, and KML is always WGS 84 by its definition.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import numpy as np

from geo_service.catalog import Layer
from geo_service.errors import InvalidParameter
from geo_service.ogc.crs import CRS, CRS84_CRS, STORAGE_SRID
from geo_service.ogc.fields import Field, layer_fields
from geo_service.ogc.negotiation import CSV, FLATGEOBUF, GEOPACKAGE, KML


@dataclass(frozen=True)
class FileFormat:
    """A download format: its `f` value, media type, GDAL driver and file extension."""

    key: str
    media_type: str
    driver: str
    extension: str
    title: str


FORMATS: dict[str, FileFormat] = {
    f.media_type: f
    for f in (
        FileFormat("gpkg", GEOPACKAGE, "GPKG", "gpkg", "GeoPackage"),
        FileFormat("fgb", FLATGEOBUF, "FlatGeobuf", "fgb", "FlatGeobuf"),
        FileFormat("csv", CSV, "CSV", "csv", "CSV (WKT geometry)"),
        FileFormat("kml", KML, "KML", "kml", "KML"),
    )
}
BY_KEY = {f.key: f for f in FORMATS.values()}


def columns(layer: Layer, selected: tuple[str, ...] | None) -> list[Field]:
    """The property columns of a download: all declared properties, or the `properties` selection."""
    fields = layer_fields(layer)
    names = list(fields) if selected is None else [n for n in selected if n in fields]
    return [fields[n] for n in names]


def column_sql(field: Field) -> str:
    """A property as a typed SQL column: lists become JSON text, integers bigint."""
    if field.kind == "array":
        return f'({field.sql})::text AS "{field.name}"'
    if field.kind == "integer":
        return f'round({field.sql})::bigint AS "{field.name}"'
    return f'{field.sql} AS "{field.name}"'


def geometry_sql(crs: CRS) -> str:
    """WKB of the geometry in `crs`, east/north order (files record their CRS; readers expect x = east)."""
    geom = "f.geom" if crs.srid == STORAGE_SRID else f"ST_Transform(f.geom, {crs.srid})"
    return f"ST_AsBinary({geom}) AS wkb"


def check_crs(fmt: FileFormat, crs: CRS) -> None:
    """KML is WGS 84 longitude/latitude by definition: another `crs` is refused rather than mislabelled."""
    if fmt.key == "kml" and crs != CRS84_CRS:
        raise InvalidParameter(
            "KML is always WGS 84 (CRS84); leave out crs, or choose GeoPackage, FlatGeobuf or CSV.",
            parameter="crs",
        )


_NUMPY = {"number": np.float64, "integer": np.int64, "boolean": np.bool_}


def _arrays(rows: list[Any], fields: list[Field]) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Column arrays and null masks from the fetched rows (GDAL writes whole columns at once)."""
    count = len(rows)
    table = list(zip(*rows, strict=True)) if rows else [() for _ in range(len(fields) + 2)]
    ids = np.array(table[0], dtype=np.int64) if count else np.zeros(0, dtype=np.int64)
    data, masks = [ids], [np.zeros(count, dtype=bool)]
    for field, values in zip(fields, table[1:-1], strict=True):
        mask = np.array([v is None for v in values], dtype=bool)
        dtype = _NUMPY.get(field.kind)
        if dtype is None:
            column = np.array(values, dtype=object)
        else:
            column = np.array([0 if v is None else v for v in values], dtype=dtype)
        data.append(column)
        masks.append(mask)
    geometry = np.array([bytes(g) if g is not None else None for g in table[-1]], dtype=object)
    return geometry, data, masks


def write_file(
    fmt: FileFormat, layer: Layer, crs: CRS, fields: list[Field], rows: list[Any]
) -> bytes:  # runs in a worker thread: GDAL blocks
    """The file's bytes."""
    geometry, data, masks = _arrays(rows, fields)
    options: dict[str, str] = {}
    if fmt.key == "csv":
        options = {"GEOMETRY": "AS_WKT", "WRITE_BOM": "YES"}  # the BOM makes spreadsheets read UTF-8
    if fmt.key == "fgb":
        # no packed R-tree: GDAL writes it by re-ordering the features along a Hilbert curve, which would
        # lose the query's order (sortby, or id); it also cannot hold features without geometry
        options = {"SPATIAL_INDEX": "NO"}
    if fmt.key == "gpkg":
        options = {"IDENTIFIER": str(layer.title), "DESCRIPTION": str(layer.description)}
    # GDAL is loaded on first use: it adds ~27 MiB to every process that imports it
    from pyogrio import raw

    buffer = io.BytesIO()
    raw.write(
        buffer,
        geometry,
        data,
        ["id", *(f.name for f in fields)],
        field_mask=masks,
        layer=layer.id,
        driver=fmt.driver,
        geometry_type=layer.geometry_type,
        crs=f"EPSG:{crs.srid}",
        encoding="UTF-8",
        layer_options=options,
    )
    return buffer.getvalue()


async def render(fmt: FileFormat, layer: Layer, crs: CRS, fields: list[Field], rows: list[Any]) -> bytes:
    """Write the file off the event loop."""
    return await anyio.to_thread.run_sync(write_file, fmt, layer, crs, fields, rows)
