"""File downloads of `/collections/{id}/items`: GeoPackage, FlatGeobuf, CSV (WKT geometry) and KML.

Every file is read back with real readers — pyogrio (GDAL, in-process), `sqlite3` for GeoPackage
internals and GDAL's `ogrinfo` command — and compared with the seed files under `layers/`: the same
features (by `code`), the catalogue's property names, typed values, and geometries within 1e-6 degrees.
The selection parameters of the GeoJSON items (filter, bbox, property equality, sortby, properties, crs)
apply to the file, which holds every match unless an explicit `limit` caps it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import re
import shutil
import sqlite3
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pyogrio
import pytest
import shapely
from fastapi.testclient import TestClient
from httpx import Response
from pyogrio import raw
from pyproj import Transformer
from shapely.geometry import box, shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Engine, text

from geo_service.catalog import Catalog, load_catalog
from geo_service.ogc.crs import CRS84, epsg_uri
from geo_service.settings import PROJECT_ROOT

Seeds = dict[str, dict[str, dict[str, Any]]]
ProblemCheck = Callable[..., dict[str, Any]]

LAYER_IDS = list(load_catalog(PROJECT_ROOT / "layers", PROJECT_ROOT / "maps").layers)
MEDIA_TYPES = {
    "gpkg": "application/geopackage+sqlite3",
    "fgb": "application/flatgeobuf",
    "csv": "text/csv; charset=utf-8",
    "kml": "application/vnd.google-earth.kml+xml",
}
FORMATS = list(MEDIA_TYPES)
TOLERANCE_DEG = 1e-6
STATION_LAYER, STATION = "rail_stations", "c01_jiaxing_south_stn"  # 嘉兴南站
JIASHAN_BOX = (120.80, 30.75, 121.05, 31.00)
KML_NS = {"kml": "http://www.opengis.net/kml/2.2"}
UTF8_BOM = b"\xef\xbb\xbf"


# -- reading a downloaded file ------------------------------------------------------------------------------


@dataclass
class Table:
    """A downloaded file as its readers see it."""

    path: Path
    response: Response
    names: list[str]  # the attribute columns the file declares, in file order
    records: list[dict[str, Any]]  # one per feature, in file order; `id` is the service's feature id
    geometries: list[BaseGeometry | None]
    dtypes: dict[str, str]  # numpy dtype of each column as pyogrio reads it
    crs: str | None  # as pyogrio reports it ("EPSG:4326"), None when the format records none

    @property
    def codes(self) -> list[str]:
        return [r["code"] for r in self.records]

    def by_code(self) -> dict[str, tuple[dict[str, Any], BaseGeometry | None]]:
        return {r["code"]: (r, g) for r, g in zip(self.records, self.geometries, strict=True)}


def _kml_schema_names(path: Path) -> list[str]:
    """The SimpleField names of the KML Schema element (the typed columns the file declares)."""
    root = ET.parse(path).getroot()
    return [f.attrib["name"] for f in root.iterfind(".//kml:Schema/kml:SimpleField", KML_NS)]


def _read(path: Path, fmt: str, response: Response) -> Table:
    """Read a file with pyogrio; CSV types are autodetected (quoted cells stay text, as the writer quotes
    text that looks like a number), KML's feature id column is mapped back to `id`."""
    options = {"AUTODETECT_TYPE": "YES", "QUOTED_FIELDS_AS_STRING": "YES"} if fmt == "csv" else {}
    meta, _, wkbs, columns = raw.read(path, **options)
    fields = [str(n) for n in meta["fields"]]
    dtypes = {n: str(d) for n, d in zip(fields, meta["dtypes"], strict=True)}
    if fmt == "kml":
        # LIBKML's reader exposes each Placemark's XML id attribute as `id`; the file's own `id` column
        # (declared in the Schema) therefore comes back as `id2`.
        names = _kml_schema_names(path)
        assert "id2" in fields or not names, fields
        rename = {"id2": "id", "id": "placemark_id"}
    else:
        names = fields
        rename = {}
    records = []
    for i in range(len(wkbs)):
        records.append({rename.get(n, n): column[i] for n, column in zip(fields, columns, strict=True)})
    if "id2" in dtypes:
        dtypes["id"] = dtypes.pop("id2")
    geometries = [None if w is None else shapely.from_wkb(w) for w in wkbs]
    return Table(path, response, names, records, geometries, dtypes, meta["crs"])


