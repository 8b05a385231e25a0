"""Fixtures of the real-client tests (GDAL, OWSLib) against `live_server`: the seed features to compare."""

from __future__ import annotations

import json
from typing import Any

import pytest

from geo_service.catalog import Catalog


@pytest.fixture(scope="session")
def seeds(catalog: Catalog) -> dict[str, dict[str, dict[str, Any]]]:
    """Every layer's seed features keyed by `code`, read straight from the GeoJSON files under layers/."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for layer_id, layer in catalog.layers.items():
        doc = json.loads(catalog.layer_file(layer).read_text(encoding="utf-8"))
        out[layer_id] = {f["properties"]["code"]: f for f in doc["features"]}
    return out
