"""Zone outlines built from what the sources say: a stated area, the counties covered, the member towns.

Every construction works in EPSG:4549 (metres) and returns WGS 84. None of them pretends to be a surveyed
boundary; each says in words what it did, and the builder classes the result as schematic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import shapely
from pyproj import Transformer
from shapely.geometry import Point, Polygon, box
from shapely.geometry.base import BaseGeometry

PROJECTED_CRS = "EPSG:4549"
DISC_VERTICES = 64
# Bisection stops when the drawn area is this close to the target (relative).
AREA_TOLERANCE = 0.001
MAX_STEPS = 80


class OutlineError(ValueError):
    """A construction cannot reach what the sources state (e.g. the area exceeds the counties)."""


class Metric:
    """WGS 84 ↔ EPSG:4549 for building outlines in metres."""

    def __init__(self) -> None:
        self._forward = Transformer.from_crs("EPSG:4326", PROJECTED_CRS, always_xy=True)
        self._back = Transformer.from_crs(PROJECTED_CRS, "EPSG:4326", always_xy=True)

    def to_metres(self, geometry: BaseGeometry) -> BaseGeometry:
        """A WGS 84 geometry in EPSG:4549."""
        return shapely.transform(geometry, self._forward.transform, interleaved=False)

    def to_degrees(self, geometry: BaseGeometry) -> BaseGeometry:
        """An EPSG:4549 geometry in WGS 84."""
        return shapely.transform(geometry, self._back.transform, interleaved=False)

    def area_km2(self, geometry: BaseGeometry) -> float:
        """Area of a WGS 84 geometry in EPSG:4549, km²."""
        return float(self.to_metres(geometry).area) / 1e6


def _disc(centre: Point, radius_m: float) -> Polygon:
    ring = [
        (
            centre.x + radius_m * math.cos(2 * math.pi * k / DISC_VERTICES),
            centre.y + radius_m * math.sin(2 * math.pi * k / DISC_VERTICES),
        )
        for k in range(DISC_VERTICES)
    ]
    return Polygon(ring)


def _bisect(area_of: Callable[[float], float], low: float, high: float, target_km2: float) -> float:
    """The parameter in [low, high] at which the increasing function area_of reaches target_km2."""
    if area_of(high) < target_km2 * (1 - AREA_TOLERANCE):
        raise OutlineError(f"the area cannot reach {target_km2:g} km² within the clip area")
    for _ in range(MAX_STEPS):
        middle = (low + high) / 2
        area = area_of(middle)
        if abs(area - target_km2) <= AREA_TOLERANCE * target_km2:
            return middle
        if area < target_km2:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def sized_disc(
    metric: Metric, centre: Point, clip: BaseGeometry, target_km2: float
) -> tuple[BaseGeometry, float]:
    """The disc around centre, clipped to clip, whose clipped area is target_km2; and its radius (m).

    Growing the radius after clipping keeps the stated area when the zone sits against a border, which a
    plain circle of that area would lose.
    """
    centre_m = metric.to_metres(centre)
    clip_m = metric.to_metres(clip)
    if not isinstance(centre_m, Point):
        raise OutlineError("the centre must be a point")

    def area_of(radius: float) -> float:
        return float(_disc(centre_m, radius).intersection(clip_m).area) / 1e6

    reach = math.hypot(*(clip_m.bounds[2] - clip_m.bounds[0], clip_m.bounds[3] - clip_m.bounds[1]))
    radius = _bisect(area_of, 1.0, reach + centre_m.distance(clip_m), target_km2)
    return metric.to_degrees(_disc(centre_m, radius).intersection(clip_m)), radius


def corridor(metric: Metric, line: BaseGeometry, clip: BaseGeometry, half_width_m: float) -> BaseGeometry:
    """Every point of clip within half_width_m (m) of line: a band along a course, as a polygon in WGS 84."""
    if half_width_m <= 0:
        raise OutlineError("a corridor needs a positive width")
    band_m = metric.to_metres(line).buffer(half_width_m, quad_segs=16)
    return metric.to_degrees(band_m.intersection(metric.to_metres(clip)))


def band(metric: Metric, area: BaseGeometry, side: str, target_km2: float) -> tuple[BaseGeometry, float]:
    """The part of area on one side (north, south, east, west) of a grid line that gives it target_km2.

    Returns the polygon and the grid coordinate (EPSG:4549 northing or easting, m) of the cut.
    """
    area_m = metric.to_metres(area)
    west, south, east, north = area_m.bounds
    span = {"north": north - south, "south": north - south, "east": east - west, "west": east - west}
    if side not in span:
        raise OutlineError(f"unknown side {side!r}")

    def part(depth: float) -> BaseGeometry:
        """The part of area within depth (m) of its extreme on that side."""
        keep = {
            "north": box(west - 1, north - depth, east + 1, north + 1),
            "south": box(west - 1, south - 1, east + 1, south + depth),
            "east": box(east - depth, south - 1, east + 1, north + 1),
            "west": box(west - 1, south - 1, west + depth, north + 1),
        }[side]
        return area_m.intersection(keep)

    depth = _bisect(lambda d: float(part(d).area) / 1e6, 0.0, span[side], target_km2)
    cut = {"north": north - depth, "south": south + depth, "east": east - depth, "west": west + depth}[side]
    return metric.to_degrees(part(depth)), cut


def nearest_share(metric: Metric, area: BaseGeometry, own: Point, others: Sequence[Point]) -> BaseGeometry:
    """The part of area nearer to own than to any of others (its Voronoi cell, in metres)."""
    area_m = metric.to_metres(area)
    own_m = metric.to_metres(own)
    cell = area_m
    for other in others:
        other_m = metric.to_metres(other)
        if not isinstance(own_m, Point) or not isinstance(other_m, Point):
            raise OutlineError("town points must be points")
        # the half-plane nearer to own: a large box on own's side of the perpendicular bisector
        mx, my = (own_m.x + other_m.x) / 2, (own_m.y + other_m.y) / 2
        dx, dy = own_m.x - other_m.x, own_m.y - other_m.y
        length = math.hypot(dx, dy)
        if length == 0:
            raise OutlineError("two town points coincide")
        ux, uy = dx / length, dy / length
        far = 1e6
        half = Polygon(
            [
                (mx - uy * far, my + ux * far),
                (mx - uy * far + ux * far, my + ux * far + uy * far),
                (mx + uy * far + ux * far, my - ux * far + uy * far),
                (mx + uy * far, my - ux * far),
            ]
        )
        cell = cell.intersection(half)
    return metric.to_degrees(cell)
