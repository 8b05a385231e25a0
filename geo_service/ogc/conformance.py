"""The conformance classes this service declares: only those that truly pass."""

CORE = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core"
GEOJSON = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson"
HTML = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html"
OAS30 = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30"

CRS_BY_REFERENCE = "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs"

CONFORMS_TO = [CORE, GEOJSON, HTML, OAS30, CRS_BY_REFERENCE]
