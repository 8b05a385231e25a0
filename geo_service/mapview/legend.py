"""The bilingual legend: each layer's colours and symbol, and what the line styles mean."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from branca.element import MacroElement
from folium.template import Template

from geo_service.catalog import Catalog, LayerStyle, MapDocument
from geo_service.mapview.inert import render_inert
from geo_service.mapview.styles import (
    ACCURACY_LABELS,
    SCHEMATIC_OPACITY,
    STATUS_DASH,
    STATUS_LABELS,
    effective_style,
)
from geo_service.mapview.templating import render

VALUE_LABELS: dict[str, dict[str, str]] = {"status": STATUS_LABELS, "accuracy": ACCURACY_LABELS}


@dataclass(frozen=True)
class Swatch:
    """One symbol of the legend and what it stands for ("" when the layer has a single colour)."""

    color: str
    fill_color: str
    label: str
    statuses: str = ""  # the statuses drawn in this colour, space-separated, when the layer colours by status


@dataclass(frozen=True)
class LegendEntry:
    """A map layer's row: its name, symbol shape and colours."""

    layer_id: str
    title_zh: str
    title_en: str
    shape: str
    style: LayerStyle
    swatches: list[Swatch]


@dataclass(frozen=True)
class LineStyleRow:
    """A line style and its meaning."""

    label: str
    dash: str | None
    opacity: float
    statuses: str = ""  # the statuses drawn in this line style, space-separated


def shape_of(geometry_type: str) -> str:
    """The symbol shape of a geometry type: point, line or polygon."""
    if geometry_type.endswith("Point"):
        return "point"
    if geometry_type.endswith("LineString"):
        return "line"
    return "polygon"


def swatches(style: LayerStyle) -> list[Swatch]:
    """The colours a layer uses, values sharing a colour listed together."""
    if not style.by or not style.colors:
        return [Swatch(style.color, style.fill_color or style.color, "")]
    labels = VALUE_LABELS.get(style.by, {})
    by_color: dict[str, list[str]] = {}
    for value, color in style.colors.items():
        by_color.setdefault(color, []).append(value)
    return [
        Swatch(
            color,
            style.fill_color or color,
            " / ".join(labels.get(value, value) for value in values),
            " ".join(values) if style.by == "status" else "",
        )
        for color, values in by_color.items()
    ]


def legend_entries(doc: MapDocument, catalog: Catalog) -> list[LegendEntry]:
    """One entry per layer of the map, in the map's order."""
    entries = []
    for map_layer in doc.layers:
        layer = catalog.layers[map_layer.layer]
        style = effective_style(layer, map_layer)
        entries.append(
            LegendEntry(
                layer_id=layer.id,
                title_zh=layer.title.zh,
                title_en=layer.title.en,
                shape=shape_of(layer.geometry_type),
                style=style,
                swatches=swatches(style),
            )
        )
    return entries


def line_style_rows() -> list[LineStyleRow]:
    """The status line styles, statuses with the same style merged, and the faded schematic style."""
    by_dash: dict[str | None, list[str]] = {}
    for status, dash in STATUS_DASH.items():
        by_dash.setdefault(dash, []).append(status)
    rows = [
        LineStyleRow(" / ".join(STATUS_LABELS[s] for s in statuses), dash, 1.0, " ".join(statuses))
        for dash, statuses in by_dash.items()
    ]
    rows.append(LineStyleRow(ACCURACY_LABELS["schematic"], None, SCHEMATIC_OPACITY))
    return rows


class Legend(MacroElement):
    """The legend as a Leaflet control in the lower left corner."""

    _template = Template(
        """
        {% macro html(this, kwargs) %}{{ this.html }}{% endmacro %}
        {% macro script(this, kwargs) %}
            jxplan.legend({{ this._parent.get_name() }}, {{ this.element_id|tojson }});
        {% endmacro %}
        """
    )

    def __init__(self, doc: MapDocument, catalog: Catalog) -> None:
        super().__init__()
        self._name = "Legend"
        self.element_id = f"jx-legend-{self._id}"
        self.html = render(
            "legend.html",
            element_id=self.element_id,
            entries=legend_entries(doc, catalog),
            line_styles=line_style_rows(),
        )

    def render(self, **kwargs: Any) -> str:
        """Place the hidden legend and the script that turns it into a control."""
        render_inert(self, **kwargs)
        return ""
