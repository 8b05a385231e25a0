"""A map document rendered as a page: layers in the layer control, legend, bilingual title, basemaps."""

from __future__ import annotations

import json
import re
from html import escape

import pytest

from geo_service.catalog import STATUS_LABELS, Bilingual, Catalog, LayerStyle, MapDocument, MapLayer
from geo_service.mapview.legend import legend_entries, line_style_rows
from geo_service.mapview.render import layer_document, render_map
from geo_service.mapview.styles import effective_style
from geo_service.settings import Settings

NO_BASEMAP = Settings(basemap="none", tianditu_key=None)


@pytest.fixture(scope="module")
def overview(catalog: Catalog) -> MapDocument:
    """The overview map document."""
    return catalog.maps["overview"]


@pytest.fixture(scope="module")
def page(overview: MapDocument, catalog: Catalog) -> str:
    """The overview page as an intranet installation renders it."""
    return render_map(overview, catalog, NO_BASEMAP)


def _block(html: str, name: str) -> str:
    match = re.search(name + r"\s*:\s*\{(.*?)\n\s*\},", html, re.DOTALL)
    assert match, f"no {name} in the layer control"
    return match.group(1)


def _json_text(text: str) -> str:
    """Text as Jinja's `tojson` writes it inside scripts."""
    return text.encode("ascii", "backslashreplace").decode("ascii").replace("\\x", "\\u00")


def test_one_layer_control_entry_per_map_layer(page: str, overview: MapDocument, catalog: Catalog) -> None:
    overlays = [line for line in _block(page, "overlays").splitlines() if line.strip()]
    assert len(overlays) == len(overview.layers)
    for line, map_layer in zip(overlays, overview.layers, strict=True):
        assert _json_text(escape(str(catalog.layers[map_layer.layer].title))) in line


def test_each_layer_fetches_from_the_api(page: str, overview: MapDocument) -> None:
    for map_layer in overview.layers:
        assert f"/collections/{map_layer.layer}/items?f=json" in page
    assert page.count("jxplan.planLayer(") == len(overview.layers)
    assert '"FeatureCollection"' not in page  # no feature data embedded


def test_bilingual_title_and_header(page: str, overview: MapDocument) -> None:
    assert f"<title>{overview.title.zh} {overview.title.en}</title>" in page
    header = page[page.index('<header class="jx-header">') : page.index("</header>")]
    assert overview.title.zh in header and overview.title.en in header
    assert 'href="/maps"' in header and 'href="/"' in header
    assert '<html lang="zh-CN">' in page


def test_legend(page: str, overview: MapDocument, catalog: Catalog) -> None:
    legend = page[page.index('class="jx-legend"') :]
    assert "图例" in legend and "Legend" in legend
    for map_layer in overview.layers:
        layer = catalog.layers[map_layer.layer]
        assert f'data-layer="{layer.id}"' in legend
        assert layer.title.zh in legend and layer.title.en in legend
        assert layer.style.color in legend
    for label in STATUS_LABELS.values():
        assert label in legend
    assert 'stroke-dasharray="8 6"' in legend
    assert "jxplan.legend(" in page


def test_legend_merges_values_of_one_colour(overview: MapDocument, catalog: Catalog) -> None:
    entries = {entry.layer_id: entry for entry in legend_entries(overview, catalog)}
    rail = entries["rail_lines"]
    assert rail.shape == "line"
    labels = [swatch.label for swatch in rail.swatches]
    assert "已建成 completed / 现状 existing" in labels
    assert entries["rail_stations"].shape == "point"
    assert entries["admin_boundaries"].shape == "polygon"
    assert [row.dash for row in line_style_rows()][:3] == ["8 6", "2 5", None]


def test_controls(page: str) -> None:
    assert "L.control.fullscreen(" in page
    assert "new L.Control.Measure(" in page and '"localization": "cn"' in page
    assert "new L.Control.MousePosition(" in page
    assert "jxplan.setup(" in page  # adds the metric scale bar


