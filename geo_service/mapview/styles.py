"""How plan features look on the map and how their coded values read, shared by the page and the legend."""

from __future__ import annotations

from typing import Any

from geo_service.catalog import ACCURACY_LABELS, STATUS_LABELS, Layer, LayerStyle, MapLayer

# SVG dash patterns: a plan's intent must read differently from what is already on the ground.
STATUS_DASH: dict[str, str | None] = {
    "planned": "8 6",
    "under_construction": "2 5",
    "completed": None,
    "existing": None,
}

# Schematic geometries only show roughly where an item is, so they are drawn faded.
SCHEMATIC_OPACITY = 0.6

# Field captions of the popup, Chinese first.
FIELD_LABELS: dict[str, str] = {
    "category": "类别 Category",
    "status": "状态 Status",
    "plan_text": "规划原文 Plan text",
    "accuracy": "精度 Accuracy",
    "source": "位置来源 Source",
    "aliases": "别名 Aliases",
    "note": "备注 Note",
    "details": "详情 Details",
}


def effective_style(layer: Layer, map_layer: MapLayer) -> LayerStyle:
    """The layer's catalogue style with whatever the map document sets explicitly on top."""
    if map_layer.style is None:
        return layer.style
    return layer.style.model_copy(update=map_layer.style.model_dump(exclude_unset=True))


def style_config(style: LayerStyle) -> dict[str, Any]:
    """The style as the page script reads it (camel-case keys as Leaflet names them)."""
    return {
        "color": style.color,
        "fillColor": style.fill_color,
        "weight": style.weight,
        "fillOpacity": style.fill_opacity,
        "radius": style.radius,
        "by": style.by,
        "colors": dict(style.colors),
        "zIndex": style.z_index,
    }


def page_config() -> dict[str, Any]:
    """Labels and line styles every plan layer of a page shares."""
    return {
        "statusLabels": STATUS_LABELS,
        "accuracyLabels": ACCURACY_LABELS,
        "statusDash": STATUS_DASH,
        "schematicOpacity": SCHEMATIC_OPACITY,
        "fieldLabels": FIELD_LABELS,
    }
