"""File import: GeoJSON, GeoPackage and zipped Shapefile, each datum, dry runs, all-or-nothing, history."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from httpx import Response
from pyogrio import raw
from pyproj import Transformer
from sqlalchemy import text
from typer.testing import CliRunner

from geo_service.catalog import Catalog
from geo_service.cli import app
from geo_service.datum import wgs84_to_bd09, wgs84_to_gcj02
from geo_service.editing import routes
from geo_service.editing.imports import import_rows, read_rows
from geo_service.editing.keys import add_key
from geo_service.settings import get_settings
from tests.conftest import Writable, check_problem, database_state

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


# --- POST /collections/{id}/import (multipart) ---------------------------------------------------------


@pytest.fixture(scope="module")
def import_keys(writable: Writable) -> dict[str, dict[str, str]]:
    """Authorization headers of an editor and of a reader key."""
    return {
        role: {"Authorization": f"Bearer {add_key(writable.engine, f'导入 {role}', role)}"}
        for role in ("editor", "reader")
    }


def _upload(
    writable: Writable,
    path: Path,
    headers: dict[str, str],
    layer: str = LAYER,
    **fields: str,
) -> Response:
    with path.open("rb") as handle:
        return writable.client.post(
            f"/collections/{layer}/import",
            files={"file": (path.name, handle.read())},
            data=fields,
            headers=headers,
        )


def test_http_import_of_each_format(
    writable: Writable, import_keys: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    """GeoJSON, GeoPackage (EPSG:4549 in the file) and zipped Shapefile uploaded with an editor key are
    imported: a JSON report per row, the features readable at once, history naming the key and comment."""
    east, north = Transformer.from_crs(4326, 4549, always_xy=True).transform(120.86, 30.76)
    geojson = _geojson(tmp_path / "web.geojson", [(_props("http_geojson"), [120.85, 30.75])])
    gpkg = _table(tmp_path / "web.gpkg", "GPKG", [(_props("http_gpkg"), [east, north])], "EPSG:4549")
    _table(tmp_path / "w.shp", "ESRI Shapefile", [(_props("http_shp"), [120.87, 30.77])], "EPSG:4326")
    archive_path = tmp_path / "web.zip"
    with zipfile.ZipFile(archive_path, "w") as archive:
        for part in tmp_path.glob("w.*"):
            archive.write(part, part.name)
    expected = {"http_geojson": [120.85, 30.75], "http_gpkg": [120.86, 30.76], "http_shp": [120.87, 30.77]}
    for path, code in ((geojson, "http_geojson"), (gpkg, "http_gpkg"), (archive_path, "http_shp")):
        response = _upload(writable, path, import_keys["editor"], comment="批量导入 batch")
        assert response.status_code == 200, response.text
        report = response.json()
        assert report["applied"] is True and report["counts"] == {"created": 1}
        assert report["rows"][0]["code"] == code
        stored = _stored(writable, code)
        assert stored["geometry"]["coordinates"] == pytest.approx(expected[code], abs=1e-6)
    again = _upload(writable, geojson, import_keys["editor"])
    assert again.json()["counts"] == {"unchanged": 1}
    changed = _geojson(
        tmp_path / "web.geojson", [(_props("http_geojson", name_zh="改名站"), [120.85, 30.75])]
    )
    updated = _upload(writable, changed, import_keys["editor"], comment="改名 rename")
    assert updated.json()["counts"] == {"updated": 1}
    with writable.engine.connect() as conn:
        who, comment = conn.execute(
            text(
                "SELECT h.changed_by, h.comment FROM feature_history h JOIN features f ON f.id = h.feature_id"
                " WHERE f.code = 'http_geojson'"
            )
        ).one()
    assert (who, comment) == ("导入 editor", "改名 rename")


def test_http_import_dry_run_and_datum(
    writable: Writable, import_keys: dict[str, dict[str, str]], seeds: Seeds, tmp_path: Path
) -> None:
    """`dry_run=true` reports what would happen and changes nothing; a station drawn on AMap (GCJ-02) is
    reported unchanged with `datum=gcj02`, and with `datum=wgs84` the report warns of GCJ-02."""
    seed = seeds[LAYER][STATION]
    shifted = list(wgs84_to_gcj02(*seed["geometry"]["coordinates"]))
    path = _geojson(
        tmp_path / "amap.geojson", [(seed["properties"], shifted), (_props("dry_http"), [120.8, 30.7])]
    )
    before = database_state(writable.engine)
    right = _upload(writable, path, import_keys["editor"], datum="gcj02", dry_run="true").json()
    assert right["applied"] is False and [r["outcome"] for r in right["rows"]] == ["unchanged", "created"]
    assert right["warnings"] == []
    wrong = _upload(writable, path, import_keys["editor"], datum="wgs84", dry_run="true").json()
    assert [r["outcome"] for r in wrong["rows"]] == ["updated", "created"]
    assert "gcj02" in wrong["warnings"][0]
    assert database_state(writable.engine) == before


def test_http_import_refusals_change_nothing(
    writable: Writable,
    import_keys: dict[str, dict[str, str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every refused upload is a problem+json that says what to do, and the database is as it was."""
    good = _geojson(tmp_path / "ok.geojson", [(_props("refused_new"), [120.8, 30.7])])
    bad = _geojson(
        tmp_path / "bad.geojson",
        [(_props("refused_a"), [120.8, 30.7]), (_props("refused_b", status="done"), [120.8, 30.7])],
    )
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not a map", "utf-8")
    empty = _geojson(tmp_path / "empty.geojson", [])
    broken = tmp_path / "broken.geojson"
    broken.write_text('{"type": "FeatureCollection", "features": [', "utf-8")
    editor = import_keys["editor"]
    before = database_state(writable.engine)
    check_problem(_upload(writable, good, {}), 401, "key")
    check_problem(_upload(writable, good, import_keys["reader"]), 403, "editor")
    check_problem(_upload(writable, good, editor, layer="admin_boundaries"), 405, "reference data")
    check_problem(_upload(writable, good, editor, layer="no_such_layer"), 404)
    body = check_problem(_upload(writable, bad, editor), 400, "nothing imported", "row 2", "status")
    assert [r["outcome"] for r in body["report"]["rows"]] == ["created", "invalid"]
    check_problem(_upload(writable, good, editor, datum="mars"), 400, "datum")
    check_problem(_upload(writable, good, editor, dry_run="maybe"), 400, "dry_run")
    check_problem(_upload(writable, good, editor, comment="a\x00b"), 400, "comment", "NUL")  # was a 500
    check_problem(_upload(writable, text_file, editor), 415, ".gpkg")
    check_problem(_upload(writable, empty, editor), 400, "no features")
    check_problem(_upload(writable, broken, editor), 400, "cannot read")
    not_form = writable.client.post(f"/collections/{LAYER}/import", json={"type": "Feature"}, headers=editor)
    check_problem(not_form, 415, "multipart")
    no_file = writable.client.post(
        f"/collections/{LAYER}/import", data={"datum": "wgs84"}, files={"other": ("x", b"y")}, headers=editor
    )
    check_problem(no_file, 400, "file")
    monkeypatch.setattr(routes, "MAX_IMPORT_BYTES", 100)
    check_problem(_upload(writable, good, editor), 413, "MB")
    assert database_state(writable.engine) == before