def test_no_basemap_shown_by_default(page: str) -> None:
    assert "tile.openstreetmap.org" in page  # offered …
    osm = re.search(r"var (tile_layer_\w+) = L\.tileLayer\(", page)
    blank = re.search(r"var (blank_base_\w+) = L\.layerGroup\(\)", page)
    assert osm and blank
    assert f"{osm.group(1)}.addTo(" not in page  # … but not shown
    assert f"{blank.group(1)}.addTo(" in page


def test_osm_basemap_shown_when_configured(overview: MapDocument, catalog: Catalog) -> None:
    html = render_map(overview, catalog, Settings(basemap="osm", tianditu_key="k"))
    osm = re.search(r"var (tile_layer_\w+) = L\.tileLayer\(", html)
    tianditu = re.search(r"var (tianditu_base_\w+) = L\.layerGroup\(\[", html)
    assert osm and tianditu
    assert f"{osm.group(1)}.addTo(" in html
    assert f"{tianditu.group(1)}.addTo(" not in html
    assert "vec_w" in html and "cva_w" in html
    assert "天地图 Tianditu" in _block(html, "base_layers").encode().decode("unicode_escape")


def test_map_document_style_and_visibility(catalog: Catalog) -> None:
    layer = catalog.layers["rail_lines"]
    doc = MapDocument(
        id="test",
        title=Bilingual(zh="测试", en="Test"),
        description=Bilingual(zh="测试", en="Test"),
        center=(30.7, 120.8),
        zoom=9,
        layers=[MapLayer(layer="rail_lines", show=False, style=LayerStyle(color="#000000"))],
    )
    style = effective_style(layer, doc.layers[0])
    assert style.color == "#000000"
    assert style.weight == layer.style.weight and style.colors == layer.style.colors
    html = render_map(doc, catalog, NO_BASEMAP)
    var = re.search(r"var (plan_layer_\w+) = jxplan\.planLayer\(", html)
    assert var and f"{var.group(1)}.addTo(" not in html
    assert '"color": "#000000"' in html


def test_titles_are_escaped(catalog: Catalog) -> None:
    doc = MapDocument(
        id="hostile",
        title=Bilingual(zh="<script>alert(1)</script>{{ 7*7 }}", en="</title>{% raw %}"),
        description=Bilingual(zh="x", en="x"),
        center=(30.7, 120.8),
        zoom=9,
        layers=[MapLayer(layer="rail_stations")],
    )
    html = render_map(doc, catalog, NO_BASEMAP)
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;{{ 7*7 }}" in html
    assert "&lt;/title&gt;{% raw %}" in html


def test_legend_rows_name_their_statuses(page: str) -> None:
    """The status filter dims legend rows by their `data-statuses`: every status has a line-style row."""
    rows = line_style_rows()
    named = {status for row in rows for status in row.statuses.split()}
    assert named == set(STATUS_LABELS)
    assert 'data-statuses="planned"' in page and 'data-statuses="completed existing"' in page


def test_filter_spares_reference_layers(page: str) -> None:
    """Boundaries are not plan items: the status filter leaves them alone."""
    configs = re.findall(r'"id": "(\w+)".*?"statusFilter": (true|false)', page, re.DOTALL)
    assert dict(configs)["admin_boundaries"] == "false"
    assert dict(configs)["rail_lines"] == "true"


def test_layer_document(catalog: Catalog) -> None:
    """A collection's own map: the layer over the county boundaries, opening where it then zooms from."""
    doc = layer_document(catalog, catalog.layers["rail_stations"])
    assert [m.layer for m in doc.layers] == ["admin_boundaries", "rail_stations"]
    assert doc.title == catalog.layers["rail_stations"].title
    assert [m.layer for m in layer_document(catalog, catalog.layers["admin_boundaries"]).layers] == [
        "admin_boundaries"
    ]
    html = render_map(doc, catalog, NO_BASEMAP, focus={"layer": "rail_stations", "feature": 7})
    setup = re.search(r"jxplan\.setup\(\w+, (\{.*\})\);", html)
    assert setup and json.loads(setup.group(1))["focus"] == {"layer": "rail_stations", "feature": 7}