def _get(client: TestClient, layer: str, **params: Any) -> Response:
    return client.get(f"/collections/{layer}/items", params=params)


def _save(response: Response, directory: Path, fmt: str, layer: str) -> Path:
    """Check the attachment headers and write the body under the file name the server gives."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == MEDIA_TYPES[fmt]
    disposition = response.headers["content-disposition"]
    assert disposition == f'attachment; filename="{layer}.{fmt}"'
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{layer}.{fmt}"
    path.write_bytes(response.content)
    return path


_counter = iter(range(1_000_000))


def _download(client: TestClient, tmp_path: Path, layer: str, fmt: str, **params: Any) -> Table:
    """GET the items as a file (f=fmt), save it under a fresh directory and read it back."""
    response = _get(client, layer, f=fmt, **params)
    return _read(_save(response, tmp_path / str(next(_counter)), fmt, layer), fmt, response)


def _ogrinfo(path: Path) -> str:
    """`ogrinfo -ro -so -al` on a file: GDAL's own command reading it."""
    executable = shutil.which("ogrinfo")
    assert executable is not None, "GDAL's ogrinfo is not installed (make test installs gdal-bin)"
    result = subprocess.run(
        [executable, "-ro", "-so", "-al", str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ERROR" not in result.stderr, result.stderr
    return result.stdout


def _ogrinfo_count(path: Path) -> int:
    counts = re.findall(r"^Feature Count: (\d+)$", _ogrinfo(path), flags=re.MULTILINE)
    assert len(counts) == 1, counts
    return int(counts[0])


# -- expectations from the seeds ----------------------------------------------------------------------------


def _json_type(schema: dict[str, Any]) -> str:
    declared = schema.get("type", "string")
    if isinstance(declared, list):
        declared = next(t for t in declared if t != "null")
    return str(declared)


def _kinds(catalog: Catalog, layer: str) -> dict[str, str]:
    """The JSON type of each property, from the catalogue's schema."""
    schemas = catalog.layers[layer].json_schema["properties"]
    return {n: _json_type(schemas[n]) for n in catalog.layers[layer].property_names}


def _normalise(value: Any, kind: str, fmt: str) -> Any:
    """A value read from a file as the JSON value it stands for (NULL, NaN and CSV's empty cell: None)."""
    if value is None or (isinstance(value, float | np.floating) and math.isnan(value)):
        return None
    if fmt == "csv" and value == "":
        return None
    if isinstance(value, np.datetime64):  # GDAL types a CSV column holding only dates as a date
        return None if np.isnat(value) else str(np.datetime_as_string(value, unit="D"))
    if kind == "array":
        assert isinstance(value, str), f"a list property must be JSON text, got {value!r}"
        return json.loads(value)
    if kind in ("number", "integer"):
        return float(value)
    return value


def _expected_value(value: Any, kind: str) -> Any:
    return float(value) if value is not None and kind in ("number", "integer") else value


def _seed_geometry(feature: dict[str, Any]) -> BaseGeometry | None:
    return shape(feature["geometry"]) if feature["geometry"] else None


def _assert_same_geometry(got: BaseGeometry | None, want: BaseGeometry | None, code: str) -> None:
    if want is None:
        assert got is None or got.is_empty, f"{code}: the seed has no geometry, the file has {got}"
        return
    assert got is not None and not got.is_empty, f"{code}: geometry missing"
    assert got.geom_type == want.geom_type, (code, got.geom_type, want.geom_type)
    assert got.equals_exact(want, TOLERANCE_DEG), (
        f"{code}: off by {shapely.hausdorff_distance(got, want)} degrees"
    )


def _ids(client: TestClient, layer: str) -> dict[str, int]:
    """Feature id of each code, from the GeoJSON items."""
    body = _get(client, layer, limit=10000).json()
    return {f["properties"]["code"]: f["id"] for f in body["features"]}


def _codes_where(
    seeds: Seeds, layer: str, keep: Callable[[dict[str, Any], BaseGeometry | None], bool]
) -> set[str]:
    return {c for c, f in seeds[layer].items() if keep(f["properties"], _seed_geometry(f))}


def _sorted_codes(seeds: Seeds, layer: str, name: str, *, descending: bool) -> list[str]:
    """Codes in `name` order (Python str order = code points), features without a value last."""
    features = seeds[layer]
    valued = [c for c in features if features[c]["properties"].get(name) is not None]
    nulls = [c for c in features if features[c]["properties"].get(name) is None]
    valued.sort(key=lambda c: features[c]["properties"][name], reverse=descending)
    return valued + nulls


# -- every layer in every format ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("layer", LAYER_IDS)
def test_layer_file_holds_the_seeds(
    client: TestClient, seeds: Seeds, catalog: Catalog, tmp_path: Path, layer: str, fmt: str
) -> None:
    """Each layer downloads in each format as an attachment holding exactly its seed features: the
    catalogue's columns, typed values (numbers numeric, lists as JSON text), the feature ids of the
    GeoJSON items, geometries within 1e-6 degrees (none where the seed has none); ogrinfo reads it too."""
    table = _download(client, tmp_path, layer, fmt)
    names = catalog.layers[layer].property_names
    expected_names = ["WKT", "id", *names] if fmt == "csv" else ["id", *names]
    assert table.names == expected_names

    assert sorted(table.codes) == sorted(seeds[layer])
    ids = _ids(client, layer)
    kinds = _kinds(catalog, layer)
    for code, (record, geometry) in table.by_code().items():
        seed = seeds[layer][code]
        assert int(record["id"]) == ids[code]
        for name in names:
            got = _normalise(record[name], kinds[name], fmt)
            assert got == _expected_value(seed["properties"].get(name), kinds[name]), (code, name, got)
        _assert_same_geometry(geometry, _seed_geometry(seed), code)
    for name, kind in kinds.items():
        # a CSV column without any value has no type to detect; every other number column is numeric
        valued = any(f["properties"].get(name) is not None for f in seeds[layer].values())
        if kind in ("number", "integer") and (valued or fmt != "csv"):
            assert np.dtype(table.dtypes[name]).kind in "iuf", (name, table.dtypes[name])
    if fmt != "kml":  # KML has no 64-bit integer type: GDAL declares the id column as string there
        assert np.dtype(table.dtypes["id"]).kind in "iu"

    assert _ogrinfo_count(table.path) == len(seeds[layer])


def test_layers_cover_empty_geometries_and_lists(seeds: Seeds) -> None:
    """The seeds exercise what the per-layer test checks: unlocated features without geometry, lists,
    and number properties with and without a value."""
    unlocated = [f for fs in seeds.values() for f in fs.values() if f["geometry"] is None]
    assert unlocated and all(f["properties"]["accuracy"] == "unlocated" for f in unlocated)
    assert any(f["properties"].get("county") for fs in seeds.values() for f in fs.values())
    accuracies = [f["properties"].get("accuracy_m") for fs in seeds.values() for f in fs.values()]
    assert None in accuracies and any(isinstance(a, int | float) for a in accuracies)


# -- coordinate reference systems ---------------------------------------------------------------------------


def _sqlite(path: Path) -> contextlib.closing[sqlite3.Connection]:
    """A read-only SQLite connection to a GeoPackage, closed on leaving the `with` block."""
    return contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True))


