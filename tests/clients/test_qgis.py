"""QGIS's OAPIF provider (the "Add WFS / OGC API – Features Layer" of QGIS) reading the live service.

The QGIS bindings belong to Debian's Python (/usr/bin/python3, package python3-qgis), not to the project's
venv, so each QGIS session runs `qgis_probe.py` in a subprocess and the tests assert on the JSON it prints.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from shapely.geometry import box, shape
from shapely.ops import unary_union

from geo_service.catalog import Catalog, load_catalog
from geo_service.settings import PROJECT_ROOT

LAYER_IDS = list(load_catalog(PROJECT_ROOT / "layers", PROJECT_ROOT / "maps").layers)
DEBIAN_PYTHON = "/usr/bin/python3"  # Debian's Python, where python3-qgis installs the bindings
PROBE = Path(__file__).with_name("qgis_probe.py")
JIAXING = (119.8, 29.9, 121.95, 31.4)  # every layer lies inside this box (lon/lat)
JIASHAN = (120.85, 30.80, 121.00, 30.95)  # a box around 嘉善 that cuts several layers
PLANNED = "\"status\" = 'planned'"  # what an analyst types in QGIS's Filter… dialog
FILTER_LAYER = "rail_lines"
TOLERANCE = 1e-6  # degrees; coordinates and extents may be rounded on the way
Seeds = dict[str, dict[str, dict[str, Any]]]


def run_probe(job: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Runs one QGIS session (headless, with a fresh profile and temp dir) and returns what it printed."""
    runtime = workdir / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = os.environ | {
        "QT_QPA_PLATFORM": "offscreen",
        "XDG_RUNTIME_DIR": str(runtime),
        "TMPDIR": str(workdir),
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    result = subprocess.run(
        [DEBIAN_PYTHON, "-I", str(PROBE)],  # -I: Debian's own site-packages only, never the venv's
        input=json.dumps(job | {"profile": str(workdir / "profile")}),
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"QGIS probe failed ({result.returncode}):\n{result.stderr}"
    output: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])  # the probe's one JSON line
    return output


def geometries(seeds: Seeds, layer_id: str) -> dict[str, Any]:
    """The shapely geometry of each seed feature that has one, by code."""
    return {c: shape(f["geometry"]) for c, f in seeds[layer_id].items() if f["geometry"] is not None}


