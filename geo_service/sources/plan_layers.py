"""Build the plan layers (demonstration zone, platforms, roads, rail) from the gazetteer and the plan texts.

Run `python -m geo_service.sources.plan_layers` to regenerate the GeoJSON files in `layers/`. Everything is
read from the repository's own copies in `layers/sources/` plus `layers/admin_boundaries.geojson`; the output
is deterministic, so a re-run gives byte-identical files.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import shapely
import yaml
from jsonschema import Draft202012Validator
from pyproj import Transformer
from shapely import wkt as shapely_wkt
from shapely.geometry import (
    LineString,
    MultiLineString,
    MultiPolygon,
    Point,
    Polygon,
    mapping,
    shape,
)
from shapely.geometry.base import BaseGeometry
from shapely.geometry.polygon import orient

from geo_service.catalog import COMMON_PROPERTIES, Layer
from geo_service.sources import outlines

ROOT = Path(__file__).resolve().parents[2]

GAZETTEER = Path("layers/sources/gazetteer.csv")
GAZETTEER_NOTES = Path("layers/sources/gazetteer_notes.md")
PLAN_REFS = Path("layers/sources/plan_refs.yaml")
SEEDS = Path("layers/sources/seeds")
CATALOG = Path("layers/catalog.yaml")
ADMIN_BOUNDARIES = Path("layers/admin_boundaries.geojson")
ZONE_OUTLINE = Path("layers/sources/demonstration_zone_outline.geojson")
EXTRA_ITEMS = Path("layers/sources/extra_items.yaml")
RESEARCH = Path("layers/sources/research.yaml")

# Which gazetteer rows (by the short id before the first "_" of the code) go into which layer.
LAYER_ROWS: dict[str, tuple[str, ...]] = {
    "demonstration_zone": (
        "a01",
        "a02",
        "a03",
        "a04",
        "a05",
        "a06",
        "a07",
        "a08",
        "a09",
        "a10",
        "a11",
        "a12",
        "a13",
    ),
    "g60_platforms": ("b02", "b03", "b04", "b05", "b06", "b07", "b08", "g10"),
    "strategic_platforms": ("e01", "e05", "e06", "e07", "e10", "e11", "e12", "e13", "g08", "g09"),
    "road_projects": ("b01", "d01", "d02", "d03", "d04", "g02"),
    "rail_lines": tuple(f"c{n}" for n in range(20, 33)),
    "rail_stations": tuple(f"c{n:02d}" for n in range(1, 12)) + tuple(f"c{n}" for n in range(40, 57)),
    "hubs": ("e02", "e03", "e04", "e14", "e15", "e16", "g01"),
    "ecology_culture": ("e08", "e09", "e17", "e18", "e19", "e20", "g05"),
    "water_lines": ("e21", "e22", "g03", "g04"),
    "central_city": ("e23", "e24", "e25", "e26", "e27", "g06", "g07"),
}

# Other names of an item, each as the gazetteer or its notes spell it; the build checks they occur there.
ALIASES: dict[str, tuple[str, ...]] = {
    "a02": ("嘉善片区",),
    "a03": ("先行启动区嘉善片区",),
    "b01": ("沪杭高速",),
    "c01": ("嘉兴高铁南站",),
    "c07": ("嘉兴北",),
    "c08": ("海盐西",),
    "c10": ("海宁南站",),
    "c22": ("嘉兴至枫南市域铁路", "嘉枫线"),
    "c23": ("嘉善至西塘市域铁路", "西塘线", "上海示范区线"),
    "c25": ("金山至平湖市域铁路",),
    "c26": ("嘉湖铁路", "嘉湖高铁"),
    "c32": ("杭州机场高铁",),
    "d01": ("南浔至桐乡段及桐乡至德清联络线",),
    "e09": ("运河湾国家湿地公园",),
    "e14": ("嘉兴南湖机场",),
    "e21": ("嘉兴市域外配水工程",),
}

# The name a project carries now where it was renamed after the plan, checked like the aliases.
NAME_CURRENT: dict[str, str] = {
    "c07": "嘉善北站",
    "c08": "海盐站",
    "c10": "海宁观潮站",
    "c22": "嘉兴至枫南市域铁路",
    "c25": "金山至平湖市域铁路",
    "e14": "嘉兴南湖机场",
}


@dataclass(frozen=True)
class Stated:
    """A figure the sources state about an item's extent, and the text that states it.

    The build checks that the evidence occurs in the row's extent_note or in the notes, so no figure is ever a
    guess. source names where a figure found after the gazetteer is stated (it goes into the feature's note);
    unplaced lists stated bounds that no source locates, which the geometry therefore cannot follow.
    """

    value: float
    evidence: str
    source: str = ""
    unplaced: str = ""


# Areas the sources state for an item (km²).
STATED_AREAS: dict[str, Stated] = {
    "a01": Stated(2300.0, "~2300 km²"),
    "a02": Stated(506.97, "506.97 km²"),
    "a03": Stated(157.39, "157.39 km²"),
    "a07": Stated(120.0, "~120 km²"),
    "a11": Stated(
        16.5,
        "16.5 km²",
        unplaced="伍子塘 (west), 茜泾塘 (north) and 320国道/平黎公路 (south): no source gives their "
        "course; the eastern bound, the 上海金山区 border, is the county boundary, but a disc of the stated "
        "area around the estimated centre does not reach it",
    ),
    "b06": Stated(45.0, "平湖 45 km²"),
    "a04": Stated(83.61, "83.61 km²"),
    "a05": Stated(74.49, "74.49 km²"),
    "e07": Stated(
        190.3,
        "王江泾镇 127.3 km² + 油车港镇 63 km² = 190.3 km²",
        source="王江泾 127.3 km²: 百科 entry 王江泾 (a stored copy without its address); 油车港 63 km²: "
        "嘉兴 news page on 油车港镇, http://0573vdy.7192.com/show-news-113091.html",
    ),
    "e09": Stated(6.9648, "696.48 ha"),
    "e18": Stated(0.30, "30 ha"),
    "e19": Stated(1.12, "water 1.12 km²"),
}

# Zones drawn as a band of a stated width either side of their line (the row's WKT), clipped to the claimed
# counties: the width (m, each side) as a Stated figure.
CORRIDORS: dict[str, Stated] = {
    "e17": Stated(
        2000.0,
        "核心监控区 2000 m either side of the main canal course",
        source="生态环境部 at the 2020-09-28 press conference on the 大运河 special plans (北京日报, "
        "https://smelz.cn/article/zixun/detail-27250.html): 大运河有水河段两岸一公里滨河生态空间,"
        "两公里以内的核心监控区; 山东 implementation plan (http://chinagrandcanal.com/view.php?id=7251): "
        "运河主河道两岸各1000米 滨河生态空间, 以2000米为范围划定核心监控区",
    ),
}


@dataclass(frozen=True)
class Band:
    """A zone drawn as the part of an area on one side of a grid line placed to give its stated area.

    The area is the union of counties, or the outline of another row (parent)."""

    side: str
    counties: tuple[str, ...] = ()
    parent: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class Remainder:
    """A zone drawn as another row's outline (parent) less the outlines of its other parts."""

    parent: str
    minus: tuple[str, ...]
    reason: str = ""


# Zones whose outline follows from the towns or counties the sources say they cover.
OUTLINES: dict[str, Band | Remainder] = {
    "a03": Band(
        "north",
        counties=("330421",),
        reason="西塘镇 and 姚庄镇 are the two towns along the northern border of 嘉善县 (with 吴江 and 青浦)",
    ),
    "a04": Band(
        "west",
        parent="a03",
        reason="西塘镇 is the western and 姚庄镇 the eastern of the two towns of the pilot area",
    ),
    "a05": Remainder(
        "a03",
        ("a04",),
        reason="姚庄镇 is the pilot area less 西塘镇 (it borders 上海金山区枫泾镇 to the east)",
    ),
}

# Rail lines drawn through the points of their stations in order (short ids of built station or hub rows), so
# a line follows its stations when one moves. START and END keep the first or last vertex of the gazetteer
# line where the line runs on past its station rows (a landfall, a terminus with no station row).
START, END = "start", "end"
LINE_STOPS: dict[str, tuple[str, ...]] = {
    "c20": ("c07", "c01", "c08", END),
    "c21": ("c09", "c01", "c04"),
    "c22": ("c01", "c46", "c47", "c48", "c49", "c50", "c06", "c51"),
    "c23": ("c06", "c52", "c53", "c54", "c55", "c56"),
    "c24": ("c56", "c54", "c06", "c03"),
    "c25": ("c40", "c41", "c42", "c43", "c09", "c44", "c45"),
    "c26": ("c01", "e14", END),
    "c32": ("c04", "c10", END),
}

# Features drawn at exactly the same place, declared so (each group with why); the build fails on any other
# coincidence and on a declared group that no longer coincides.
CO_LOCATED: dict[str, tuple[str, ...]] = {
    "the hub is the station": ("c01_jiaxing_south_stn", "g01_jiaxing_south_hub"),
    "GeoNames 全塘 stands in for both": ("c40_stn", "e02_port_dushan"),
    "GeoNames 乍浦 stands in for all three": ("c42_stn", "e03_port_zhapu", "e16_comprehensive_bonded_zone"),
    "GeoNames 西塘桥 stands in for both": ("c44_stn", "e04_port_haiyan"),
}

# Features whose geometry leaves Jiaxing, with where: a short id and its text. The build fails when a
# geometry leaves Jiaxing undeclared, or a declared one does not.
OUTSIDE_JIAXING: dict[str, str] = {
    "a01": "上海市青浦区 and 苏州市吴江区: the whole demonstration zone, of which 嘉善县 is the Jiaxing part",
    "c22": "上海市金山区: the line ends at 枫南站 (c51_stn), whose estimated point lies across the border",
    "c23": "上海市青浦区: the line runs on to 水乡客厅站 (c56_stn) north of the 太浦河",
    "c24": "上海市青浦区: the proposal ran on to 水乡客厅 (c56_stn) north of the 太浦河",
    "c51": "上海市金山区: the estimated point lies about 630 m across the border, within its estimated error",
    "c56": "上海市青浦区: 水乡客厅站 lies north of the 太浦河, outside Jiaxing",
    "d01": "湖州市南浔区: the line starts at 练市, where the Jiaxing section meets phase I",
    "e21": "杭州市余杭区: the water intake at 仁和 and the first part of the pipeline",
}
# How far beyond the city outline a geometry may reach before it counts as outside (the outline's own error).
OUTSIDE_TOLERANCE_M = 200.0

# Polygon rows whose geometry is a whole county of layers/admin_boundaries.geojson.
WHOLE_COUNTY: dict[str, str] = {"a02": "330421"}
# The polygon row drawn from the demonstration-zone outline file.
ZONE_OUTLINE_ROW = "a01"

CIRCLE_VERTICES = 64
CIRCLE_RADIUS_MIN_M = 500.0
CIRCLE_RADIUS_MAX_M = 3000.0
PROJECTED_CRS = "EPSG:4549"
DECIMALS = 7
JIAXING_ADCODE = "330400"
NOT_LOCATED_MARK = "NOT LOCATED"

GEOMETRY_TYPES = {"MultiPolygon": MultiPolygon, "MultiLineString": MultiLineString, "Point": Point}


class PlanLayerError(ValueError):
    """An input is inconsistent or a built feature is invalid; the message names the item."""


@dataclass(frozen=True)
class PlanRef:
    """Where a seed text names an item."""

    seed: str
    section: str
    text: str


@dataclass(frozen=True)
class County:
    """A Jiaxing county polygon from the admin boundaries layer."""

    adcode: str
    name_zh: str
    geometry: BaseGeometry


@dataclass(frozen=True)
class Built:
    """The geometry of one feature and how it was made."""

    geometry: BaseGeometry | None
    accuracy: str
    method: str
    note_suffix: str = ""


def short_id(code: str) -> str:
    """The short id of a gazetteer code ("a01_demo_zone" → "a01")."""
    return code.split("_", 1)[0]


def read_gazetteer(root: Path) -> dict[str, dict[str, str]]:
    """Gazetteer rows keyed by short id."""
    rows: dict[str, dict[str, str]] = {}
    with (root / GAZETTEER).open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            key = short_id(row["code"])
            if key in rows:
                raise PlanLayerError(f"{row['code']}: short id {key} occurs twice in the gazetteer")
            rows[key] = row
    return rows


GAZETTEER_FIELDS = (
    "code", "group", "category", "name_zh", "name_en", "geom_kind", "lon", "lat", "wkt", "extent_note",
    "county_adcode", "county_name", "status", "status_date", "source_title", "source_url", "source_datum",
    "confidence", "est_error_m", "method",
)  # fmt: skip
# What a research entry may change in a row, and what it must give.
RESEARCH_FIELDS = (
    "lon", "lat", "wkt", "confidence", "est_error_m", "source_title", "source_url", "source_datum", "method",
)  # fmt: skip
RESEARCH_REQUIRED = ("confidence", "est_error_m", "source_title", "source_url", "method", "evidence")
CONFIDENCE_RANK = {"low": 0, "medium": 1, "high": 2}


def read_extra_items(root: Path, known: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Items the plan names beyond the gazetteer, as rows with the gazetteer's fields, keyed by short id."""
    raw = yaml.safe_load((root / EXTRA_ITEMS).read_text(encoding="utf-8"))
    rows: dict[str, dict[str, str]] = {}
    for code, entry in raw.items():
        unknown = set(entry) - set(GAZETTEER_FIELDS)
        if unknown:
            raise PlanLayerError(f"{EXTRA_ITEMS}: {code}: unknown fields {sorted(unknown)}")
        row = {field: "" for field in GAZETTEER_FIELDS} | {k: str(v) for k, v in entry.items()}
        row["code"] = code
        row["group"] = row["group"] or "G"
        key = short_id(code)
        if key in known or key in rows:
            raise PlanLayerError(f"{EXTRA_ITEMS}: short id {key} is already used")
        rows[key] = row
    return rows


def read_research(root: Path, rows: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Later location research by short id, each entry checked: sourced, and naming a known row."""
    raw = yaml.safe_load((root / RESEARCH).read_text(encoding="utf-8")) or {}
    research: dict[str, dict[str, str]] = {}
    for code, entry in raw.items():
        key = short_id(code)
        if key not in rows or rows[key]["code"] != code:
            raise PlanLayerError(f"{RESEARCH}: {code} is not a row of the gazetteer or the extra items")
        unknown = set(entry) - set(RESEARCH_FIELDS) - {"evidence"}
        missing = [f for f in RESEARCH_REQUIRED if not str(entry.get(f) or "").strip()]
        if unknown or missing:
            raise PlanLayerError(f"{RESEARCH}: {code}: unknown {sorted(unknown)}, missing {missing}")
        if entry["confidence"] not in CONFIDENCE_RANK:
            raise PlanLayerError(f"{RESEARCH}: {code}: unknown confidence {entry['confidence']!r}")
        research[key] = {k: str(v) for k, v in entry.items()}
    return research


def researched(row: dict[str, str], entry: dict[str, str]) -> dict[str, str]:
    """A row with a research entry applied: the new location and its source first, the earlier kept after."""
    new = dict(row)
    for field in RESEARCH_FIELDS:
        if field in entry:
            new[field] = entry[field]
    if "wkt" not in entry and "lon" in entry:
        new["wkt"] = f"POINT ({float(entry['lon']):.6f} {float(entry['lat']):.6f})"
    for field in ("source_title", "source_url"):
        if row[field].strip():
            new[field] = f"{entry[field]} | {row[field]}"
    earlier = representative_point(row)
    where = f" at {earlier[0]:.6f}, {earlier[1]:.6f}" if earlier else ""
    new["method"] = (
        f"{sentence(entry['method'])} Evidence: {sentence(entry['evidence'])} Earlier (gazetteer, "
        f"{row['confidence']} confidence{where}): {sentence(row['method'])}"
    )
    return new


def iso_date(value: str) -> str | None:
    """The first date of a status text (YYYY-MM-DD, YYYY-MM or YYYY), None when it has none."""
    match = re.search(r"(?<!\d)(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?(?!\d)", value)
    if not match:
        return None
    return "-".join(part for part in match.groups() if part)


def read_plan_refs(root: Path) -> dict[str, PlanRef | None]:
    """The plan references, each checked to occur verbatim in its seed copy."""
    raw = yaml.safe_load((root / PLAN_REFS).read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise PlanLayerError(f"{PLAN_REFS}: expected a mapping of code to reference")
    refs: dict[str, PlanRef | None] = {}
    for code, entry in raw.items():
        if entry is None:
            refs[code] = None
            continue
        ref = PlanRef(seed=entry["seed"], section=entry["section"], text=entry["text"])
        seed_text = (root / SEEDS / ref.seed).read_text(encoding="utf-8")
        if ref.text not in seed_text:
            raise PlanLayerError(f"{code}: plan text does not occur verbatim in {ref.seed}")
        refs[code] = ref
    return refs


def read_layers(root: Path) -> dict[str, Layer]:
    """The catalogue entries of the layers this builder writes."""
    raw = yaml.safe_load((root / CATALOG).read_text(encoding="utf-8"))
    layers = {entry["id"]: Layer.model_validate(entry) for entry in raw["layers"]}
    missing = [layer_id for layer_id in LAYER_ROWS if layer_id not in layers]
    if missing:
        raise PlanLayerError(f"{CATALOG}: layers {missing} are not declared")
    return {layer_id: layers[layer_id] for layer_id in LAYER_ROWS}


def read_counties(root: Path, gazetteer: dict[str, dict[str, str]]) -> dict[str, County]:
    """Jiaxing county polygons keyed by adcode, named as in the gazetteer's admin rows."""
    path = root / ADMIN_BOUNDARIES
    if not path.exists():
        raise PlanLayerError(f"{ADMIN_BOUNDARIES} is missing: the county polygons are needed to clip")
    names = {
        row["code"].split("_", 1)[1]: row["name_zh"] for row in gazetteer.values() if row["group"] == "F"
    }
    counties: dict[str, County] = {}
    for feature in json.loads(path.read_text(encoding="utf-8"))["features"]:
        adcode = feature["properties"]["adcode"]
        if adcode == JIAXING_ADCODE:
            continue
        geometry = shape(feature["geometry"])
        if not geometry.is_valid:
            raise PlanLayerError(f"{ADMIN_BOUNDARIES}: polygon of {adcode} is not valid")
        counties[adcode] = County(
            adcode, names.get(adcode, feature["properties"].get("name_zh", adcode)), geometry
        )
    return counties


def read_zone_outline(root: Path) -> tuple[BaseGeometry, dict[str, Any]] | None:
    """The whole demonstration zone outline and its properties, when the file exists."""
    path = root / ZONE_OUTLINE
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    feature = data["features"][0] if data.get("type") == "FeatureCollection" else data
    geometry = shape(feature["geometry"])
    if not geometry.is_valid:
        raise PlanLayerError(f"{ZONE_OUTLINE}: the outline is not a valid geometry")
    return geometry, dict(feature.get("properties") or {})


def county_codes(value: str) -> list[str]:
    """Adcodes of a county_adcode cell: the leading 6 digits of each ";"-separated entry."""
    codes: list[str] = []
    for entry in value.split(";"):
        match = re.match(r"\s*(\d{6})", entry)
        if match and match.group(1) not in codes:
            codes.append(match.group(1))
    return codes


def number_or_none(value: str) -> int | float | None:
    """A CSV number cell as int (when integral) or float; None when empty."""
    if not value.strip():
        return None
    number = float(value)
    return int(number) if number.is_integer() else number


def text_or_none(value: str) -> str | None:
    """A CSV text cell, None when empty."""
    return value if value.strip() else None


def sentence(text: str) -> str:
    """A method text ending in exactly one full stop, so that further sentences can follow."""
    text = text.strip()
    return text if text.endswith((".", "。")) else text + "."


def unplaced(stated: Stated) -> str:
    """The closing words of a method text: the stated bounds the outline could not follow, if any."""
    if not stated.unplaced:
        return "outline not yet digitised."
    return f"stated bounds not placed: {stated.unplaced}; outline not yet digitised."


def rounded(geometry: BaseGeometry) -> BaseGeometry:
    """The geometry snapped to the 7-decimal grid (kept valid) with RFC 7946 ring orientation."""
    snapped = shapely.set_precision(geometry, 10**-DECIMALS)
    if isinstance(snapped, Polygon):
        return orient(snapped, 1.0)
    if isinstance(snapped, MultiPolygon):
        return MultiPolygon([orient(part, 1.0) for part in snapped.geoms])
    return snapped


def polygons_of(geometry: BaseGeometry) -> MultiPolygon | None:
    """The polygonal part of a geometry as a MultiPolygon; None when there is none."""
    if isinstance(geometry, Polygon):
        parts = [geometry]
    elif isinstance(geometry, MultiPolygon):
        parts = list(geometry.geoms)
    elif hasattr(geometry, "geoms"):
        parts = [g for g in geometry.geoms if isinstance(g, Polygon)]
    else:
        parts = []
    parts = [p for p in parts if not p.is_empty and p.area > 0]
    return MultiPolygon(parts) if parts else None


def coordinates(value: Any) -> Any:
    """GeoJSON coordinates as nested lists of numbers rounded to 7 decimals."""
    if isinstance(value, (list, tuple)):
        if value and isinstance(value[0], (int, float)):
            return [round(float(v), DECIMALS) for v in value]
        return [coordinates(v) for v in value]
    return value


def geojson_geometry(geometry: BaseGeometry | None) -> dict[str, Any] | None:
    """A shapely geometry as a GeoJSON dict with 7-decimal coordinates."""
    if geometry is None:
        return None
    data = mapping(geometry)
    return {"type": data["type"], "coordinates": coordinates(data["coordinates"])}


class Projector:
    """WGS 84 ↔ EPSG:4549 (CGCS2000 3° Gauss–Krüger, CM 120°E), the metric CRS for circles and areas."""

    def __init__(self) -> None:
        self._forward = Transformer.from_crs("EPSG:4326", PROJECTED_CRS, always_xy=True)
        self._back = Transformer.from_crs(PROJECTED_CRS, "EPSG:4326", always_xy=True)

    def circle(self, lon: float, lat: float, radius_m: float) -> Polygon:
        """A 64-vertex circle built in EPSG:4549 around a WGS 84 point, returned in WGS 84."""
        x0, y0 = self._forward.transform(lon, lat)
        ring = []
        for k in range(CIRCLE_VERTICES):
            angle = 2 * math.pi * k / CIRCLE_VERTICES
            ring.append(
                self._back.transform(x0 + radius_m * math.cos(angle), y0 + radius_m * math.sin(angle))
            )
        return Polygon(ring)

    def distance_m(self, a: BaseGeometry, b: BaseGeometry) -> float:
        """Distance between two WGS 84 geometries in EPSG:4549, metres."""
        forward = self._forward.transform
        return float(
            shapely.transform(a, forward, interleaved=False).distance(
                shapely.transform(b, forward, interleaved=False)
            )
        )

    def outside_m(self, area: BaseGeometry, geometry: BaseGeometry) -> float:
        """How far (m, EPSG:4549) the farthest part of geometry lies outside area; 0 when inside."""
        forward = self._forward.transform
        area_m = shapely.transform(area, forward, interleaved=False)
        outside = shapely.transform(geometry, forward, interleaved=False).difference(area_m)
        if outside.is_empty:
            return 0.0
        return float(max(area_m.distance(Point(xy)) for xy in shapely.get_coordinates(outside)))

    def area_km2(self, geometry: BaseGeometry) -> float:
        """Area of a WGS 84 geometry in EPSG:4549, km²."""
        return float(shapely.transform(geometry, self._forward.transform, interleaved=False).area) / 1e6


def radius_for_area(area_km2: float) -> float:
    """Circumradius (m) of the regular 64-gon whose area is area_km2."""
    n = CIRCLE_VERTICES
    return math.sqrt(2 * area_km2 * 1e6 / (n * math.sin(2 * math.pi / n)))


def county_label(codes: Iterable[str], counties: dict[str, County]) -> str:
    """A readable list of counties such as "嘉善县 (330421)"."""
    return ", ".join(f"{counties[c].name_zh} ({c})" for c in codes)


def representative_point(row: dict[str, str]) -> tuple[float, float] | None:
    """The gazetteer point of a row (lon, lat), if it has one."""
    if not row["lon"].strip() or not row["lat"].strip():
        return None
    return float(row["lon"]), float(row["lat"])


class Builder:
    """Turns gazetteer rows into validated features of the plan layers."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.gazetteer = read_gazetteer(root)
        self.gazetteer_confidence = {key: row["confidence"] for key, row in self.gazetteer.items()}
        self.gazetteer |= read_extra_items(root, self.gazetteer)
        self.research = read_research(root, self.gazetteer)
        for key, entry in self.research.items():
            self.gazetteer[key] = researched(self.gazetteer[key], entry)
        self.notes = (root / GAZETTEER_NOTES).read_text(encoding="utf-8")
        self.refs = read_plan_refs(root)
        self.layers = read_layers(root)
        self.counties = read_counties(root, self.gazetteer)
        self.outline = read_zone_outline(root)
        self.projector = Projector()
        self.metric = outlines.Metric()
        self.validators: dict[str, Draft202012Validator] = {}
        self.outline_cache: dict[str, BaseGeometry] = {}
        self.city = shapely.union_all([county.geometry for county in self.counties.values()])

    # -- geometry ------------------------------------------------------------------------------------

    def build_geometry(self, layer: Layer, row: dict[str, str]) -> Built:
        """The geometry of a row in a layer, its accuracy class and a description of how it was made."""
        key = short_id(row["code"])
        method = row["method"].strip()
        point = representative_point(row)
        if row["extent_note"].startswith(NOT_LOCATED_MARK):
            where = (
                f" Placeholder point (not drawn): {point[0]:.6f}, {point[1]:.6f} (WGS 84)." if point else ""
            )
            return Built(
                None,
                "unlocated",
                sentence(method) + " No geometry: the gazetteer marks the item as not located in any source.",
                where,
            )
        if not row["wkt"].strip():
            return Built(None, "unlocated", sentence(method) + " No geometry: no source gives a position.")
        source = shapely_wkt.loads(row["wkt"])
        if layer.geometry_type == "Point":
            return self._point(row, source, method)
        if layer.geometry_type == "MultiLineString":
            if key in LINE_STOPS:
                return self._through_stops(row, source, method)
            return self._line(row, source, method)
        if key in CORRIDORS:
            return self._corridor(row, source, method)
        if key == ZONE_OUTLINE_ROW:
            return self._zone_outline(row, method)
        if key in WHOLE_COUNTY:
            return self._whole_county(WHOLE_COUNTY[key], method)
        if key in OUTLINES:
            return self._outline_of(row, method)
        if isinstance(source, (Polygon, MultiPolygon)):
            return Built(polygons_of(source), self._accuracy(row), method)
        if isinstance(source, Point):
            return self._circle(row, source, method)
        raise PlanLayerError(f"{row['code']}: a {source.geom_type} cannot go into a polygon layer")

    def _accuracy(self, row: dict[str, str]) -> str:
        confidence = row["confidence"]
        if confidence in ("high", "medium"):
            return "approximate"
        if confidence == "low":
            return "schematic"
        raise PlanLayerError(f"{row['code']}: unknown confidence {confidence!r}")

    def _point(self, row: dict[str, str], source: BaseGeometry, method: str) -> Built:
        if not isinstance(source, Point):
            raise PlanLayerError(f"{row['code']}: a station needs a POINT, got {source.geom_type}")
        return Built(source, self._accuracy(row), method)

    def _line(self, row: dict[str, str], source: BaseGeometry, method: str) -> Built:
        if isinstance(source, LineString):
            return Built(MultiLineString([source]), self._accuracy(row), method)
        if isinstance(source, MultiLineString):
            return Built(source, self._accuracy(row), method)
        if isinstance(source, Point):
            return Built(
                None,
                "unlocated",
                sentence(method) + " Only a representative point is known, not the line, so no geometry is "
                "drawn; the point is given in the note.",
                f" Representative point only (not drawn): {source.x:.6f}, {source.y:.6f} (WGS 84).",
            )
        raise PlanLayerError(f"{row['code']}: a {source.geom_type} cannot go into a line layer")

    def _through_stops(self, row: dict[str, str], source: BaseGeometry, method: str) -> Built:
        """A line through the built points of its stations in order, ends kept from the gazetteer line."""
        if not isinstance(source, LineString):
            raise PlanLayerError(
                f"{row['code']}: a line with stops needs a LINESTRING, got {source.geom_type}"
            )
        vertices: list[tuple[float, float]] = []
        named: list[str] = []
        for stop in LINE_STOPS[short_id(row["code"])]:
            if stop in (START, END):
                x, y = source.coords[0 if stop == START else -1][:2]
                vertices.append((x, y))
                named.append(f"the {stop} vertex of the gazetteer line ({x:.6f}, {y:.6f})")
                continue
            stop_row = self.gazetteer.get(stop)
            point = shapely_wkt.loads(stop_row["wkt"]) if stop_row and stop_row["wkt"].strip() else None
            if stop_row is None or not isinstance(point, Point):
                raise PlanLayerError(f"{row['code']}: stop {stop} is not a located point row")
            vertices.append((point.x, point.y))
            named.append(f"{stop_row['name_zh']} ({stop_row['code']})")
        return Built(
            MultiLineString([LineString(vertices)]),
            self._accuracy(row),
            f"Line through the points of its stations in order, as built in their own layers: "
            f"{' → '.join(named)}; straight between them, not a surveyed alignment. Gazetteer line: "
            f"{sentence(method)}",
        )

    def _corridor(self, row: dict[str, str], source: BaseGeometry, method: str) -> Built:
        """A band of the stated width either side of the row's line, clipped to its claimed counties."""
        if not isinstance(source, (LineString, MultiLineString)):
            raise PlanLayerError(f"{row['code']}: a corridor needs a line, got {source.geom_type}")
        width = self.checked(row, CORRIDORS[short_id(row["code"])])
        claimed = [c for c in county_codes(row["county_adcode"]) if c in self.counties]
        if not claimed:
            raise PlanLayerError(f"{row['code']}: a corridor must claim a Jiaxing county")
        clip = shapely.union_all([self.counties[c].geometry for c in claimed])
        geometry = outlines.corridor(self.metric, source, clip, width.value)
        return Built(
            polygons_of(geometry),
            "schematic",
            f"Polygon: every point within {width.value:.0f} m ({PROJECTED_CRS}) of the line, the stated "
            f"width of the {width.evidence}, clipped to the {county_label(claimed, self.counties)} boundary "
            f"of {ADMIN_BOUNDARIES.as_posix()} (about {self.metric.area_km2(geometry):.0f} km²). The line "
            f"itself is schematic: {sentence(method)}",
        )

    def _zone_outline(self, row: dict[str, str], method: str) -> Built:
        if self.outline is None:
            # The whole zone lies mostly outside Jiaxing and its point is an estimate in Shanghai: without the
            # outline nothing honest can be drawn; the Jiaxing part is row a02.
            return Built(
                None,
                "unlocated",
                f"Representative point: {sentence(method)} No geometry: the zone outline file "
                f"{ZONE_OUTLINE.as_posix()} is not available; the Jiaxing part of the zone is the 嘉善县 "
                "polygon of a02_jiashan_part.",
            )
        geometry, properties = self.outline
        adcodes = ", ".join(properties.get("adcodes", []))
        area = properties.get("area_km2")
        stated = STATED_AREAS.get(ZONE_OUTLINE_ROW)
        area_text = f"; {area} km² by that file" if area is not None else ""
        if area is not None and stated is not None:
            area_text += f", against {stated.evidence} stated"
        return Built(
            polygons_of(geometry),
            "approximate",
            f"Representative point: {sentence(method)} Polygon: the zone outline from "
            f"{ZONE_OUTLINE.as_posix()} (the boundaries of adcodes {adcodes}{area_text}).",
        )

    def _whole_county(self, adcode: str, method: str) -> Built:
        county = self.counties.get(adcode)
        if county is None:
            raise PlanLayerError(f"{ADMIN_BOUNDARIES}: county {adcode} is missing")
        return Built(
            polygons_of(county.geometry),
            "approximate",
            f"Representative point: {sentence(method)} Polygon: the {county.name_zh} ({adcode}) "
            f"boundary from {ADMIN_BOUNDARIES.as_posix()}, since the item is the whole county.",
        )

    def _outline_geometry(self, key: str) -> BaseGeometry:
        """The outline of a row listed in OUTLINES (parents first), in WGS 84."""
        if key in self.outline_cache:
            return self.outline_cache[key]
        spec = OUTLINES[key]
        if isinstance(spec, Band):
            if spec.parent is not None:
                area = self._outline_geometry(spec.parent)
            else:
                area = shapely.union_all([self.counties[c].geometry for c in spec.counties])
            stated = STATED_AREAS.get(key)
            if stated is None:
                raise PlanLayerError(f"{key}: a band outline needs a stated area")
            geometry, _ = outlines.band(self.metric, area, spec.side, stated.value)
        else:
            geometry = self._outline_geometry(spec.parent)
            for other in spec.minus:
                geometry = geometry.difference(self._outline_geometry(other))
        self.outline_cache[key] = geometry
        return geometry

    def _outline_of(self, row: dict[str, str], method: str) -> Built:
        key = short_id(row["code"])
        spec = OUTLINES[key]
        stated = STATED_AREAS.get(key)
        area_text = f" of the stated {stated.evidence}" if stated else ""
        if isinstance(spec, Band):
            within = (
                f"the outline of {self.gazetteer[spec.parent]['code']}"
                if spec.parent
                else f"the {county_label(spec.counties, self.counties)} boundary of {ADMIN_BOUNDARIES}"
            )
            how = (
                f"the {spec.side}ern part{area_text} of {within}, cut along a straight grid line "
                f"({PROJECTED_CRS}) placed to give that area"
            )
        else:
            others = ", ".join(self.gazetteer[k]["code"] for k in spec.minus)
            how = f"the outline of {self.gazetteer[spec.parent]['code']} less {others}"
        return Built(
            polygons_of(self._outline_geometry(key)),
            "schematic",
            f"Representative point: {sentence(method)} Polygon: {how}, because {spec.reason}; the real "
            "town boundaries are not in the sources, so the cut line is schematic.",
        )

    def _sized_disc(self, row: dict[str, str], point: Point, method: str) -> Built:
        key = short_id(row["code"])
        stated = STATED_AREAS[key]
        claimed = [c for c in county_codes(row["county_adcode"]) if c in self.counties]
        if not claimed:
            raise PlanLayerError(f"{row['code']}: a zone with a stated area must claim a Jiaxing county")
        clip = shapely.union_all([self.counties[c].geometry for c in claimed])
        try:
            geometry, radius = outlines.sized_disc(self.metric, point, clip, stated.value)
        except outlines.OutlineError as error:
            raise PlanLayerError(f"{row['code']}: {error}") from error
        return Built(
            polygons_of(geometry),
            "schematic",
            f"Representative point: {sentence(method)} Polygon: schematic disc around the point "
            f"({point.x:.6f}, {point.y:.6f}), clipped to the {county_label(claimed, self.counties)} boundary "
            f"of {ADMIN_BOUNDARIES.as_posix()}, its radius ({radius:.0f} m, {PROJECTED_CRS}) chosen so "
            f"that the clipped area is the stated {stated.evidence}; {unplaced(stated)}",
        )

    def _circle(self, row: dict[str, str], point: Point, method: str) -> Built:
        key = short_id(row["code"])
        claimed = county_codes(row["county_adcode"])
        jiaxing = [c for c in claimed if c in self.counties]
        outside = [c for c in claimed if c not in self.counties]
        if key in STATED_AREAS and jiaxing:
            return self._sized_disc(row, point, method)
        error = number_or_none(row["est_error_m"])
        if error is None:
            raise PlanLayerError(f"{row['code']}: no stated area and no est_error_m to size the circle")
        radius = min(max(float(error) / 2, CIRCLE_RADIUS_MIN_M), CIRCLE_RADIUS_MAX_M)
        size = (
            f"of radius {radius:.0f} m (half the estimated error of {error} m, kept within "
            f"{CIRCLE_RADIUS_MIN_M:.0f}–{CIRCLE_RADIUS_MAX_M:.0f} m; no area is stated)"
        )
        head = (
            f"Representative point: {sentence(method)} Polygon: schematic circle {size} around the "
            f"representative point ({point.x:.6f}, {point.y:.6f}), a {CIRCLE_VERTICES}-vertex polygon built "
            f"in {PROJECTED_CRS} and transformed to WGS 84"
        )
        if not jiaxing:
            return Built(
                None,
                "unlocated",
                head
                + f"; not drawn: it claims no Jiaxing county ({', '.join(claimed) or 'none'}) to clip it to.",
            )
        circle = self.projector.circle(point.x, point.y, radius)
        clip_area = shapely.union_all([self.counties[c].geometry for c in jiaxing])
        clipped = polygons_of(circle.intersection(clip_area))
        clip_text = (
            f", clipped to the {county_label(jiaxing, self.counties)} boundary of "
            f"{ADMIN_BOUNDARIES.as_posix()}"
        )
        if outside:
            clip_text += f" (the claimed {', '.join(outside)} lies outside Jiaxing and is not drawn)"
        if clipped is None:
            return Built(None, "unlocated", head + clip_text + "; not drawn: nothing is left after clipping.")
        clipped = rounded(clipped)
        if not clipped.is_valid or clipped.is_empty:
            return Built(
                None, "unlocated", head + clip_text + "; not drawn: the clipped polygon is not valid."
            )
        full = self.projector.area_km2(circle)
        kept = self.projector.area_km2(clipped)
        removed = 1 - kept / full
        if removed > 0.0005:
            clip_text += (
                f"; clipping removed {removed * 100:.1f} % of the circle, leaving about {kept:.3g} km²"
            )
        return Built(clipped, "schematic", head + clip_text + "; outline not yet digitised.")

    # -- properties ----------------------------------------------------------------------------------

    def _validator(self, layer: Layer) -> Draft202012Validator:
        if layer.id not in self.validators:
            self.validators[layer.id] = Draft202012Validator(layer.json_schema)
        return self.validators[layer.id]

    def aliases(self, row: dict[str, str]) -> list[str]:
        """Aliases of a row, each checked against the gazetteer row and the notes."""
        found: list[str] = []
        for alias in ALIASES.get(short_id(row["code"]), ()):
            if alias not in self.notes and not any(alias in value for value in row.values()):
                raise PlanLayerError(f"{row['code']}: alias {alias!r} is not in the gazetteer or its notes")
            found.append(alias)
        return found

    def name_current(self, row: dict[str, str]) -> str | None:
        """The current official name of a renamed item, checked against the row and the notes."""
        name = NAME_CURRENT.get(short_id(row["code"]))
        if name is not None and name not in self.notes and not any(name in v for v in row.values()):
            raise PlanLayerError(f"{row['code']}: current name {name!r} is not in the gazetteer or its notes")
        return name

    def co_located_with(self, code: str) -> list[str]:
        """The other codes of the declared co-location groups a code belongs to."""
        return sorted({c for group in CO_LOCATED.values() if code in group for c in group} - {code})

    def outside_jiaxing(self, row: dict[str, str], built: Built) -> str | None:
        """Where the geometry leaves Jiaxing, as declared; the build fails on an undeclared or false claim."""
        declared = OUTSIDE_JIAXING.get(short_id(row["code"]))
        if built.geometry is None:
            if declared is not None:
                raise PlanLayerError(f"{row['code']}: declared outside Jiaxing but has no geometry")
            return None
        reach = self.projector.outside_m(self.city, built.geometry)
        if reach > OUTSIDE_TOLERANCE_M and declared is None:
            raise PlanLayerError(
                f"{row['code']}: the geometry reaches {reach:.0f} m beyond Jiaxing (see OUTSIDE_JIAXING)"
            )
        if reach <= OUTSIDE_TOLERANCE_M and declared is not None:
            raise PlanLayerError(f"{row['code']}: declared outside Jiaxing but lies inside")
        return declared

    def checked(self, row: dict[str, str], stated: Stated) -> Stated:
        """A stated figure whose evidence occurs in the row's extent_note or in the notes."""
        if stated.evidence not in row["extent_note"] and stated.evidence not in self.notes:
            raise PlanLayerError(
                f"{row['code']}: stated text {stated.evidence!r} is not in the row or the notes"
            )
        return stated

    def stated_area(self, row: dict[str, str]) -> float | None:
        """The area stated for a row, checked against its extent_note and the notes."""
        stated = STATED_AREAS.get(short_id(row["code"]))
        return None if stated is None else self.checked(row, stated).value

    def stated_sources(self, row: dict[str, str]) -> str:
        """Where the figures found after the gazetteer are stated, as sentences for the feature's note."""
        key = short_id(row["code"])
        found = [table[key] for table in (STATED_AREAS, CORRIDORS) if key in table]
        return "".join(f" Stated: {self.checked(row, s).evidence} ({s.source})." for s in found if s.source)

    def feature(self, layer: Layer, row: dict[str, str]) -> dict[str, Any]:
        """One GeoJSON feature, validated against the layer's property schema and geometry type."""
        code = row["code"]
        built = self._checked_against_counties(row, self._on_grid(layer, self.build_geometry(layer, row)))
        if code not in self.refs:
            raise PlanLayerError(f"{code}: no entry in {PLAN_REFS} (write null when no seed names it)")
        ref = self.refs[code]
        note = text_or_none(row["extent_note"])
        suffix = built.note_suffix + self.stated_sources(row)
        if suffix:
            note = (note or "").rstrip() + suffix
        properties: dict[str, Any] = {
            "code": code,
            "name_zh": row["name_zh"],
            "name_en": row["name_en"],
            "category": row["category"],
            "status": row["status"],
            "status_date": iso_date(row["status_date"]),
            "county": county_codes(row["county_adcode"]),
            "plan_section": ref.section if ref else None,
            "plan_text": ref.text if ref else None,
            "plan_source": ref.seed if ref else None,
            "source": text_or_none(row["source_title"]),
            "source_url": text_or_none(row["source_url"]),
            "accuracy": built.accuracy,
            "accuracy_m": number_or_none(row["est_error_m"]),
            "geometry_method": built.method,
            "aliases": self.aliases(row),
            "note": note,
            "stated_area_km2": self.stated_area(row),
            "gazetteer_confidence": text_or_none(self.gazetteer_confidence.get(short_id(code), "")),
            "source_datum": text_or_none(row["source_datum"]),
            "location_confidence": text_or_none(row["confidence"]) if built.geometry is not None else None,
            "name_current": self.name_current(row),
            "status_note": text_or_none(row["status_date"]),
            "co_located_with": self.co_located_with(code),
            "outside_jiaxing": self.outside_jiaxing(row, built),
        }
        if list(properties)[: len(COMMON_PROPERTIES)] != list(COMMON_PROPERTIES):
            raise PlanLayerError(f"{code}: property order drifted from the common schema")
        errors = sorted(self._validator(layer).iter_errors(properties), key=str)
        if errors:
            raise PlanLayerError(f"{code}: {errors[0].json_path}: {errors[0].message}")
        self._check_geometry(layer, code, built)
        return {"type": "Feature", "properties": properties, "geometry": geojson_geometry(built.geometry)}

    def _on_grid(self, layer: Layer, built: Built) -> Built:
        """The built geometry snapped to the output grid and kept in the layer's (multi) geometry type."""
        if built.geometry is None:
            return built
        geometry = rounded(built.geometry)
        if layer.geometry_type == "MultiPolygon":
            geometry = polygons_of(geometry)
        elif layer.geometry_type == "MultiLineString" and isinstance(geometry, LineString):
            geometry = MultiLineString([geometry])
        if geometry is None:
            raise PlanLayerError("a polygon vanished when snapped to the 7-decimal grid")
        return Built(geometry, built.accuracy, built.method, built.note_suffix)

    def _checked_against_counties(self, row: dict[str, str], built: Built) -> Built:
        """The built geometry, with a remark when it misses the counties its row claims.

        A proxy point may fall just across a boundary from the county the gazetteer assigns; it is kept as
        given (moving it would invent a location) when the miss is within the row's own estimated error.
        """
        claimed = [c for c in county_codes(row["county_adcode"]) if c in self.counties]
        if built.geometry is None or not claimed:
            return built
        area = shapely.union_all([self.counties[c].geometry for c in claimed])
        if area.intersects(built.geometry):
            return built
        distance = self.projector.distance_m(area, built.geometry)
        error = number_or_none(row["est_error_m"])
        if error is None or distance > error:
            raise PlanLayerError(
                f"{row['code']}: geometry lies {distance:.0f} m outside its claimed counties {claimed}"
            )
        remark = (
            f" The geometry lies about {round(distance, -1):.0f} m outside the claimed "
            f"{county_label(claimed, self.counties)} boundary, within its estimated error of {error} m; "
            "it is kept as the gazetteer gives it."
        )
        return Built(built.geometry, built.accuracy, sentence(built.method) + remark, built.note_suffix)

    def _check_geometry(self, layer: Layer, code: str, built: Built) -> None:
        if (built.geometry is None) != (built.accuracy == "unlocated"):
            raise PlanLayerError(f"{code}: accuracy {built.accuracy} does not match the geometry")
        if built.geometry is None:
            return
        expected = GEOMETRY_TYPES[layer.geometry_type]
        if not isinstance(built.geometry, expected):
            raise PlanLayerError(f"{code}: {built.geometry.geom_type} in a {layer.geometry_type} layer")
        if built.geometry.is_empty or not built.geometry.is_valid:
            raise PlanLayerError(f"{code}: geometry is empty or not valid")

    def collections(self) -> dict[str, dict[str, Any]]:
        """Every layer as a FeatureCollection, features in code order."""
        used: set[str] = set()
        result: dict[str, dict[str, Any]] = {}
        for layer_id, keys in LAYER_ROWS.items():
            layer = self.layers[layer_id]
            features = []
            for key in keys:
                if key not in self.gazetteer:
                    raise PlanLayerError(f"{layer_id}: gazetteer row {key} is missing")
                if key in used:
                    raise PlanLayerError(f"{key}: listed in more than one layer")
                used.add(key)
                features.append(self.feature(layer, self.gazetteer[key]))
            features.sort(key=lambda f: f["properties"]["code"])
            result[layer_id] = {"type": "FeatureCollection", "features": features}
        self._check_co_location(result)
        codes = {self.gazetteer[k]["code"] for k in used}
        unused = sorted(set(self.refs) - codes)
        if unused:
            raise PlanLayerError(f"{PLAN_REFS}: entries for codes that are not built: {unused}")
        return result

    def _check_co_location(self, result: dict[str, dict[str, Any]]) -> None:
        """Every set of features with identical geometry is a declared group, and every group still is one."""
        by_geometry: dict[str, list[str]] = {}
        for collection in result.values():
            for feature in collection["features"]:
                if feature["geometry"] is not None:
                    key = json.dumps(feature["geometry"], sort_keys=True)
                    by_geometry.setdefault(key, []).append(feature["properties"]["code"])
        found = sorted(tuple(sorted(codes)) for codes in by_geometry.values() if len(codes) > 1)
        declared = sorted(tuple(sorted(group)) for group in CO_LOCATED.values())
        if found != declared:
            missing = [g for g in found if g not in declared]
            stale = [g for g in declared if g not in found]
            raise PlanLayerError(f"co-location: undeclared {missing}; declared but not identical {stale}")


def serialise(collection: dict[str, Any]) -> bytes:
    """A FeatureCollection as UTF-8 GeoJSON, one feature per line."""
    lines = [json.dumps(f, ensure_ascii=False, separators=(", ", ": ")) for f in collection["features"]]
    body = ",\n".join(lines)
    return ('{"type": "FeatureCollection", "features": [\n' + body + "\n]}\n").encode("utf-8")


def build(root: Path = ROOT) -> dict[str, bytes]:
    """The plan layer files (file name → bytes) built from the sources under root."""
    builder = Builder(root)
    return {
        builder.layers[layer_id].seed_file: serialise(collection)
        for layer_id, collection in builder.collections().items()
    }


def write(out_dir: Path, root: Path = ROOT) -> list[Path]:
    """Build the plan layers and write them into out_dir; returns the written paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in build(root).items():
        path = out_dir / name
        path.write_bytes(data)
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: regenerate the layer files (in layers/ unless --out is given)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=ROOT / "layers", help="directory to write the files to")
    args = parser.parse_args(argv)
    for path in write(args.out):
        print(path)


if __name__ == "__main__":
    main()
