"""Hostile files sent to the import (`POST /collections/{id}/import` and `jxplan import`): zip bombs, members
named outside the archive, a Shapefile without its index, GeoPackages with triggers, views or a million
rows, GeoJSON nested 10,000 deep. Each is a clear 4xx naming what to change, with nothing written and the
server's memory bounded."""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
import time
import uuid
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from pyogrio import raw
from typer.testing import CliRunner

from geo_service.cli import app
from geo_service.settings import get_settings
from tests.conftest import Writable, check_problem, database_state
from tests.editing.test_import import LAYER, _props, _table, _upload, import_keys

__all__ = ["import_keys"]  # the fixture, shared with the import tests

Keys = dict[str, dict[str, str]]
MB = 2**20


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


@contextlib.contextmanager
def peak_growth() -> Iterator[list[int]]:
    """How far this process's resident memory rose above where it was (bytes), measured from the kernel's
    peak (VmHWM, reset first): the app runs in this process under the test client."""
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    start = _status_kb("VmRSS")
    growth: list[int] = []
    yield growth
    growth.append((_status_kb("VmHWM") - start) * 1024)


def _shapefile(folder: Path, name: str = "s") -> list[Path]:
    """A valid one-station Shapefile written by GDAL: its .shp, .shx, .dbf, .prj and .cpg."""
    folder.mkdir(parents=True, exist_ok=True)
    _table(folder / f"{name}.shp", "ESRI Shapefile", [(_props("hostile_shp"), [120.8, 30.7])], "EPSG:4326")
    return sorted(folder.glob(f"{name}.*"))


def _zip(path: Path, members: dict[str, bytes], files: Sequence[Path] = ()) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for part in files:
            archive.write(part, part.name)
        for name, data in members.items():
            archive.writestr(name, data)
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 9 MB zip whose one member unpacks to 2 GiB of zeros."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.zip"
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive,
        archive.open("bomb.shp", "w", force_zip64=True) as member,
    ):
        chunk = bytes(32 * MB)
        for _ in range(64):
            member.write(chunk)
    return path


def test_zip_bomb_is_refused_unopened(
    writable: Writable, import_keys: Keys, bomb: Path, tmp_path: Path
) -> None:
    """A 9 MB zip unpacking to 2 GiB is refused from its directory (413, naming the limit's setting); one
    within the size limit but expanding 1000 times is refused too. Memory stays within 64 MB of where it
    was, nothing is written."""
    assert bomb.stat().st_size < 10 * MB
    dense = _zip(tmp_path / "dense.zip", {"dense.shp": bytes(100 * MB)}, _shapefile(tmp_path / "d", "x"))
    before = database_state(writable.engine)
    with peak_growth() as growth:
        refused = _upload(writable, bomb, import_keys["editor"])
    check_problem(refused, 413, "nothing imported", "bomb.zip", "2,048 MB", "JXPLAN_IMPORT_MAX_UNPACKED_MB")
    assert growth[0] < 64 * MB, f"memory grew by {growth[0] / MB:.0f} MB"
    check_problem(_upload(writable, dense, import_keys["editor"]), 413, "expand", "zip bomb")
    assert database_state(writable.engine) == before