def _gpkg_srs(path: Path, layer: str) -> tuple[int, str, int]:
    """The srs_id of the layer's geometry column and the authority it maps to in gpkg_spatial_ref_sys."""
    with _sqlite(path) as db:
        [(application_id,)] = db.execute("PRAGMA application_id").fetchall()
        assert application_id == int.from_bytes(b"GPKG", "big")
        [(srs_id,)] = db.execute(
            "SELECT srs_id FROM gpkg_geometry_columns WHERE table_name = ?", (layer,)
        ).fetchall()
        [(organization, code)] = db.execute(
            "SELECT organization, organization_coordsys_id FROM gpkg_spatial_ref_sys WHERE srs_id = ?",
            (srs_id,),
        ).fetchall()
    return srs_id, organization.upper(), code


@pytest.mark.parametrize("fmt", ["gpkg", "fgb"])
def test_files_record_wgs84_by_default(client: TestClient, tmp_path: Path, fmt: str) -> None:
    """Without `crs`, GeoPackage and FlatGeobuf record EPSG:4326 and say CRS84 in Content-Crs."""
    table = _download(client, tmp_path, STATION_LAYER, fmt)
    assert table.crs == "EPSG:4326"
    assert table.response.headers["content-crs"] == f"<{CRS84}>"
    assert 'ID["EPSG",4326]]' in _ogrinfo(table.path)
    if fmt == "gpkg":
        assert _gpkg_srs(table.path, STATION_LAYER)[1:] == ("EPSG", 4326)


