"""Opens the service's collections in QGIS's OAPIF provider and prints what QGIS sees, as JSON.

Run by tests/clients/test_qgis.py with Debian's /usr/bin/python3, which has the QGIS bindings (package
python3-qgis); the project's own Python does not. It reads one JSON job on stdin:

    {"url": "http://127.0.0.1:8000", "layers": ["rail_stations", ...], "profile": "a fresh directory",
     "rectangle": [xmin, ymin, xmax, ymax] | null, "subset": "QGIS expression" | null,
     "render": {"path": "out.png", "width": 1600, "height": 1200, "crs": "EPSG:4549",
                "styles": {layer_id: {"color": "#rrggbb", "fill_opacity": 0.2, "weight": 2}},
                "labels": {layer_id: "field"}} | null,
     "vector_tiles": {"template": "…/{z}/{y}/{x}", "extent": [w, s, e, n], "path": "out.png"} | null}

and prints {"qgis_version": ..., "messages": [...], "layers": {layer_id: {...}}, "render": {...}} on stdout.
Only the standard library and QGIS are used, so the script needs nothing from the project's venv.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qgis.core import (  # after QT_QPA_PLATFORM is set: Qt reads it when it loads
    Qgis,
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeatureRequest,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsPalLayerSettings,
    QgsProject,
    QgsRectangle,
    QgsTextFormat,
    QgsVectorLayer,
    QgsVectorLayerSimpleLabeling,
    QgsVectorTileLayer,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QSize
from qgis.PyQt.QtGui import QColor, QFont


def open_layer(url: str, layer_id: str) -> QgsVectorLayer:
    """The collection as QGIS's "Add WFS / OGC API – Features Layer" dialog opens it."""
    return QgsVectorLayer(f"url='{url}' typename='{layer_id}'", layer_id, "OAPIF")


def codes(layer: QgsVectorLayer, request: QgsFeatureRequest | None = None) -> list[str]:
    """The `code` of each feature the request returns, in the order QGIS returns them."""
    return [str(feature["code"]) for feature in layer.getFeatures(request or QgsFeatureRequest())]


def describe(url: str, layer_id: str, rectangle: list[float] | None, subset: str | None) -> dict[str, Any]:
    """What QGIS reports about one collection: validity, count, fields, geometry type, CRS, extent, codes."""
    layer = open_layer(url, layer_id)
    if not layer.isValid():
        return {
            "valid": False,
            "error": layer.dataProvider().error().message() if layer.dataProvider() else "",
        }
    extent = layer.extent()
    out: dict[str, Any] = {
        "valid": True,
        "feature_count": layer.featureCount(),
        "fields": [field.name() for field in layer.fields()],
        "wkb_type": QgsWkbTypes.displayString(layer.wkbType()),
        "crs": layer.crs().authid(),
        "extent": [extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum()],
        "features": {
            str(f["code"]): not (f.geometry().isNull() or f.geometry().isEmpty()) for f in layer.getFeatures()
        },
    }
    if rectangle is not None:
        # A freshly opened layer, so that the rectangle request is its first read, not served from the
        # features the first layer already holds. (QGIS 3.22 then reads these small layers whole and keeps
        # what intersects the box.)
        request = QgsFeatureRequest().setFilterRect(QgsRectangle(*rectangle))
        request.setFlags(QgsFeatureRequest.ExactIntersect)
        out["in_rectangle"] = codes(open_layer(url, layer_id), request)
    if subset is not None:
        filtered = open_layer(url, layer_id)
        out["subset_accepted"] = filtered.setSubsetString(subset)
        out["subset_count"] = filtered.featureCount()
        out["subset_codes"] = codes(filtered)
    return out


def apply_style(layer: QgsVectorLayer, style: dict[str, Any]) -> None:
    """A single-colour symbol: the colour, a fill of that colour at `fill_opacity`, lines `weight` px wide."""
    colour = QColor(style["color"])
    symbol = layer.renderer().symbol()
    geometry = layer.geometryType()
    if geometry == QgsWkbTypes.PolygonGeometry:
        fill = QColor(colour)
        fill.setAlphaF(float(style.get("fill_opacity", 0.2)))
        symbol.setColor(fill)
        outline = symbol.symbolLayer(0)
        outline.setStrokeColor(colour)
        outline.setStrokeWidth(0.26 * float(style.get("weight", 1)))
    elif geometry == QgsWkbTypes.LineGeometry:
        symbol.setColor(colour)
        symbol.setWidth(0.26 * float(style.get("weight", 1)))
    else:
        symbol.setColor(colour)
        symbol.setSize(2.5)


def drawn_fraction(image: Any) -> float:
    """How much of the image is not white background (every 4th pixel both ways)."""
    white = QColor("white").rgb()
    sampled = drawn = 0
    for y in range(0, image.height(), 4):
        for x in range(0, image.width(), 4):
            sampled += 1
            drawn += image.pixel(x, y) != white
    return drawn / sampled if sampled else 0.0