def test_members_outside_the_archive_are_refused(
    writable: Writable, import_keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A valid Shapefile zipped with a member named `../…`, absolute, on a drive, climbing out of a folder,
    or a symbolic link, is refused naming the member, and an upload named `../../…` is read under its bare
    name; nothing is written outside the private temporary folder (which is removed), nothing imported."""
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    marker = f"jx-escaped-{uuid.uuid4().hex}.txt"
    names = [f"../{marker}", f"/tmp/{marker}", f"..\\{marker}", f"C:/{marker}", f"data/../../{marker}"]
    parts = _shapefile(tmp_path / "shp")
    before = database_state(writable.engine)
    for name in names:
        archive = _zip(tmp_path / "slip.zip", {name: b"escaped"}, parts)
        check_problem(_upload(writable, archive, import_keys["editor"]), 400, name, "refused")
    link = zipfile.ZipInfo("s.prj.lnk")
    link.external_attr = (0o120777 << 16) | 0
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for part in parts:
            zipped.write(part, part.name)
        zipped.writestr(link, "/etc/passwd")
    check_problem(_upload(writable, archive, import_keys["editor"]), 400, "symbolic link")
    clean = _zip(tmp_path / "clean.zip", {}, parts)  # a sound archive under a name that climbs out
    named = writable.client.post(
        f"/collections/{LAYER}/import",
        files={"file": (f"../../{marker}.zip", clean.read_bytes())},
        data={"dry_run": "true"},
        headers=import_keys["editor"],
    )
    assert named.status_code == 200 and named.json()["counts"] == {"created": 1}, named.text
    assert database_state(writable.engine) == before
    assert not list(Path("/tmp").glob(marker + "*")) and not list(tmp_path.parent.rglob(marker + "*"))
    assert list(private_tmp.iterdir()) == []  # every upload and unpacking folder is gone again


def test_shapefile_without_index_says_which_files(
    writable: Writable, import_keys: Keys, tmp_path: Path
) -> None:
    """A zip of a Shapefile without its .shx is refused over HTTP and by `jxplan import`, naming the
    missing file and the ones a zipped Shapefile needs; the same files with the .shx import."""
    parts = _shapefile(tmp_path / "shp", "roads")
    without = _zip(tmp_path / "roads.zip", {}, [p for p in parts if p.suffix != ".shx"])
    before = database_state(writable.engine)
    body = check_problem(_upload(writable, without, import_keys["editor"]), 400, "roads.shx", ".dbf")
    assert "side by side" in body["detail"]
    url = writable.engine.url.render_as_string(hide_password=False)
    get_settings.cache_clear()
    try:
        cli = CliRunner().invoke(app, ["import", str(without), "--layer", LAYER], env={"DATABASE_URL": url})
    finally:
        get_settings.cache_clear()
    assert cli.exit_code == 1 and "roads.shx" in cli.output, cli.output
    assert database_state(writable.engine) == before
    whole = _zip(tmp_path / "whole.zip", {}, parts)
    dry = _upload(writable, whole, import_keys["editor"], dry_run="true")
    assert dry.status_code == 200 and dry.json()["counts"] == {"created": 1}, dry.text


def _gpkg_with(path: Path, statement: str) -> Path:
    """A GeoPackage written by GDAL (with its own spatial-index and feature-count triggers) plus SQL."""
    _table(path, "GPKG", [(_props("hostile_gpkg"), [120.8, 30.7])], "EPSG:4326")
    if statement:
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.executescript(statement)
    return path


@pytest.mark.parametrize(
    ("statement", "named"),
    [
        (
            "CREATE TABLE loot (x TEXT); CREATE TRIGGER jx_evil AFTER INSERT ON s BEGIN"
            " INSERT INTO loot VALUES (load_extension('evil')); END;",
            "jx_evil",
        ),
        # named like a spatial-index trigger, but on a table that has no such index
        (
            "CREATE TRIGGER rtree_gpkg_contents_x_insert AFTER UPDATE ON gpkg_contents BEGIN"
            " DELETE FROM gpkg_contents; END;",
            "rtree_gpkg_contents_x_insert",
        ),
        (
            "CREATE VIEW jx_spin AS WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c)"
            " SELECT n FROM c;",
            "jx_spin",
        ),
        (
            "ALTER TABLE s ADD COLUMN jx_computed TEXT GENERATED ALWAYS AS (upper(code)) VIRTUAL;",
            "jx_computed",
        ),
        ("CREATE VIRTUAL TABLE jx_text USING fts5(body);", "jx_text"),
    ],
)
def test_geopackage_sql_is_refused(
    writable: Writable, import_keys: Keys, tmp_path: Path, statement: str, named: str
) -> None:
    """A GeoPackage with a trigger of its author's, a view, a generated column or a virtual table other than
    a spatial index (SQL that reading could run) is refused naming it; the triggers and spatial index GDAL
    itself writes into every GeoPackage are accepted (a dry run of the same file without the addition
    reports the row)."""
    clean = _gpkg_with(tmp_path / "clean.gpkg", "")
    with contextlib.closing(sqlite3.connect(clean)) as conn:
        own = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")]
    assert any(name.startswith("rtree_") for name in own) and any("feature_count" in n for n in own)
    hostile = _gpkg_with(tmp_path / "s.gpkg", statement)
    before = database_state(writable.engine)
    check_problem(_upload(writable, hostile, import_keys["editor"]), 400, named, "refused", "ogr2ogr")
    assert database_state(writable.engine) == before
    dry = _upload(writable, clean, import_keys["editor"], dry_run="true")
    assert dry.status_code == 200 and dry.json()["counts"] == {"created": 1}, dry.text


def test_million_rows_are_refused_without_reading_them(
    writable: Writable, import_keys: Keys, tmp_path: Path
) -> None:
    """A GeoPackage of a million rows is refused with 413 naming the limit and its setting, after reading
    at most one row more than the limit: memory stays within 150 MB, the answer comes within 20 s, and
    nothing is written."""
    rows = 1_000_000
    path = tmp_path / "million.gpkg"
    codes = np.array([f"m{i}" for i in range(rows)], dtype=object)
    raw.write(
        str(path),
        np.full(rows, None, dtype=object),
        [codes],
        ["code"],
        driver="GPKG",
        geometry_type="Point",
        crs="EPSG:4326",
        layer_options={"SPATIAL_INDEX": "NO"},
    )
    before = database_state(writable.engine)
    started = time.monotonic()
    with peak_growth() as growth:
        refused = _upload(writable, path, import_keys["editor"])
    elapsed = time.monotonic() - started
    check_problem(refused, 413, "million.gpkg", "more than 20,000 features", "JXPLAN_IMPORT_MAX_FEATURES")
    assert growth[0] < 150 * MB, f"memory grew by {growth[0] / MB:.0f} MB"
    assert elapsed < 20, f"took {elapsed:.1f} s"
    assert database_state(writable.engine) == before


def _nested(depth: int) -> str:
    return "[" * depth + '"x"' + "]" * depth


@pytest.mark.parametrize(("depth", "words"), [(10_000, ("nests", "flatten")), (1000, ("county",))])
def test_deeply_nested_geojson_is_refused(
    writable: Writable, import_keys: Keys, tmp_path: Path, depth: int, words: tuple[str, ...]
) -> None:
    """A GeoJSON nested 10,000 deep is refused saying so; one nested 1,000 deep in a list property (beyond
    Python's recursion limit, within GDAL's) is refused as an invalid row. Neither is a 500; nothing is
    written."""
    path = tmp_path / "deep.geojson"
    properties = _props("hostile_deep")
    text = (
        '{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": '
        '{"type": "Point", "coordinates": [120.8, 30.7]}, "properties": {'
        + ", ".join(f'"{k}": "{v}"' for k, v in properties.items() if k != "county")
        + f', "county": {_nested(depth)}}}}}]}}'
    )
    path.write_text(text, "utf-8")
    before = database_state(writable.engine)
    check_problem(_upload(writable, path, import_keys["editor"]), 400, "nothing imported", *words)
    assert database_state(writable.engine) == before