@pytest.mark.parametrize("fmt", ["gpkg", "fgb", "csv"])
def test_projected_crs_is_recorded_east_north(
    client: TestClient, seeds: Seeds, tmp_path: Path, fmt: str
) -> None:
    """With crs=EPSG:4549 the file records EPSG:4549 (GeoPackage, FlatGeobuf) and 嘉兴南站 lies within 1 cm
    of pyproj's answer with x = easting, although the CRS's own axis order is northing first."""
    table = _download(client, tmp_path, STATION_LAYER, fmt, crs=epsg_uri(4549))
    assert table.response.headers["content-crs"] == f"<{epsg_uri(4549)}>"
    lon, lat = seeds[STATION_LAYER][STATION]["geometry"]["coordinates"]
    easting, northing = Transformer.from_crs(4326, 4549, always_xy=True).transform(lon, lat)
    _, point = table.by_code()[STATION]
    assert point is not None
    assert (point.x, point.y) == pytest.approx((easting, northing), abs=0.01)
    assert point.x < 1_000_000 < 3_000_000 < point.y  # easting first
    if fmt != "csv":
        assert table.crs == "EPSG:4549"
        assert 'ID["EPSG",4549]]' in _ogrinfo(table.path)
    if fmt == "gpkg":
        assert _gpkg_srs(table.path, STATION_LAYER)[1:] == ("EPSG", 4549)
        with _sqlite(table.path) as db:
            [(minx, maxx)] = db.execute("SELECT min_x, max_x FROM gpkg_contents").fetchall()
        assert minx < easting < maxx


@pytest.mark.parametrize("fmt", ["gpkg", "fgb", "csv"])
def test_geographic_crs_stays_lon_lat(client: TestClient, seeds: Seeds, tmp_path: Path, fmt: str) -> None:
    """With crs=EPSG:4490 (CGCS2000, latitude first by its definition) files still hold longitude first."""
    table = _download(client, tmp_path, STATION_LAYER, fmt, crs=epsg_uri(4490))
    lon, lat = seeds[STATION_LAYER][STATION]["geometry"]["coordinates"]
    want = Transformer.from_crs(4326, 4490, always_xy=True).transform(lon, lat)
    _, point = table.by_code()[STATION]
    assert point is not None
    assert (point.x, point.y) == pytest.approx(want, abs=2e-7)
    assert 120 < point.x < 122 and 30 < point.y < 31
    if fmt != "csv":
        assert table.crs == "EPSG:4490"


