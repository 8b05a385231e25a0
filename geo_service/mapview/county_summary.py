"""The 区县汇总 County summary page of the planning analysis: a choropleth of the seven counties by the
share built, the table of the city and its counties, a bar chart of items by status per county (Chart.js,
served from the vendor tree) and a CSV download, all from `/processes/county-summary/execution`.
"""

from __future__ import annotations

from typing import ClassVar

from folium.template import Template

from geo_service.catalog import STATUS_LABELS, Bilingual, Catalog, MapDocument, MapLayer
from geo_service.mapview.inert import RawHtml
from geo_service.mapview.page import MapPage
from geo_service.mapview.plan_layer import PageSetup
from geo_service.mapview.render import base_page, page_html
from geo_service.mapview.site_check import ANALYSIS_JS, CHART_JS, AnalysisScripts, labels_config
from geo_service.mapview.templating import render
from geo_service.settings import Settings

COUNTY_SUMMARY = "county_summary"
BOUNDARIES = "admin_boundaries"

COUNTY_SUMMARY_DOC = MapDocument(
    id=COUNTY_SUMMARY,
    title=Bilingual(zh="区县规划汇总", en="County summary"),
    description=Bilingual(
        zh="七个区县的规划项目数、按状态分布、片区面积、轨道与道路里程和已建成比例;可下载 CSV。",
        en="Plan items per county by status, zone area, rail and road length and the share built; "
        "downloadable as CSV.",
    ),
    center=(30.75, 120.80),
    zoom=9,
    layers=[MapLayer(layer=BOUNDARIES)],
)

# The analysis pages listed on /maps after the thematic maps.
ANALYSIS_PAGES: tuple[MapDocument, ...] = (COUNTY_SUMMARY_DOC,)


class CountySummarySetup(AnalysisScripts):
    """The table, chart and CSV button below the map, and the script that fills them and the choropleth."""

    default_js: ClassVar[list[tuple[str, str]]] = [
        ("chart_js", CHART_JS),
        ("jxplan_analysis_js", ANALYSIS_JS),
    ]
    _template = Template(
        """
        {% macro script(this, kwargs) %}
            jxplan.countySummary({{ this._parent.get_name() }}, {{ this.config|tojson }});
        {% endmacro %}
        """
    )

    def __init__(self) -> None:
        super().__init__()
        self._name = "CountySummarySetup"
        self.config = {
            "labels": labels_config(),
            "boundaries": f"/collections/{BOUNDARIES}/items?f=json&limit=100",
            "tableId": "jx-cs-table",
            "chartId": "jx-cs-chart",
            "notesId": "jx-cs-notes",
            "csvId": "jx-cs-csv",
            "csvStatusId": "jx-cs-csv-status",
        }


def build_county_summary(catalog: Catalog, settings: Settings) -> MapPage:
    """The Folium tree of the County summary page, not yet rendered."""
    page, m = base_page(COUNTY_SUMMARY_DOC, settings, PageSetup(finder=False))
    CountySummarySetup().add_to(m)
    # below the map: the page is a column (header, map, this section)
    page.html.add_child(
        RawHtml(render("county_summary.html", statuses=STATUS_LABELS)), name="jx_county_summary"
    )
    return page


def render_county_summary(catalog: Catalog, settings: Settings) -> str:
    """The County summary page; every script and stylesheet it links is served locally."""
    return page_html(build_county_summary(catalog, settings))