def render_tiles(job: dict[str, Any]) -> dict[str, Any]:
    """Opens the service's vector tiles as QGIS's "Vector Tiles" connection does (an XYZ template) and
    draws the given WGS 84 extent; says whether the layer is valid and how much was drawn."""
    template = job["template"].replace("&", "%26")
    layer = QgsVectorTileLayer(f"type=xyz&url={template}&zmin=0&zmax=22", "plan tiles")
    result: dict[str, Any] = {"valid": layer.isValid()}
    if not layer.isValid():
        return result
    map_settings = QgsMapSettings()
    map_settings.setLayers([layer])
    destination = QgsCoordinateReferenceSystem("EPSG:3857")
    map_settings.setDestinationCrs(destination)
    wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
    to_map = QgsCoordinateTransform(wgs84, destination, QgsProject.instance())
    map_settings.setExtent(to_map.transformBoundingBox(QgsRectangle(*job["extent"])))
    map_settings.setOutputSize(QSize(int(job.get("width", 800)), int(job.get("height", 600))))
    map_settings.setBackgroundColor(QColor("white"))
    renderer = QgsMapRendererParallelJob(map_settings)
    renderer.start()
    renderer.waitForFinished()
    image = renderer.renderedImage()
    result |= {
        "saved": image.save(job["path"], "PNG"),
        "crs": layer.crs().authid(),
        "drawn_fraction": drawn_fraction(image),
        "errors": [f"{e.layerID}: {e.message}" for e in renderer.errors()],
    }
    return result


def render(url: str, layer_ids: list[str], job: dict[str, Any]) -> dict[str, Any]:
    """Draws the collections (first one on top) to a PNG, as QGIS's map canvas would, and says how much
    of the image is not background."""
    layers = [open_layer(url, layer_id) for layer_id in layer_ids]
    labels: dict[str, str] = job.get("labels", {})
    for layer in layers:
        style = job.get("styles", {}).get(layer.name())
        if style:
            apply_style(layer, style)
        if layer.name() in labels:
            text = QgsTextFormat()
            text.setFont(QFont("WenQuanYi Micro Hei"))
            text.setSize(9)
            text.buffer().setEnabled(True)
            settings = QgsPalLayerSettings()
            settings.fieldName = labels[layer.name()]
            settings.setFormat(text)
            layer.setLabeling(QgsVectorLayerSimpleLabeling(settings))
            layer.setLabelsEnabled(True)
    map_settings = QgsMapSettings()
    map_settings.setLayers(layers)
    # The map in the CRS the job names (as when the project CRS is set to it); QGIS reprojects the layers.
    destination = QgsCoordinateReferenceSystem(job.get("crs") or layers[0].crs().authid())
    map_settings.setDestinationCrs(destination)
    extent = QgsRectangle()
    for layer in layers:
        extent.combineExtentWith(layer.extent())
    to_map = QgsCoordinateTransform(layers[0].crs(), destination, QgsProject.instance())
    map_settings.setExtent(to_map.transformBoundingBox(extent.buffered(0.02)))
    map_settings.setOutputSize(QSize(int(job.get("width", 1600)), int(job.get("height", 1200))))
    map_settings.setBackgroundColor(QColor("white"))
    map_settings.setFlag(QgsMapSettings.Antialiasing, True)
    renderer = QgsMapRendererParallelJob(map_settings)
    renderer.start()
    renderer.waitForFinished()
    image = renderer.renderedImage()
    saved = image.save(job["path"], "PNG")
    return {
        "saved": saved,
        "crs": map_settings.destinationCrs().authid(),
        "width": image.width(),
        "height": image.height(),
        "drawn_fraction": drawn_fraction(image),
        "errors": [f"{e.layerID}: {e.message}" for e in renderer.errors()],
    }


def main() -> None:
    job = json.load(sys.stdin)
    app = QgsApplication([], False, job.get("profile", ""))
    QgsApplication.setPrefixPath("/usr", True)
    app.initQgis()
    messages: list[str] = []
    QgsApplication.messageLog().messageReceived.connect(
        lambda message, tag, level: messages.append(f"{tag}: {message}")
    )
    try:
        result: dict[str, Any] = {"qgis_version": Qgis.QGIS_VERSION, "messages": messages}
        result["layers"] = {
            layer_id: describe(job["url"], layer_id, job.get("rectangle"), job.get("subset"))
            for layer_id in job.get("layers", [])
        }
        if job.get("vector_tiles"):
            result["vector_tiles"] = render_tiles(job["vector_tiles"])
        if job.get("render"):
            result["render"] = render(job["url"], job["layers"], job["render"])
        json.dump(result, sys.stdout, ensure_ascii=False)
    finally:
        app.exitQgis()


if __name__ == "__main__":
    main()