def test_kml_refuses_other_crs(client: TestClient, problem: ProblemCheck) -> None:
    """KML is WGS 84 longitude/latitude by definition: any other crs is a 400 naming crs; CRS84 is fine."""
    for code in (4549, 4326, 4490, 3857):
        problem(_get(client, STATION_LAYER, f="kml", crs=epsg_uri(code)), 400, "crs")
    response = _get(client, STATION_LAYER, f="kml", crs=CRS84)
    assert response.status_code == 200
    assert "content-crs" not in response.headers


# -- format details -----------------------------------------------------------------------------------------


def test_csv_has_bom_wkt_and_chinese(client: TestClient, seeds: Seeds) -> None:
    """The CSV starts with a UTF-8 BOM (spreadsheets then read UTF-8), has a WKT column, and the Chinese
    names and the geometries survive a round trip through Python's csv module."""
    response = _get(client, "demonstration_zone", f="csv")
    assert response.status_code == 200
    assert response.content.startswith(UTF8_BOM)
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))
    assert rows and next(iter(rows[0])) == "WKT"
    by_code = {r["code"]: r for r in rows}
    assert sorted(by_code) == sorted(seeds["demonstration_zone"])
    for code, feature in seeds["demonstration_zone"].items():
        row = by_code[code]
        assert row["name_zh"] == feature["properties"]["name_zh"]
        assert re.search(r"[\u4e00-\u9fff]", row["name_zh"])
        want = _seed_geometry(feature)
        got = shapely.from_wkt(row["WKT"]) if row["WKT"] else None
        _assert_same_geometry(got, want, code)


def test_gpkg_contents_describe_the_layer(client: TestClient, catalog: Catalog, tmp_path: Path) -> None:
    """The GeoPackage's gpkg_contents names the layer as a features table with its title and description,
    the geometry column has the catalogue's type, and the table holds one row per feature."""
    layer = catalog.layers["demonstration_zone"]
    table = _download(client, tmp_path, layer.id, "gpkg")
    with _sqlite(table.path) as db:
        [(data_type, identifier, description)] = db.execute(
            "SELECT data_type, identifier, description FROM gpkg_contents WHERE table_name = ?", (layer.id,)
        ).fetchall()
        [(geometry_type,)] = db.execute(
            "SELECT geometry_type_name FROM gpkg_geometry_columns WHERE table_name = ?", (layer.id,)
        ).fetchall()
        [(rows,)] = db.execute(f'SELECT count(*) FROM "{layer.id}"').fetchall()
    assert (data_type, identifier, description) == ("features", str(layer.title), str(layer.description))
    assert geometry_type == layer.geometry_type.upper()
    assert rows == len(table.records)


def test_kml_declares_its_columns(client: TestClient, catalog: Catalog, tmp_path: Path) -> None:
    """The KML declares the feature id and every catalogue property in its Schema, and each Placemark
    carries its values as SchemaData."""
    table = _download(client, tmp_path, "rail_stations", "kml")
    assert table.names == ["id", *catalog.layers["rail_stations"].property_names]
    root = ET.parse(table.path).getroot()
    placemarks = root.findall(".//kml:Placemark", KML_NS)
    assert len(placemarks) == len(table.records)
    codes = [p.findtext(".//kml:SimpleData[@name='code']", namespaces=KML_NS) for p in placemarks]
    assert codes == table.codes


@pytest.mark.parametrize("fmt", FORMATS)
def test_accept_header_picks_the_format(client: TestClient, seeds: Seeds, tmp_path: Path, fmt: str) -> None:
    """Without `f`, an Accept header naming a file type downloads that file."""
    media = MEDIA_TYPES[fmt].split(";")[0]
    response = client.get(f"/collections/{STATION_LAYER}/items", headers={"Accept": media})
    table = _read(_save(response, tmp_path, fmt, STATION_LAYER), fmt, response)
    assert sorted(table.codes) == sorted(seeds[STATION_LAYER])


