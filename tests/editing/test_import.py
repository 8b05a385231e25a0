"""File import: GeoJSON, GeoPackage and zipped Shapefile, each datum, dry runs, all-or-nothing, history."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from pyogrio import raw
from pyproj import Transformer
from sqlalchemy import text
from typer.testing import CliRunner

from geo_service.catalog import Catalog
from geo_service.cli import app
from geo_service.datum import wgs84_to_bd09, wgs84_to_gcj02
from geo_service.editing.imports import import_rows, read_rows
from geo_service.settings import get_settings
from tests.conftest import Writable, database_state

LAYER = "rail_stations"
STATION = "c01_jiaxing_south_stn"
Seeds = dict[str, dict[str, dict[str, Any]]]


def _props(code: str, **changes: Any) -> dict[str, Any]:
    return {
        "code": code,
        "name_zh": "导入站",
        "name_en": "Imported station",
        "category": "rail_station",
        "status": "planned",
        "accuracy": "approximate",
        "county": ["330402"],
    } | changes


def _geojson(path: Path, rows: list[tuple[dict[str, Any], list[float] | None]]) -> Path:
    features = [
        {
            "type": "Feature",
            "properties": p,
            "geometry": None if xy is None else {"type": "Point", "coordinates": xy},
        }
        for p, xy in rows
    ]
    path.write_text(
        json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False), "utf-8"
    )
    return path


def _table(path: Path, driver: str, rows: list[tuple[dict[str, Any], list[float]]], crs: str) -> Path:
    """A file written by GDAL with text fields (lists as JSON text), as other GIS tools export them."""
    names = list(rows[0][0])
    columns = [
        np.array(
            [json.dumps(p[n], ensure_ascii=False) if isinstance(p[n], list) else p[n] for p, _ in rows],
            dtype=object,
        )
        for n in names
    ]
    geometry = np.array([shapely.Point(xy).wkb for _, xy in rows], dtype=object)
    raw.write(
        str(path), geometry, columns, names, driver=driver, geometry_type="Point", crs=crs, encoding="UTF-8"
    )
    return path


def _stored(writable: Writable, code: str) -> dict[str, Any]:
    response = writable.client.get(f"/collections/{LAYER}/items", params={"code": code}).json()
    [feature] = response["features"]
    return dict(feature)


def test_geojson_creates_updates_and_keeps_history(
    writable: Writable, catalog: Catalog, seeds: Seeds, tmp_path: Path
) -> None:
    """A new code is created, a known one with a new name updated (its old state in history, with the file
    named), and the same file again changes nothing."""
    layer = catalog.layers[LAYER]
    seed = seeds[LAYER]["c02_jiaxing_stn"]
    renamed = seed["properties"] | {"name_zh": "嘉兴站(导入)"}
    path = _geojson(
        tmp_path / "stations.geojson",
        [(_props("import_new"), [120.82, 30.72]), (renamed, seed["geometry"]["coordinates"])],
    )
    report = import_rows(
        writable.engine,
        layer,
        read_rows(path, layer, "wgs84"),
        who="导入者",
        comment="import of stations.geojson",
    )
    assert report.applied and [r.outcome for r in report.rows] == ["created", "updated"]
    assert _stored(writable, "c02_jiaxing_stn")["properties"]["name_zh"] == "嘉兴站(导入)"
    with writable.engine.connect() as conn:
        comment = conn.execute(
            text(
                "SELECT comment FROM feature_history h JOIN features f ON f.id = h.feature_id"
                " WHERE f.code = 'c02_jiaxing_stn'"
            )
        ).scalar_one()
    assert comment == "import of stations.geojson"
    again = import_rows(
        writable.engine, layer, read_rows(path, layer, "wgs84"), who="导入者", comment="again"
    )
    assert [r.outcome for r in again.rows] == ["unchanged", "unchanged"]


@pytest.mark.parametrize(("datum", "convert"), [("gcj02", wgs84_to_gcj02), ("bd09", wgs84_to_bd09)])
def test_web_map_datums_are_converted(
    writable: Writable, catalog: Catalog, seeds: Seeds, tmp_path: Path, datum: str, convert: Any
) -> None:
    """嘉兴南站 drawn on AMap (GCJ-02) or Baidu (BD-09) and imported with that datum lands on its WGS 84 seed
    point (within 1e-6°): the row is unchanged. Declared as wgs84 instead, a dry run warns of the datum."""
    layer = catalog.layers[LAYER]
    seed = seeds[LAYER][STATION]
    shifted = list(convert(*seed["geometry"]["coordinates"]))
    path = _geojson(tmp_path / f"{datum}.geojson", [(seed["properties"], shifted)])
    [(_, geom)] = read_rows(path, layer, datum)
    assert [geom.x, geom.y] == pytest.approx(seed["geometry"]["coordinates"], abs=1e-6)
    wrong = import_rows(
        writable.engine, layer, read_rows(path, layer, "wgs84"), who="t", comment="t", dry_run=True
    )
    assert not wrong.applied and wrong.warnings and f"--datum {datum}" in wrong.warnings[0]


@pytest.mark.parametrize("driver", ["GPKG", "ESRI Shapefile"])
def test_projected_files_are_transformed(
    writable: Writable, catalog: Catalog, tmp_path: Path, driver: str
) -> None:
    """A GeoPackage or zipped Shapefile in EPSG:4549 (its CRS recorded in the file, no --datum) is imported
    in WGS 84 within 1e-6° of pyproj; list fields written as JSON text become lists again."""
    layer = catalog.layers[LAYER]
    east, north = Transformer.from_crs(4326, 4549, always_xy=True).transform(120.83, 30.73)
    code = f"import_{driver[:4].lower()}"
    if driver == "GPKG":
        path = _table(tmp_path / "s.gpkg", driver, [(_props(code), [east, north])], "EPSG:4549")
    else:
        shp = _table(tmp_path / "s.shp", driver, [(_props(code), [east, north])], "EPSG:4549")
        path = tmp_path / "s.zip"
        with zipfile.ZipFile(path, "w") as archive:
            for part in tmp_path.glob("s.*"):
                if part.suffix != ".zip":
                    archive.write(part, part.name)
        assert shp.exists()
    report = import_rows(writable.engine, layer, read_rows(path, layer, None), who="t", comment="t")
    assert report.applied and report.rows[0].outcome == "created", report
    stored = _stored(writable, code)
    assert stored["geometry"]["coordinates"] == pytest.approx([120.83, 30.73], abs=1e-6)
    assert stored["properties"]["county"] == ["330402"]


def test_one_bad_row_imports_nothing(writable: Writable, catalog: Catalog, tmp_path: Path) -> None:
    """A file with one invalid row (a bad status), one outside Jiaxing and one repeating a code imports
    nothing; the report names each bad row and why; a dry run of a good file changes nothing either."""
    layer = catalog.layers[LAYER]
    path = _geojson(
        tmp_path / "bad.geojson",
        [
            (_props("bad_ok"), [120.8, 30.7]),
            (_props("bad_status", status="done"), [120.8, 30.7]),
            (_props("bad_far"), [116.4, 39.9]),
            (_props("bad_ok"), [120.81, 30.71]),
        ],
    )
    before = database_state(writable.engine)
    report = import_rows(writable.engine, layer, read_rows(path, layer, "wgs84"), who="t", comment="t")
    assert not report.applied
    outcome = {r.row: (r.outcome, " ".join(r.reasons)) for r in report.rows}
    assert outcome[2][0] == "invalid" and "status" in outcome[2][1]
    assert outcome[3][0] == "invalid" and "outside" in outcome[3][1]
    assert outcome[4][0] == "invalid" and "repeats row 1" in outcome[4][1]
    good = _geojson(tmp_path / "good.geojson", [(_props("dry_new"), [120.8, 30.7])])
    dry = import_rows(
        writable.engine, layer, read_rows(good, layer, "wgs84"), who="t", comment="t", dry_run=True
    )
    assert not dry.applied and dry.rows[0].outcome == "created"
    assert database_state(writable.engine) == before


def test_import_command(writable: Writable, tmp_path: Path) -> None:
    """`jxplan import` prints a line per row and the totals; exit code 1 and nothing imported when a row is
    bad or the datum unknown."""
    url = writable.engine.url.render_as_string(hide_password=False)
    good = _geojson(tmp_path / "cli.geojson", [(_props("cli_new"), [120.84, 30.74])])
    bad = _geojson(tmp_path / "cli_bad.geojson", [(_props("cli_bad", status="done"), [120.84, 30.74])])
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        ok = runner.invoke(
            app,
            ["import", str(good), "--layer", LAYER, "--datum", "wgs84", "--by", "王工"],
            env={"DATABASE_URL": url},
        )
        refused = runner.invoke(app, ["import", str(bad), "--layer", LAYER], env={"DATABASE_URL": url})
        unknown = runner.invoke(
            app, ["import", str(good), "--layer", LAYER, "--datum", "mars"], env={"DATABASE_URL": url}
        )
    finally:
        get_settings.cache_clear()
    assert ok.exit_code == 0 and "created" in ok.output and "Imported" in ok.output, ok.output
    assert refused.exit_code == 1 and "invalid" in refused.output
    assert unknown.exit_code == 1
    assert _stored(writable, "cli_new")["properties"]["name_zh"] == "导入站"
