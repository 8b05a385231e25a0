"""What a file must pass before GDAL reads it for an import, so that a hostile file cannot hurt the server.

- A zip archive is checked from its directory before anything is unpacked: a bounded total size and
  compression ratio (a zip bomb is refused unopened), no member named outside the archive (`../`, absolute
  paths, drive letters, links), and a Shapefile's parts side by side. Only the dataset's own files are then
  unpacked, into a private temporary folder, counting the bytes actually written (headers may lie).
- A GeoPackage is an SQLite database, and SQLite runs the SQL stored in it: triggers run on writes, views on
  every read. Its schema is read (never executed) first; a view, or a trigger other than those the
  GeoPackage standard and GDAL create for spatial indexes, metadata, tiles and feature counts, is refused.
- The feature count is bounded by `JXPLAN_IMPORT_MAX_FEATURES`: GDAL reads one feature more than that at
  most, so a file with a million rows costs what one at the limit costs.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import sqlite3
import stat
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from geo_service.settings import Settings

# Above this much unpacked data, members may not expand more than MAX_RATIO times: real Shapefiles
# compress 2–50×, a zip bomb ~1000×. Small members are left alone (a tiny empty .dbf compresses very well).
RATIO_FLOOR_BYTES = 1 << 20
MAX_RATIO = 200
MAX_MEMBERS = 100  # a zipped Shapefile has 3 to 8 files
SHAPEFILE_NEEDS = (".shp", ".shx", ".dbf")
SHAPEFILE_PARTS = (*SHAPEFILE_NEEDS, ".prj", ".cpg", ".qix", ".sbn", ".sbx")
READABLE_IN_ZIP = (".gpkg", ".geojson", ".json")
CHUNK = 1 << 20


class ImportProblem(ValueError):
    """The file cannot be read as asked (format, datum, layer, or a file that is refused as unsafe)."""


class ImportTooLarge(ImportProblem):
    """The file (unpacked) or its feature count is over the import's limits."""


@dataclass(frozen=True)
class ImportLimits:
    """How much one import may unpack and read."""

    max_features: int
    max_unpacked_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ImportLimits:
        """The limits the settings give."""
        return cls(settings.import_max_features, settings.import_max_unpacked_mb * 2**20)


def _unsafe_name(name: str) -> str | None:
    """Why a member name would write outside the folder it is unpacked into (None when it is safe)."""
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")):
        return "is an absolute path"
    if re.match(r"^[A-Za-z]:", name):
        return "names a drive"
    if ".." in parts:
        return "climbs out of the archive with '..'"
    if "\x00" in name:
        return "contains a NUL character"
    return None


def _members(archive: zipfile.ZipFile, name: str, limits: ImportLimits) -> list[zipfile.ZipInfo]:
    """The archive's files after the checks that need only its directory."""
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise ImportProblem(
            f"{name} holds {len(infos):,} files; a zipped Shapefile needs 3 to 8 (.shp, .shx, .dbf, .prj …)"
        )
    for info in infos:
        reason = _unsafe_name(info.filename)
        if reason is None and stat.S_ISLNK(info.external_attr >> 16):
            reason = "is a symbolic link"
        if reason is not None:
            raise ImportProblem(
                f"{name} is refused: its member '{info.filename}' {reason}. Zip only the dataset's files, "
                "without folders outside it"
            )
        if info.flag_bits & 0x1:
            raise ImportProblem(f"{name} is encrypted ({info.filename}); zip the files without a password")
    files = [info for info in infos if not info.is_dir()]
    unpacked = sum(info.file_size for info in files)
    packed = sum(info.compress_size for info in files)
    limit_mb = limits.max_unpacked_bytes // 2**20
    if unpacked > limits.max_unpacked_bytes:
        raise ImportTooLarge(
            f"{name} would unpack to {unpacked / 2**20:,.0f} MB, over the limit of {limit_mb:,} MB "
            "(JXPLAN_IMPORT_MAX_UNPACKED_MB); split the data into smaller files"
        )
    if unpacked > RATIO_FLOOR_BYTES and unpacked > MAX_RATIO * max(packed, 1):
        raise ImportTooLarge(
            f"{name} would expand {unpacked / max(packed, 1):,.0f} times when unpacked (at most {MAX_RATIO} "
            "is accepted), as zip bombs do; zip the dataset's files again, as they are"
        )
    return files


