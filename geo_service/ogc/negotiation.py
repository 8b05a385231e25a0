"""Content negotiation: the `f` parameter first, then the Accept header, then the default."""

from __future__ import annotations

from starlette.requests import Request

from geo_service.errors import InvalidParameter

JSON = "application/json"
GEOJSON = "application/geo+json"
HTML = "text/html"
OPENAPI = "application/vnd.oai.openapi+json;version=3.0"
SCHEMA_JSON = "application/schema+json"
GEOPACKAGE = "application/geopackage+sqlite3"
FLATGEOBUF = "application/flatgeobuf"
CSV = "text/csv"
KML = "application/vnd.google-earth.kml+xml"

_F_VALUES = {
    "json": JSON,
    "geojson": GEOJSON,
    "html": HTML,
    "gpkg": GEOPACKAGE,
    "fgb": FLATGEOBUF,
    "flatgeobuf": FLATGEOBUF,
    "csv": CSV,
    "kml": KML,
}


def _accepted(header: str) -> list[tuple[str, float]]:
    entries: list[tuple[str, float]] = []
    for item in header.split(","):
        fields = [f.strip() for f in item.split(";")]
        if not fields[0]:
            continue
        quality = 1.0
        for param in fields[1:]:
            if param.startswith("q="):
                try:
                    quality = float(param[2:])
                except ValueError:
                    quality = 0.0
        entries.append((fields[0].lower(), quality))
    return sorted(entries, key=lambda e: -e[1])


def negotiate(request: Request, offered: list[str]) -> str:
    """Pick one of `offered` (media types, default first) for this request."""
    f = request.query_params.get("f")
    if f is not None:
        wanted = _F_VALUES.get(f.lower())
        if wanted == JSON and GEOJSON in offered:
            wanted = GEOJSON
        if wanted == GEOJSON and GEOJSON not in offered and JSON in offered:
            wanted = JSON
        if wanted in (JSON, GEOJSON) and SCHEMA_JSON in offered:
            wanted = SCHEMA_JSON
        if wanted not in offered:
            names = sorted(
                k
                for k, v in _F_VALUES.items()
                if v in offered or (v == JSON and (GEOJSON in offered or SCHEMA_JSON in offered))
            )
            raise InvalidParameter(
                f"f={f} is not offered here; use one of: {', '.join(names)}.", parameter="f"
            )
        return wanted
    by_base = {o.split(";")[0]: o for o in offered}
    for media, quality in _accepted(request.headers.get("accept", "")):
        if quality <= 0:
            continue
        if media in by_base:
            return by_base[media]
        if media == JSON and GEOJSON in offered:
            return GEOJSON
        if media == JSON and SCHEMA_JSON in offered:
            return SCHEMA_JSON
        if media in ("application/*", "*/*"):
            return offered[0]
        if media == "application/openapi+json" and OPENAPI in offered:
            return OPENAPI
        if media == "application/xhtml+xml" and HTML in offered:
            return HTML
    return offered[0]
