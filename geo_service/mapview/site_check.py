"""The 选址检查 Site check tool of every map page: a button, a side panel with the server's report, the site
and the report's items highlighted on the map.

The page only asks the server: `jxplan-analysis.js` posts the drawn geometry (or a picked feature's href) to
`/processes/site-check/execution` and shows the answer as text. Drawing uses Leaflet-Geoman, as the editor
does. The same script holds the report the editor's Check button shows and the County summary page's code.
"""

from __future__ import annotations

from typing import Any, ClassVar

import folium
from branca.element import MacroElement
from folium.template import Template

from geo_service.caching import versioned
from geo_service.catalog import ACCURACY_LABELS, STATUS_LABELS
from geo_service.mapview.assets import vendor_url
from geo_service.mapview.inert import add_links, render_inert

GEOMAN_JS = vendor_url("@geoman-io/leaflet-geoman-free/dist/leaflet-geoman.js")
GEOMAN_CSS = vendor_url("@geoman-io/leaflet-geoman-free/dist/leaflet-geoman.css")
CHART_JS = vendor_url("chart.js/dist/chart.umd.min.js")
ANALYSIS_JS = versioned("/static/app/jxplan-analysis.js")
ANALYSIS_CSS = versioned("/static/app/jxplan-analysis.css")


def labels_config() -> dict[str, Any]:
    """The coded values the report shows, Chinese first."""
    return {"status": STATUS_LABELS, "accuracy": ACCURACY_LABELS}


class AnalysisScripts(MacroElement):
    """Links the analysis script and styles (after the page script, whose namespace it extends)."""

    default_js: ClassVar[list[tuple[str, str]]] = [("jxplan_analysis_js", ANALYSIS_JS)]
    default_css: ClassVar[list[tuple[str, str]]] = [("jxplan_analysis_css", ANALYSIS_CSS)]
    _template = Template("")

    def __init__(self) -> None:
        super().__init__()
        self._name = "AnalysisScripts"

    def render(self, **kwargs: Any) -> str:
        """Link the files."""
        add_links(self, self.default_js, self.default_css)
        render_inert(self, **kwargs)
        return ""


class SiteCheckSetup(AnalysisScripts):
    """The Site check button and panel of a map page, with Geoman to draw the site."""

    default_js: ClassVar[list[tuple[str, str]]] = [
        ("leaflet_geoman_js", GEOMAN_JS),
        ("jxplan_analysis_js", ANALYSIS_JS),
    ]
    default_css: ClassVar[list[tuple[str, str]]] = [
        ("leaflet_geoman_css", GEOMAN_CSS),
        ("jxplan_analysis_css", ANALYSIS_CSS),
    ]
    _template = Template(
        """
        {% macro script(this, kwargs) %}
            jxplan.siteCheckTool({{ this._parent.get_name() }}, {{ this.config|tojson }});
        {% endmacro %}
        """
    )

    def __init__(self) -> None:
        super().__init__()
        self._name = "SiteCheckSetup"
        self.config = {"labels": labels_config()}


def add_site_check(m: folium.Map) -> None:
    """Add the Site check tool to a map (after `PageSetup`, whose script it needs)."""
    SiteCheckSetup().add_to(m)