# -- the query applies to the file --------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_filter_applies(client: TestClient, seeds: Seeds, tmp_path: Path, fmt: str) -> None:
    """A CQL2 filter selects the file's features: exactly the planned seeds."""
    table = _download(client, tmp_path, "demonstration_zone", fmt, filter="status='planned'")
    expected = _codes_where(seeds, "demonstration_zone", lambda p, g: p["status"] == "planned")
    assert 0 < len(expected) < len(seeds["demonstration_zone"])
    assert sorted(table.codes) == sorted(expected)


@pytest.mark.parametrize("fmt", FORMATS)
def test_bbox_applies(client: TestClient, seeds: Seeds, tmp_path: Path, fmt: str) -> None:
    """A bbox selects the file's features: exactly the seeds whose geometry meets the box."""
    table = _download(client, tmp_path, "rail_stations", fmt, bbox=",".join(map(str, JIASHAN_BOX)))
    area = box(*JIASHAN_BOX)
    expected = _codes_where(seeds, "rail_stations", lambda p, g: g is not None and g.intersects(area))
    assert 0 < len(expected) < len(seeds["rail_stations"])
    assert sorted(table.codes) == sorted(expected)


@pytest.mark.parametrize("fmt", FORMATS)
def test_property_equality_applies(client: TestClient, seeds: Seeds, tmp_path: Path, fmt: str) -> None:
    """A property parameter (`status=existing`) selects the file's features."""
    table = _download(client, tmp_path, "road_projects", fmt, status="existing")
    expected = _codes_where(seeds, "road_projects", lambda p, g: p["status"] == "existing")
    assert 0 < len(expected) < len(seeds["road_projects"])
    assert sorted(table.codes) == sorted(expected)


@pytest.mark.parametrize("fmt", FORMATS)
def test_sortby_orders_the_file(client: TestClient, seeds: Seeds, tmp_path: Path, fmt: str) -> None:
    """`sortby=-name_zh` orders the file's rows: code-point order of the Chinese names, descending."""
    table = _download(client, tmp_path, "rail_stations", fmt, sortby="-name_zh")
    expected = _sorted_codes(seeds, "rail_stations", "name_zh", descending=True)
    assert len({seeds["rail_stations"][c]["properties"]["name_zh"] for c in expected}) == len(expected)
    assert table.codes == expected


@pytest.mark.parametrize("fmt", FORMATS)
def test_sortby_puts_nulls_last(client: TestClient, seeds: Seeds, tmp_path: Path, fmt: str) -> None:
    """Sorting on a property some features lack puts those last, in either direction."""
    features = seeds["demonstration_zone"]
    for descending in (False, True):
        table = _download(
            client, tmp_path, "demonstration_zone", fmt, sortby=("-" if descending else "") + "accuracy_m"
        )
        want = [
            features[c]["properties"].get("accuracy_m")
            for c in _sorted_codes(seeds, "demonstration_zone", "accuracy_m", descending=descending)
        ]
        assert None in want and want[0] is not None
        got = [features[c]["properties"].get("accuracy_m") for c in table.codes]
        assert got == want  # ties may come in either order: compare the keys


@pytest.mark.parametrize("fmt", FORMATS)
def test_properties_selects_columns(client: TestClient, seeds: Seeds, tmp_path: Path, fmt: str) -> None:
    """`properties=code,name_zh` makes a file with only the feature id and those two columns."""
    table = _download(client, tmp_path, "g60_platforms", fmt, properties="code,name_zh")
    assert table.names == (["WKT"] if fmt == "csv" else []) + ["id", "code", "name_zh"]
    assert "name_en" not in table.records[0] and "status" not in table.records[0]
    assert sorted(table.codes) == sorted(seeds["g60_platforms"])
    for code, (record, geometry) in table.by_code().items():
        assert record["name_zh"] == seeds["g60_platforms"][code]["properties"]["name_zh"]
        _assert_same_geometry(geometry, _seed_geometry(seeds["g60_platforms"][code]), code)