def test_new_features_offset_like_gcj02_from_their_counties_are_warned(
    writable: Writable, catalog: Catalog, tmp_path: Path
) -> None:
    """New features (no stored code to compare with) drawn on AMap near the 嘉善 border and declared as
    wgs84 lie outside the county they claim, and inside it once converted: the report names GCJ-02. The same
    places in true WGS 84, or the AMap file declared as gcj02, bring no warning."""
    layer = catalog.layers[LAYER]
    with writable.engine.connect() as conn:
        wkb = conn.execute(
            text(
                "SELECT ST_AsBinary(geom) FROM features"
                " WHERE layer_id = 'admin_boundaries' AND properties->>'adcode' = '330421'"
            )
        ).scalar_one()
    county = shapely.from_wkb(bytes(wkb))
    west, south, east, north = county.bounds
    near_border = [
        (x, y)
        for x in np.arange(west, east, 0.004)
        for y in np.arange(south, north, 0.004)
        if county.contains(shapely.Point(x, y)) and not county.contains(shapely.Point(wgs84_to_gcj02(x, y)))
    ][::7][:5]
    assert len(near_border) == 5
    rows = [
        (_props(f"border_{i}", county=["330421"]), [float(x), float(y)])
        for i, (x, y) in enumerate(near_border)
    ]
    amap = _geojson(tmp_path / "amap_new.geojson", [(p, list(wgs84_to_gcj02(*xy))) for p, xy in rows])
    true = _geojson(tmp_path / "true_new.geojson", rows)

    def warnings(path: Path, datum: str) -> list[str]:
        report = import_rows(
            writable.engine, layer, read_rows(path, layer, datum), who="t", comment="t", dry_run=True
        )
        assert [r.outcome for r in report.rows] == ["created"] * 5
        return report.warnings

    [warning] = warnings(amap, "wgs84")
    assert "5 of 5 features lie outside the counties they claim" in warning and "--datum gcj02" in warning
    assert warnings(true, "wgs84") == []
    assert warnings(amap, "gcj02") == []
