"""The map's tool controls: full screen, distance and area measuring, cursor coordinates."""

from __future__ import annotations

import folium
from folium import plugins
from folium.template import Template


class Measure(plugins.MeasureControl):
    """Folium's measure control, with Leaflet ≥ 1.8 kept from panning while a measurement is drawn."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            L.Control.Measure.include({
                _setCaptureMarkerIcon: function () {
                    // The capture marker covers the whole map; Leaflet 1.8 pans to focused markers.
                    this._captureMarker.options.autoPanOnFocus = false;
                    this._captureMarker.setIcon(L.divIcon({iconSize: this._map.getSize().multiplyBy(2)}));
                },
            });
            var {{ this.get_name() }} = new L.Control.Measure({{ this.options|tojavascript }});
            {{ this._parent.get_name() }}.addControl({{ this.get_name() }});
        {% endmacro %}
        """
    )


def add_controls(m: folium.Map) -> None:
    """Add the full-screen button, the measure tool (km, km², ha) and the cursor coordinates."""
    plugins.Fullscreen(
        position="topleft", title="全屏 Full screen", title_cancel="退出全屏 Exit full screen"
    ).add_to(m)
    Measure(
        position="topleft",
        primary_length_unit="kilometers",
        secondary_length_unit="meters",
        primary_area_unit="sqkilometers",
        secondary_area_unit="hectares",
        units={"sqkilometers": {"factor": 1e-6, "display": "平方公里", "decimals": 2}},
        localization="cn",
    ).add_to(m)
    plugins.MousePosition(
        position="bottomright",
        separator=", ",
        prefix="纬度, 经度 Lat, Lon:",
        # Shown only once the pointer is over the map: Chrome may draw Chinese text that exists before
        # the bundled font has loaded as empty boxes for good (on computers without a Chinese font).
        empty_string="",
        num_digits=5,
    ).add_to(m)