@pytest.mark.parametrize("fmt", FORMATS)
def test_explicit_limit_caps_the_file(client: TestClient, seeds: Seeds, tmp_path: Path, fmt: str) -> None:
    """An explicit `limit=3` keeps the first 3 matches in `sortby` order."""
    table = _download(client, tmp_path, "rail_stations", fmt, limit=3, sortby="name_zh")
    assert table.codes == _sorted_codes(seeds, "rail_stations", "name_zh", descending=False)[:3]


def test_page_size_does_not_cap_the_file(small_client: TestClient, seeds: Seeds, tmp_path: Path) -> None:
    """With a default page size of 3 and a maximum of 5, a file without `limit` still holds every match."""
    assert len(seeds["rail_stations"]) > 5
    response = _get(small_client, "rail_stations", f="gpkg")
    table = _read(_save(response, tmp_path, "gpkg", "rail_stations"), "gpkg", response)
    assert sorted(table.codes) == sorted(seeds["rail_stations"])


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_match_is_a_valid_empty_file(
    client: TestClient, seeds: Seeds, catalog: Catalog, tmp_path: Path, fmt: str
) -> None:
    """A filter that matches nothing gives a valid file with 0 features (and its columns), that pyogrio
    and ogrinfo both open."""
    assert "no_such_code" not in seeds["rail_stations"]
    table = _download(client, tmp_path, "rail_stations", fmt, filter="code = 'no_such_code'")
    assert table.records == [] and table.geometries == []
    assert pyogrio.read_info(table.path, force_feature_count=True)["features"] == 0
    assert _ogrinfo_count(table.path) == 0
    if fmt in ("gpkg", "fgb"):
        assert table.names == ["id", *catalog.layers["rail_stations"].property_names]
        assert table.crs == "EPSG:4326"
    if fmt == "csv":
        assert table.names == ["WKT", "id", *catalog.layers["rail_stations"].property_names]


@pytest.mark.parametrize("fmt", FORMATS)
def test_only_features_without_geometry(client: TestClient, seeds: Seeds, tmp_path: Path, fmt: str) -> None:
    """A file whose every feature lacks a geometry (`geometry IS NULL`) is still written and read back,
    with the unlocated seeds and no geometries."""
    table = _download(client, tmp_path, "demonstration_zone", fmt, filter="geometry IS NULL")
    expected = _codes_where(seeds, "demonstration_zone", lambda p, g: g is None)
    assert expected
    assert sorted(table.codes) == sorted(expected)
    assert all(g is None or g.is_empty for g in table.geometries)
    assert _ogrinfo_count(table.path) == len(expected)


# -- bad input ----------------------------------------------------------------------------------------------


