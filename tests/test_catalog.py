"""The layer catalogue: what it refuses, so a bad `layers/catalog.yaml` fails at start-up, not later."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from geo_service.catalog import CatalogError, load_catalog
from geo_service.settings import PROJECT_ROOT


def _layer(**properties: Any) -> dict[str, Any]:
    return {
        "id": "test_layer",
        "title": {"zh": "测试", "en": "Test"},
        "description": {"zh": "测试", "en": "Test"},
        "geometry_type": "Point",
        "file": "test_layer.geojson",
        "properties": properties,
    }


def _load(tmp_path: Path, layers: list[dict[str, Any]]) -> None:
    (tmp_path / "layers").mkdir()
    (tmp_path / "maps").mkdir()
    (tmp_path / "layers" / "catalog.yaml").write_text(yaml.safe_dump({"layers": layers}), encoding="utf-8")
    load_catalog(tmp_path / "layers", tmp_path / "maps")


def test_project_catalogue_loads() -> None:
    """The shipped catalogue and maps load, and every layer property name is a safe, unreserved slug."""
    catalog = load_catalog(PROJECT_ROOT / "layers", PROJECT_ROOT / "maps")
    assert len(catalog.layers) >= 7


def test_a_plain_extra_property_is_accepted(tmp_path: Path) -> None:
    """A layer may declare its own properties (the refusals below are about specific names only)."""
    _load(tmp_path, [_layer(plan_year={"type": "integer"})])


@pytest.mark.parametrize(
    ("properties", "words"),
    [
        ({"status": {"type": "string"}}, "redeclares"),
        ({"limit": {"type": "integer"}}, "reserved"),
        ({"bbox": {"type": "string"}}, "reserved"),
        ({"id": {"type": "integer"}}, "reserved"),
        ({"Plan Year": {"type": "integer"}}, "lower-case"),
        ({"x'); drop": {"type": "string"}}, "lower-case"),
    ],
)
def test_bad_property_names_are_refused(tmp_path: Path, properties: dict[str, Any], words: str) -> None:
    """A property that would clash with a common property or a query parameter, or that is not a plain
    slug (names become SQL literals and URL parameters), stops the catalogue from loading."""
    with pytest.raises(CatalogError, match=words):
        _load(tmp_path, [_layer(**properties)])


def test_duplicate_layer_ids_are_refused(tmp_path: Path) -> None:
    """Two layers with one id would shadow each other."""
    with pytest.raises(CatalogError, match="twice"):
        _load(tmp_path, [_layer(), _layer()])
