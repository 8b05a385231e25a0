"""The HTML shell of a map page: language, title, a header bar above the map, scripts inside the body."""

from __future__ import annotations

from branca.element import Figure
from folium.template import Template

from geo_service.catalog import MapDocument
from geo_service.mapview.inert import RawHtml
from geo_service.mapview.templating import render


class MapPage(Figure):
    """A Folium figure rendered as a Chinese-first page whose title is escaped."""

    _template = Template(
        "<!DOCTYPE html>\n"
        '<html lang="zh-CN">\n'
        "<head>\n"
        "<title>{{ this.title|e }}</title>\n"
        # An empty icon, so that browsers do not ask the server for /favicon.ico.
        '<link rel="icon" href="data:,">\n'
        "{{ this.header.render(**kwargs) }}\n"
        "</head>\n"
        '<body class="jx-page">\n'
        "{{ this.html.render(**kwargs) }}\n"
        "<script>\n"
        "{{ this.script.render(**kwargs) }}\n"
        "</script>\n"
        "</body>\n"
        "</html>\n"
    )

    def __init__(self, doc: MapDocument) -> None:
        super().__init__(title=str(doc.title))
        self._name = "MapPage"
        # Added before the map so that the header bar comes first in the body.
        self.html.add_child(RawHtml(render("header.html", doc=doc)), name="jx_header")