def _layer_versions(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, version, feature_count, updated_at FROM layers ORDER BY id"))
        return [tuple(r) for r in rows]


def test_bad_download_requests_are_400_and_change_nothing(
    client: TestClient, engine: Engine, tmp_path: Path, problem: ProblemCheck
) -> None:
    """f=kml with a projected crs, a malformed filter with f=gpkg and an unknown f are 400 problems naming
    the parameter; neither they nor good downloads change the layers' versions."""
    before = _layer_versions(engine)
    problem(_get(client, STATION_LAYER, f="kml", crs=epsg_uri(4549)), 400, "crs")
    problem(_get(client, STATION_LAYER, f="gpkg", filter="status = = 'planned'"), 400, "filter")
    problem(_get(client, STATION_LAYER, f="gpkg", filter="status='planned' AND"), 400, "filter")
    problem(_get(client, STATION_LAYER, f="shp"), 400, "f=shp")
    problem(_get(client, STATION_LAYER, f="xlsx"), 400, "gpkg")
    for fmt in FORMATS:
        _download(client, tmp_path, STATION_LAYER, fmt)
    assert _layer_versions(engine) == before


# -- caching ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_conditional_download_is_304(client: TestClient, fmt: str) -> None:
    """A second download with If-None-Match of the first ETag is a 304 without a body; the ETag of
    another format or another query does not match."""
    first = _get(client, STATION_LAYER, f=fmt, status="existing")
    assert first.status_code == 200
    etag = first.headers["etag"]
    again = client.get(
        f"/collections/{STATION_LAYER}/items",
        params={"f": fmt, "status": "existing"},
        headers={"If-None-Match": etag},
    )
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    other_format = "fgb" if fmt != "fgb" else "gpkg"
    for params in ({"f": other_format, "status": "existing"}, {"f": fmt}):
        response = client.get(
            f"/collections/{STATION_LAYER}/items", params=params, headers={"If-None-Match": etag}
        )
        assert response.status_code == 200, params


# -- links from the items page ------------------------------------------------------------------------------


def _alternates(page: dict[str, Any]) -> dict[str, str]:
    """href of each file `alternate` link of an items page, keyed by media type (one per type)."""
    files = {m.split(";")[0] for m in MEDIA_TYPES.values()}
    links = [link for link in page["links"] if link["rel"] == "alternate" and link["type"] in files]
    hrefs = {link["type"]: link["href"] for link in links}
    assert len(hrefs) == len(links) == len(files), links
    return hrefs


def test_items_page_links_to_every_file(client: TestClient, seeds: Seeds, tmp_path: Path) -> None:
    """Each items page (the first and one reached through `next`) has one alternate link per file format;
    the link keeps the query but drops `limit` and `cursor`, so the file holds every match, sorted."""
    query = {"filter": "status='existing'", "sortby": "-name_zh", "properties": "code,name_zh", "limit": 2}
    first = _get(client, STATION_LAYER, **query)
    assert first.status_code == 200
    [next_href] = [link["href"] for link in first.json()["links"] if link["rel"] == "next"]
    second = client.get(next_href)
    assert second.status_code == 200
    expected = [
        c
        for c in _sorted_codes(seeds, STATION_LAYER, "name_zh", descending=True)
        if seeds[STATION_LAYER][c]["properties"]["status"] == "existing"
    ]
    assert len(expected) > 2
    for page in (first.json(), second.json()):
        for media, href in _alternates(page).items():
            [fmt] = [k for k, v in MEDIA_TYPES.items() if v.split(";")[0] == media]
            params = parse_qs(urlsplit(href).query)
            assert "limit" not in params and "cursor" not in params, href
            assert params["f"] == [fmt]
            assert {k: v[0] for k, v in params.items() if k != "f"} == {
                k: str(v) for k, v in query.items() if k != "limit"
            }
            response = client.get(href)
            table = _read(
                _save(response, tmp_path / f"link{next(_counter)}", fmt, STATION_LAYER), fmt, response
            )
            assert table.codes == expected
            assert table.names == (["WKT"] if fmt == "csv" else []) + ["id", "code", "name_zh"]


def test_projected_page_links_to_projected_files(client: TestClient, seeds: Seeds, tmp_path: Path) -> None:
    """On an items page in EPSG:4549 the GeoPackage, FlatGeobuf and CSV links keep `crs`: their files are in
    EPSG:4549, easting first. KML cannot be in EPSG:4549: its link leaves `crs` out and downloads WGS 84."""
    page = _get(client, STATION_LAYER, crs=epsg_uri(4549), limit=1).json()
    lon, lat = seeds[STATION_LAYER][STATION]["geometry"]["coordinates"]
    easting, northing = Transformer.from_crs(4326, 4549, always_xy=True).transform(lon, lat)
    for media, href in _alternates(page).items():
        [fmt] = [k for k, v in MEDIA_TYPES.items() if v.split(";")[0] == media]
        if fmt == "kml":
            assert "crs" not in parse_qs(urlsplit(href).query)
            assert client.get(href).status_code == 200
            continue
        assert parse_qs(urlsplit(href).query)["crs"] == [epsg_uri(4549)]
        response = client.get(href)
        table = _read(_save(response, tmp_path / f"link{next(_counter)}", fmt, STATION_LAYER), fmt, response)
        assert sorted(table.codes) == sorted(seeds[STATION_LAYER])
        _, point = table.by_code()[STATION]
        assert point is not None
        assert (point.x, point.y) == pytest.approx((easting, northing), abs=0.01)