def _dataset_members(files: list[zipfile.ZipInfo], name: str) -> tuple[list[zipfile.ZipInfo], str]:
    """The members that make up the archive's one dataset, and the name GDAL opens it by."""
    by_lower = {info.filename.lower(): info for info in files}
    shapefiles = [info for info in files if info.filename.lower().endswith(".shp")]
    if len(shapefiles) > 1:
        listed = ", ".join(sorted(info.filename for info in shapefiles))
        raise ImportProblem(f"{name} holds several Shapefiles ({listed}); zip one per import")
    if shapefiles:
        main = shapefiles[0].filename
        stem = main[: -len(".shp")]
        missing = [stem + suffix for suffix in SHAPEFILE_NEEDS if (stem + suffix).lower() not in by_lower]
        if missing:
            raise ImportProblem(
                f"{name} lacks {', '.join(PurePosixPath(m).name for m in missing)}: a zipped Shapefile needs "
                f"its .shp, .shx and .dbf side by side ({PurePosixPath(stem).name}.shp, .shx, .dbf, and .prj "
                "for its coordinate system); add the missing files to the zip"
            )
        parts = [by_lower[(stem + s).lower()] for s in SHAPEFILE_PARTS if (stem + s).lower() in by_lower]
        return parts, main
    others = [info for info in files if info.filename.lower().endswith(READABLE_IN_ZIP)]
    if len(others) == 1:
        return others, others[0].filename
    raise ImportProblem(
        f"{name} holds no Shapefile: zip a Shapefile's .shp, .shx, .dbf (and .prj) files, or send a "
        "GeoPackage or GeoJSON file as it is"
    )


