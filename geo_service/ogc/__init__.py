"""OGC API – Features: landing page, conformance, OpenAPI, collections, items."""
