"""The layer catalogue: what it refuses, so a bad `layers/catalog.yaml` fails at start-up, not later."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from geo_service.catalog import DEFAULT_TILE_PROPERTIES, CatalogError, Layer, load_catalog
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


def _tiled(steps: Any, **extra: Any) -> dict[str, Any]:
    return _layer(plan_year={"type": "integer"}) | {"tiles": {"properties": steps}} | extra


def test_tile_properties_by_zoom(tmp_path: Path) -> None:
    """A layer's tiles carry the properties of the step its zoom falls in (the id aside), in declaration
    order; `all` is every property; without a declaration the default set at every zoom."""
    steps = [
        {"min_zoom": 0, "properties": ["status", "accuracy", "code"]},
        {"min_zoom": 10, "properties": ["code", "status", "accuracy", "plan_year"]},
        {"min_zoom": 14, "properties": "all"},
    ]
    _load(tmp_path, [_tiled(steps)])
    catalog = load_catalog(tmp_path / "layers", tmp_path / "maps")
    layer = catalog.layers["test_layer"]
    assert layer.tile_properties(0) == layer.tile_properties(9) == ["code", "status", "accuracy"]
    assert layer.tile_properties(10) == ["code", "status", "accuracy", "plan_year"]
    assert layer.tile_properties(14) == layer.tile_properties(22) == layer.property_names
    assert layer.tile_property_zooms()["plan_year"] == 10 and layer.tile_property_zooms()["note"] == 14
    plain = Layer.model_validate(_layer())
    assert plain.tile_properties(3) == plain.tile_properties(20) == list(DEFAULT_TILE_PROPERTIES)


@pytest.mark.parametrize(
    ("steps", "words"),
    [
        ([], "at least 1"),
        ([{"min_zoom": 2, "properties": ["status", "accuracy"]}], "must start at min_zoom 0"),
        (
            [
                {"min_zoom": 0, "properties": ["status", "accuracy"]},
                {"min_zoom": 0, "properties": "all"},
            ],
            "must rise",
        ),
        (
            [{"min_zoom": 0, "properties": ["status", "accuracy", "colour"]}],
            r"\['colour'\].*does not declare",
        ),
        ([{"min_zoom": 0, "properties": ["id", "status", "accuracy"]}], "leave out `id`"),
        ([{"min_zoom": 0, "properties": ["status", "accuracy", "status"]}], "more than once"),
        (
            [
                {"min_zoom": 0, "properties": ["status", "accuracy", "plan_year"]},
                {"min_zoom": 12, "properties": ["status", "accuracy"]},
            ],
            r"zoom 12 drops \['plan_year'\]",
        ),
        ([{"min_zoom": 0, "properties": ["code", "accuracy"]}], r"must carry \['status'\]"),
        ([{"min_zoom": 0, "properties": "some"}], "properties"),
        ([{"min_zoom": 23, "properties": "all"}], "min_zoom"),
        ([{"min_zoom": 0, "properties": "all", "max_zoom": 9}], "max_zoom"),
    ],
)
def test_bad_tile_properties_are_refused(tmp_path: Path, steps: Any, words: str) -> None:
    """A `tiles.properties` declaration that is out of order, names unknown properties or the id, drops a
    property a lower zoom carries, or leaves out what the map's tile styling reads stops the catalogue from
    loading, saying what is wrong."""
    with pytest.raises(CatalogError, match=words):
        _load(tmp_path, [_tiled(steps)])


def test_tiles_must_carry_the_property_a_style_colours_by(tmp_path: Path) -> None:
    """A layer (or a map document) colouring by a property its low-zoom tiles leave out is refused."""
    steps = [{"min_zoom": 0, "properties": ["status", "accuracy"]}, {"min_zoom": 14, "properties": "all"}]
    with pytest.raises(CatalogError, match=r"from zoom 0 must carry \['plan_year'\]"):
        _load(tmp_path, [_tiled(steps, style={"by": "plan_year"})])
    shutil.rmtree(tmp_path / "layers")
    shutil.rmtree(tmp_path / "maps")
    (tmp_path / "layers").mkdir()
    (tmp_path / "maps").mkdir()
    (tmp_path / "layers" / "catalog.yaml").write_text(
        yaml.safe_dump({"layers": [_tiled(steps)]}), encoding="utf-8"
    )
    doc = {
        "id": "probe",
        "title": {"zh": "测试", "en": "Test"},
        "description": {"zh": "测试", "en": "Test"},
        "center": [30.7, 120.7],
        "zoom": 9,
        "layers": [{"layer": "test_layer", "style": {"by": "plan_year"}}],
    }
    (tmp_path / "maps" / "probe.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    with pytest.raises(CatalogError, match="map probe colours the layer by it"):
        load_catalog(tmp_path / "layers", tmp_path / "maps")