def _unpack(archive: zipfile.ZipFile, members: list[zipfile.ZipInfo], folder: Path, limit: int) -> None:
    """Write `members` under `folder`, counting the bytes really written against `limit`."""
    root = folder.resolve()
    written = 0
    for info in members:
        target = (root / PurePosixPath(info.filename.replace("\\", "/"))).resolve()
        if not target.is_relative_to(root):  # _unsafe_name refused these already; never write outside
            raise ImportProblem(f"the member {info.filename!r} would be written outside the import folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(info) as source, target.open("wb") as out:
            while chunk := source.read(CHUNK):
                written += len(chunk)
                if written > limit:
                    raise ImportTooLarge(
                        f"the archive unpacks to more than its directory says, over the limit of "
                        f"{limit // 2**20:,} MB (JXPLAN_IMPORT_MAX_UNPACKED_MB); it is refused"
                    )
                out.write(chunk)


@contextlib.contextmanager
def unpacked_zip(path: Path, limits: ImportLimits) -> Iterator[Path]:
    """The dataset of a zip archive, checked and unpacked into a private folder removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="jxplan-unzip-"))  # mode 0700: this user only
    try:
        try:
            with zipfile.ZipFile(path) as archive:
                members, main = _dataset_members(_members(archive, path.name, limits), path.name)
                _unpack(archive, members, folder, limits.max_unpacked_bytes)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError) as exc:
            raise ImportProblem(f"{path.name} is not a readable zip archive: {exc}") from None
        yield folder / PurePosixPath(main.replace("\\", "/"))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# Triggers the GeoPackage standard (spatial index, tiles, metadata) and GDAL (feature counts) create, each
# on the table it belongs to: `{table}` is a layer's table, `{column}` its geometry column.
RTREE_TRIGGER = r"rtree_{table}_{column}_(insert\d?|update\d|delete)"
LAYER_TRIGGERS = (
    r"trigger_(insert|delete)_feature_count_{table}",
    r"{table}_(zoom|tile_column|tile_row)_(insert|update)",
)
STANDARD_TRIGGERS = {
    "gpkg_tile_matrix": r"gpkg_tile_matrix_(zoom_level|matrix_width|matrix_height|pixel_x_size|pixel_y_size)_"
    r"(insert|update)",
    "gpkg_metadata": r"gpkg_metadata_md_scope_(insert|update)",
    "gpkg_metadata_reference": r"gpkg_metadata_reference_"
    r"(reference_scope|column_name|row_id_value|timestamp)_(insert|update)",
}


def _expected_trigger(
    name: str, table: str, layers: set[str], geometry_columns: set[tuple[str, str]]
) -> bool:
    """Whether a trigger is one the standard or GDAL puts on `table` (matched by name and table)."""
    lowered = table.lower()

    def matches(pattern: str, **parts: str) -> bool:
        escaped = {key: re.escape(value) for key, value in parts.items()}
        return re.fullmatch(pattern.format(**escaped), name, re.IGNORECASE) is not None

    if lowered in STANDARD_TRIGGERS:
        return matches(STANDARD_TRIGGERS[lowered])
    if any(t.lower() == lowered and matches(RTREE_TRIGGER, table=t, column=c) for t, c in geometry_columns):
        return True
    return table in layers and any(matches(pattern, table=table) for pattern in LAYER_TRIGGERS)


REEXPORT = "Export the layer to a new GeoPackage (e.g. ogr2ogr -f GPKG out.gpkg in.gpkg) and import that"


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _stored_sql(conn: sqlite3.Connection) -> str | None:
    """What in the open GeoPackage is SQL that reading it could run, described; None when there is none."""
    schema = conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE type IN ('trigger', 'view', 'table')"
        " ORDER BY name"
    ).fetchall()
    layers = {row[0] for row in conn.execute("SELECT table_name FROM gpkg_contents")}
    geometry_columns = set(conn.execute("SELECT table_name, column_name FROM gpkg_geometry_columns"))
    for kind, name, table, sql in schema:
        if kind == "view":
            return f"the view '{name}', whose SQL would run when it is read"
        if kind == "trigger" and not _expected_trigger(name, table, layers, geometry_columns):
            return (
                f"the trigger '{name}' on '{table}', which is not one a GeoPackage needs (spatial index, "
                "metadata, feature count)"
            )
        virtual = kind == "table" and (sql or "").upper().startswith("CREATE VIRTUAL TABLE")
        if virtual and not re.search(r"USING\s+rtree\s*\(", sql, re.IGNORECASE):
            return (
                f"the virtual table '{name}', whose module would run when it is read (only rtree is expected)"
            )
    for table in sorted(layers):
        for column in conn.execute(f"PRAGMA table_xinfo({_quoted(table)})"):
            if column[6] in (2, 3):  # hidden 2/3: a generated column, computed by its SQL on every read
                return f"the generated column '{column[1]}' of '{table}', whose SQL would run when it is read"
    return None


def check_geopackage(path: Path) -> None:
    """Refuse a GeoPackage holding SQL that reading it could run (views, triggers of its author's, other
    virtual tables than spatial indexes, generated columns); its schema is read, never run."""
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise ImportProblem(f"{path.name} cannot be opened as a GeoPackage: {exc}") from None
    try:
        conn.execute("PRAGMA trusted_schema = OFF")  # nothing in the file may call functions with effects
        found = _stored_sql(conn)
    except sqlite3.Error as exc:
        raise ImportProblem(
            f"{path.name} is not a GeoPackage (an SQLite database with its tables): {exc}"
        ) from None
    finally:
        conn.close()
    if found is not None:
        raise ImportProblem(f"{path.name} is refused: it holds {found}. {REEXPORT}")


def too_many_features(name: str, limits: ImportLimits) -> ImportTooLarge:
    """The problem of a file with more features than an import takes."""
    return ImportTooLarge(
        f"{name} holds more than {limits.max_features:,} features (it was read no further); an import "
        f"takes at most {limits.max_features:,} (JXPLAN_IMPORT_MAX_FEATURES): split the file"
    )


@contextlib.contextmanager
def checked_source(path: Path, limits: ImportLimits) -> Iterator[Path]:
    """The path GDAL may read for `path`, after the checks of its kind (a zip unpacked for the while)."""
    suffix = path.suffix.lower()
    if suffix == ".zip":
        with unpacked_zip(path, limits) as inner, checked_source(inner, limits) as readable:
            yield readable
        return
    if suffix == ".gpkg":
        check_geopackage(path)
    yield path