@pytest.fixture(scope="module")
def qgis_view(live_server: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What QGIS sees of every collection: opened, counted, read whole and read through a box."""
    job = {"url": live_server, "layers": LAYER_IDS, "rectangle": list(JIASHAN)}
    return run_probe(job, tmp_path_factory.mktemp("qgis"))


def layer_view(qgis_view: dict[str, Any], layer_id: str) -> dict[str, Any]:
    """One collection as QGIS sees it; fails with QGIS's own message when QGIS could not open it."""
    view: dict[str, Any] = qgis_view["layers"][layer_id]
    assert view["valid"], f"QGIS could not open {layer_id}: {view.get('error')}\n{qgis_view['messages']}"
    return view


@pytest.mark.parametrize("layer_id", LAYER_IDS)
def test_qgis_opens_the_collection_with_every_feature(
    qgis_view: dict[str, Any], seeds: Seeds, layer_id: str
) -> None:
    """The layer is valid, its feature count is the seeds', and reading it gives every seed feature, with a
    geometry exactly where the seed has one."""
    view = layer_view(qgis_view, layer_id)
    assert view["feature_count"] == len(seeds[layer_id])
    assert view["features"] == {c: f["geometry"] is not None for c, f in seeds[layer_id].items()}


@pytest.mark.parametrize("layer_id", LAYER_IDS)
def test_qgis_fields_geometry_type_and_crs(
    qgis_view: dict[str, Any], catalog: Catalog, layer_id: str
) -> None:
    """QGIS finds every catalogue property as a field, the catalogue's geometry type, and longitude/latitude
    WGS 84 (QGIS 3.22 reads CRS84 and names it EPSG:4326; QGIS with Part 2 support names it OGC:CRS84)."""
    view = layer_view(qgis_view, layer_id)
    layer = catalog.layers[layer_id]
    missing = [name for name in layer.property_names if name not in view["fields"]]
    assert not missing, f"fields QGIS does not see: {missing}"
    assert view["wkb_type"] == layer.geometry_type
    assert view["crs"] in {"EPSG:4326", "OGC:CRS84"}


@pytest.mark.parametrize("layer_id", LAYER_IDS)
def test_qgis_extent_covers_the_seeds_inside_jiaxing(
    qgis_view: dict[str, Any], seeds: Seeds, layer_id: str
) -> None:
    """The layer extent lies in the Jiaxing region (so the axes are not swapped) and holds every seed
    geometry."""
    xmin, ymin, xmax, ymax = layer_view(qgis_view, layer_id)["extent"]
    assert JIAXING[0] <= xmin < xmax <= JIAXING[2]
    assert JIAXING[1] <= ymin < ymax <= JIAXING[3]
    sxmin, symin, sxmax, symax = unary_union(list(geometries(seeds, layer_id).values())).bounds
    assert xmin <= sxmin + TOLERANCE and ymin <= symin + TOLERANCE
    assert xmax >= sxmax - TOLERANCE and ymax >= symax - TOLERANCE


@pytest.mark.parametrize("layer_id", LAYER_IDS)
def test_qgis_filter_rectangle(qgis_view: dict[str, Any], seeds: Seeds, layer_id: str) -> None:
    """A QgsFeatureRequest with a filter rectangle (exact intersection) returns exactly the seed features
    whose geometry intersects the box; features without a geometry never match."""
    area = box(*JIASHAN)
    expected = {c for c, g in geometries(seeds, layer_id).items() if g.intersects(area)}
    returned = layer_view(qgis_view, layer_id)["in_rectangle"]
    assert len(returned) == len(set(returned))
    assert set(returned) == expected


def test_the_filter_rectangle_cuts_some_layers(seeds: Seeds) -> None:
    """The box of the rectangle test selects part of some layer, so that test can tell a filter from none."""
    area = box(*JIASHAN)
    partial = [
        layer_id
        for layer_id in LAYER_IDS
        if 0 < sum(g.intersects(area) for g in geometries(seeds, layer_id).values()) < len(seeds[layer_id])
    ]
    assert len(partial) >= 3, partial


def test_qgis_draws_every_layer(live_server: str, catalog: Catalog, output_dir: Path, tmp_path: Path) -> None:
    """QGIS's map renderer draws all the collections from the service, reprojected to EPSG:4549
    (tests/output/qgis.png)."""
    target = output_dir / "qgis.png"
    render = {
        "path": str(target),
        "crs": "EPSG:4549",  # CGCS2000 / 3-degree Gauss-Kruger CM 120E, as Jiaxing's planners use
        "width": 1600,
        "height": 1200,
        "styles": {layer_id: layer.style.model_dump() for layer_id, layer in catalog.layers.items()},
        "labels": {"rail_stations": "name_zh", "strategic_platforms": "name_zh"},
    }
    drawn_first = [*reversed(LAYER_IDS)]  # QGIS draws the first layer of the list on top
    result = run_probe({"url": live_server, "layers": drawn_first, "render": render}, tmp_path)
    for layer_id in LAYER_IDS:
        layer_view(result, layer_id)
    image = result["render"]
    assert image["saved"] and image["errors"] == []
    assert image["crs"] == "EPSG:4549"
    assert (image["width"], image["height"]) == (1600, 1200)
    assert image["drawn_fraction"] > 0.02, image
    assert target.stat().st_size > 10_000


@pytest.fixture(scope="module")
def filtered_by_qgis(live_server: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """QGIS opens FILTER_LAYER with the layer filter PLANNED (Layer ▸ Filter…, i.e. setSubsetString).

    Debian 12's QGIS 3.22 evaluates the filter itself after downloading the layer; QGIS sends it to the
    server as CQL2 only from 3.32 on.
    The server side of that dialect is tested in tests/ogc/test_filter.py."""
    job = {"url": live_server, "layers": [FILTER_LAYER], "subset": PLANNED}
    return run_probe(job, tmp_path_factory.mktemp("qgis-filter"))


def test_qgis_filter_expression_selects_the_planned_features(
    filtered_by_qgis: dict[str, Any], seeds: Seeds
) -> None:
    """The layer filter `"status" = 'planned'` leaves exactly the seed features whose status is planned, and
    the layer's feature count says so."""
    view = layer_view(filtered_by_qgis, FILTER_LAYER)
    planned = {c for c, f in seeds[FILTER_LAYER].items() if f["properties"]["status"] == "planned"}
    assert 0 < len(planned) < len(seeds[FILTER_LAYER])
    assert view["subset_accepted"]
    assert view["subset_count"] == len(planned)
    assert sorted(view["subset_codes"]) == sorted(planned)


def test_qgis_draws_the_vector_tiles(live_server: str, output_dir: Path, tmp_path: Path) -> None:
    """QGIS's vector tile layer, given the plan's tile URL template as TileJSON publishes it (zoom/row/column
    as {z}/{y}/{x}), is valid in EPSG:3857 and draws the plan over Jiaxing without errors."""
    tilejson = httpx.get(f"{live_server}/tiles/WebMercatorQuad/tilejson").json()
    [template] = tilejson["tiles"]
    assert template.endswith("/{z}/{y}/{x}")
    target = output_dir / "qgis-tiles.png"
    job = {"vector_tiles": {"template": template, "extent": [120.3, 30.3, 121.3, 31.1], "path": str(target)}}
    tiles = run_probe(job, tmp_path)["vector_tiles"]
    assert tiles["valid"] and tiles["saved"] and tiles["errors"] == [], tiles
    assert tiles["crs"] == "EPSG:3857"
    assert tiles["drawn_fraction"] > 0.02, tiles
