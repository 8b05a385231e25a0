"""The conformance classes this service declares: only those that truly pass (each has tests)."""

_FEATURES = "http://www.opengis.net/spec/ogcapi-features-{part}/1.0/conf/{name}"
_CQL2 = "http://www.opengis.net/spec/cql2/1.0/conf/{name}"

CORE = _FEATURES.format(part=1, name="core")
GEOJSON = _FEATURES.format(part=1, name="geojson")
HTML = _FEATURES.format(part=1, name="html")
OAS30 = _FEATURES.format(part=1, name="oas30")

CRS_BY_REFERENCE = _FEATURES.format(part=2, name="crs")

FILTERING = [_FEATURES.format(part=3, name=n) for n in ("queryables", "filter", "features-filter")]
CQL2 = [
    _CQL2.format(name=n)
    for n in (
        "cql2-text",
        "cql2-json",
        "basic-cql2",
        "advanced-comparison-operators",
        "case-insensitive-comparison",
        "basic-spatial-functions",
        "basic-spatial-functions-plus",
        "spatial-functions",
        "array-functions",
        "property-property",
        "arithmetic",
    )
]

SCHEMAS = [_FEATURES.format(part=5, name=n) for n in ("schemas", "queryables", "sortables")]

EDITING = [_FEATURES.format(part=4, name=n) for n in ("create-replace-delete", "update", "features")]

TILES = [
    f"http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/{n}"
    for n in ("core", "tileset", "tilesets-list", "geodata-tilesets", "dataset-tilesets", "mvt")
]

# OGC API – Processes – Part 1: Core (geo_service.analysis): sync and async execution, JSON, the job list and
# dismissal; not html (the process pages are JSON only) nor callback
PROCESSES = [
    f"http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/{n}"
    for n in ("core", "ogc-process-description", "json", "oas30", "job-list", "dismiss")
]

CONFORMS_TO = [
    CORE,
    GEOJSON,
    HTML,
    OAS30,
    CRS_BY_REFERENCE,
    *FILTERING,
    *CQL2,
    *SCHEMAS,
    *EDITING,
    *TILES,
    *PROCESSES,
]
