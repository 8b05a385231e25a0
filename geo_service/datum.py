"""Conversions between WGS 84 and the Chinese web-map datums GCJ-02 (AMap, Tencent) and BD-09 (Baidu).

GCJ-02 adds a position-dependent offset (a fixed polynomial-plus-sine field in metres, scaled to degrees on
the Krasovsky-1940 ellipsoid) to WGS 84 inside mainland China and is the identity outside it. It has no
closed-form inverse, so GCJ-02 -> WGS 84 iterates `wgs <- wgs - (gcj(wgs) - target)` until it stops moving.
BD-09 is a further rotation and stretch of GCJ-02; its published inverse is only good to ~0.1 m, so it is
used as the starting point of the same kind of iteration. Everything is vectorised with numpy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypeVar, overload

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
Geom = TypeVar("Geom", bound=shapely.Geometry)
Datum = Literal["gcj02", "bd09"]

# Krasovsky-1940, the ellipsoid the GCJ-02 offset is scaled on.
_KRASOVSKY_A = 6378245.0
_KRASOVSKY_EE = 0.00669342162296594323

# Rough box of mainland China: GCJ-02 equals WGS 84 outside it.
_CHINA_LON = (72.004, 137.8347)
_CHINA_LAT = (0.8293, 55.8271)

_BD_K = np.pi * 3000.0 / 180.0
_BD_DLON = 0.0065
_BD_DLAT = 0.006

# The inverses converge geometrically (the offset field's gradient is ~1e-3), so 30 steps is a safe cap.
_TOLERANCE_DEG = 1e-10
_MAX_ITERATIONS = 30


def _arrays(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]:
    x, y = np.broadcast_arrays(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
    return x.copy(), y.copy()


def _out(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    # 0-d results become numpy scalars so scalar callers get plain floats back.
    if lon.ndim == 0:
        return lon[()], lat[()]
    return lon, lat


def _outside_china(lon: FloatArray, lat: FloatArray) -> NDArray[np.bool_]:
    return (lon < _CHINA_LON[0]) | (lon > _CHINA_LON[1]) | (lat < _CHINA_LAT[0]) | (lat > _CHINA_LAT[1])


def _offset_lat_m(x: FloatArray, y: FloatArray) -> FloatArray:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
    ret += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    ret += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    ret += (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    return ret


def _offset_lon_m(x: FloatArray, y: FloatArray) -> FloatArray:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
    ret += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    ret += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    ret += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    return ret


def _gcj_forward(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    x = lon - 105.0
    y = lat - 35.0
    dlat = _offset_lat_m(x, y)
    dlon = _offset_lon_m(x, y)
    rad_lat = np.radians(lat)
    w = 1.0 - _KRASOVSKY_EE * np.sin(rad_lat) ** 2
    sqrt_w = np.sqrt(w)
    # Metres to degrees via the meridian and prime-vertical radii of curvature.
    dlat = dlat * 180.0 / ((_KRASOVSKY_A * (1.0 - _KRASOVSKY_EE)) / (w * sqrt_w) * np.pi)
    dlon = dlon * 180.0 / (_KRASOVSKY_A / sqrt_w * np.cos(rad_lat) * np.pi)
    outside = _outside_china(lon, lat)
    return np.where(outside, lon, lon + dlon), np.where(outside, lat, lat + dlat)


def _bd_forward(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    z = np.hypot(lon, lat) + 2e-5 * np.sin(lat * _BD_K)
    theta = np.arctan2(lat, lon) + 3e-6 * np.cos(lon * _BD_K)
    return z * np.cos(theta) + _BD_DLON, z * np.sin(theta) + _BD_DLAT


def _bd_inverse_closed_form(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    x = lon - _BD_DLON
    y = lat - _BD_DLAT
    z = np.hypot(x, y) - 2e-5 * np.sin(y * _BD_K)
    theta = np.arctan2(y, x) - 3e-6 * np.cos(x * _BD_K)
    return z * np.cos(theta), z * np.sin(theta)


def _invert(
    forward: Callable[[FloatArray, FloatArray], tuple[FloatArray, FloatArray]],
    lon: FloatArray,
    lat: FloatArray,
    guess_lon: FloatArray,
    guess_lat: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    # Fixed-point iteration: both forward maps are a translation plus a tiny perturbation, so subtracting the
    # residual contracts the error by roughly the perturbation's gradient each step.
    x, y = guess_lon.copy(), guess_lat.copy()
    for _ in range(_MAX_ITERATIONS):
        fx, fy = forward(x, y)
        dx = fx - lon
        dy = fy - lat
        x -= dx
        y -= dy
        change = np.maximum(np.abs(dx), np.abs(dy))
        # NaN inputs stay NaN and must not keep the loop running.
        if np.max(change, initial=0.0, where=np.isfinite(change)) < _TOLERANCE_DEG:
            break
    return x, y


@overload
def wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]: ...
def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray] | tuple[float, float]:
    """Convert WGS 84 longitude/latitude (degrees, scalars or arrays) to GCJ-02."""
    return _out(*_gcj_forward(*_arrays(lon, lat)))


@overload
def gcj02_to_wgs84(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def gcj02_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]: ...
def gcj02_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray] | tuple[float, float]:
    """Convert GCJ-02 longitude/latitude to WGS 84 by iterating the forward transform (error < 1e-9°)."""
    x, y = _arrays(lon, lat)
    return _out(*_invert(_gcj_forward, x, y, x, y))


@overload
def gcj02_to_bd09(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]: ...
def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray] | tuple[float, float]:
    """Convert GCJ-02 longitude/latitude to BD-09 with the published forward formula."""
    return _out(*_bd_forward(*_arrays(lon, lat)))


@overload
def bd09_to_gcj02(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def bd09_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]: ...
def bd09_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray] | tuple[float, float]:
    """Convert BD-09 longitude/latitude to GCJ-02: the published inverse, refined to an exact inverse."""
    x, y = _arrays(lon, lat)
    gx, gy = _bd_inverse_closed_form(x, y)
    return _out(*_invert(_bd_forward, x, y, gx, gy))


@overload
def wgs84_to_bd09(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def wgs84_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]: ...
def wgs84_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray] | tuple[float, float]:
    """Convert WGS 84 longitude/latitude to BD-09 (via GCJ-02)."""
    return _out(*_bd_forward(*_gcj_forward(*_arrays(lon, lat))))


@overload
def bd09_to_wgs84(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def bd09_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray]: ...
def bd09_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[FloatArray, FloatArray] | tuple[float, float]:
    """Convert BD-09 longitude/latitude to WGS 84 (via GCJ-02)."""
    x, y = _arrays(lon, lat)
    gx, gy = _invert(_bd_forward, x, y, *_bd_inverse_closed_form(x, y))
    return _out(*_invert(_gcj_forward, gx, gy, gx, gy))


_TO_WGS84: dict[str, Callable[[FloatArray, FloatArray], tuple[FloatArray, FloatArray]]] = {
    "gcj02": lambda x, y: _invert(_gcj_forward, x, y, x, y),
    "bd09": lambda x, y: bd09_to_wgs84(x, y),
}


def convert_geometry(geom: Geom, source: Datum | str) -> Geom:
    """Convert a shapely geometry from GCJ-02 or BD-09 (`source`) to WGS 84, all vertices in one call."""
    try:
        to_wgs84 = _TO_WGS84[source]
    except KeyError:
        raise ValueError(f"unknown source datum {source!r}; expected one of {sorted(_TO_WGS84)}") from None

    def _transform(coords: FloatArray) -> FloatArray:
        lon, lat = to_wgs84(coords[:, 0], coords[:, 1])
        return np.column_stack([lon, lat])

    result: Geom = shapely.transform(geom, _transform)
    return result
