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

ROOT = Path(__file__).resolve().parents[2]

GAZETTEER = Path("layers/sources/gazetteer.csv")
GAZETTEER_NOTES = Path("layers/sources/gazetteer_notes.md")
PLAN_REFS = Path("layers/sources/plan_refs.yaml")
SEEDS = Path("layers/sources/seeds")
CATALOG = Path("layers/catalog.yaml")
ADMIN_BOUNDARIES = Path("layers/admin_boundaries.geojson")
ZONE_OUTLINE = Path("layers/sources/demonstration_zone_outline.geojson")

# Which gazetteer rows (by the short id before the first "_" of the code) go into which layer.
LAYER_ROWS: dict[str, tuple[str, ...]] = {
    "demonstration_zone": ("a01", "a02", "a03", "a06", "a07", "a08", "a09", "a10", "a11", "a12", "a13"),
    "g60_platforms": ("b02", "b03", "b04", "b05", "b06", "b07", "b08"),
    "strategic_platforms": ("e01", "e05", "e06", "e07", "e10", "e11", "e12", "e13"),
    "road_projects": ("b01", "d01", "d02", "d03", "d04"),
    "rail_lines": tuple(f"c{n}" for n in range(20, 33)),
    "rail_stations": tuple(f"c{n:02d}" for n in range(1, 12)) + tuple(f"c{n}" for n in range(40, 57)),
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
}

# Areas the gazetteer row or its notes state for the item (km²), with the text that states each; the
# build checks that text occurs in the row's extent_note or in the notes, so no area is ever a guess.
STATED_AREAS: dict[str, tuple[float, str]] = {
    "a01": (2300.0, "~2300 km²"),
    "a02": (506.97, "506.97 km²"),
    "a03": (157.39, "157.39 km²"),
    "a07": (120.0, "~120 km²"),
    "a11": (16.5, "16.5 km²"),
    "b06": (45.0, "平湖 45 km²"),
}

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
        self.notes = (root / GAZETTEER_NOTES).read_text(encoding="utf-8")
        self.refs = read_plan_refs(root)
        self.layers = read_layers(root)
        self.counties = read_counties(root, self.gazetteer)
        self.outline = read_zone_outline(root)
        self.projector = Projector()
        self.validators: dict[str, Draft202012Validator] = {}

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
            return self._line(row, source, method)
        if key == ZONE_OUTLINE_ROW:
            return self._zone_outline(row, method)
        if key in WHOLE_COUNTY:
            return self._whole_county(WHOLE_COUNTY[key], method)
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
            area_text += f", against {stated[1]} stated"
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

    def _circle(self, row: dict[str, str], point: Point, method: str) -> Built:
        key = short_id(row["code"])
        claimed = county_codes(row["county_adcode"])
        jiaxing = [c for c in claimed if c in self.counties]
        outside = [c for c in claimed if c not in self.counties]
        stated = STATED_AREAS.get(key)
        if stated is not None:
            radius = radius_for_area(stated[0])
            size = f"of the stated {stated[0]:g} km² (radius {radius:.0f} m)"
        else:
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

    def stated_area(self, row: dict[str, str]) -> float | None:
        """The area stated for a row, checked against its extent_note and the notes."""
        stated = STATED_AREAS.get(short_id(row["code"]))
        if stated is None:
            return None
        value, evidence = stated
        if evidence not in row["extent_note"] and evidence not in self.notes:
            raise PlanLayerError(
                f"{row['code']}: stated area text {evidence!r} is not in the row or the notes"
            )
        return value

    def feature(self, layer: Layer, row: dict[str, str]) -> dict[str, Any]:
        """One GeoJSON feature, validated against the layer's property schema and geometry type."""
        code = row["code"]
        built = self._checked_against_counties(row, self._on_grid(layer, self.build_geometry(layer, row)))
        if code not in self.refs:
            raise PlanLayerError(f"{code}: no entry in {PLAN_REFS} (write null when no seed names it)")
        ref = self.refs[code]
        note = text_or_none(row["extent_note"])
        if built.note_suffix:
            note = (note or "").rstrip() + built.note_suffix
        properties: dict[str, Any] = {
            "code": code,
            "name_zh": row["name_zh"],
            "name_en": row["name_en"],
            "category": row["category"],
            "status": row["status"],
            "status_date": text_or_none(row["status_date"]),
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
            "gazetteer_confidence": text_or_none(row["confidence"]),
            "source_datum": text_or_none(row["source_datum"]),
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
        codes = {self.gazetteer[k]["code"] for k in used}
        unused = sorted(set(self.refs) - codes)
        if unused:
            raise PlanLayerError(f"{PLAN_REFS}: entries for codes that are not built: {unused}")
        return result


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
