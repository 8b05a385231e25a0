"""Which properties vector tiles carry at which zoom (the catalogue's `tiles.properties`), read back with a
real MVT decoder: few at low zoom, every one at high zoom, the feature id always; and the tileset metadata
and TileJSON saying so."""

from __future__ import annotations

import json
from typing import Any

import mapbox_vector_tile
import morecantile
from fastapi.testclient import TestClient

from geo_service.catalog import Catalog, read_bench_layer
from geo_service.ogc.tiles import property_set, tile_sql
from geo_service.settings import PROJECT_ROOT

Seeds = dict[str, dict[str, dict[str, Any]]]
TMS = morecantile.tms.get("WebMercatorQuad")
STATION = "c01_jiaxing_south_stn"
LOW = ["code", "name_zh", "name_en", "category", "status", "accuracy"]  # layers/catalog.yaml, zooms 0–11


def _station_tile(seeds: Seeds, zoom: int) -> morecantile.Tile:
    lon, lat = seeds["rail_stations"][STATION]["geometry"]["coordinates"]
    return TMS.tile(lon, lat, zoom)


def _features(client: TestClient, layer: str, tile: morecantile.Tile) -> list[dict[str, Any]]:
    response = client.get(f"/collections/{layer}/tiles/WebMercatorQuad/{tile.z}/{tile.y}/{tile.x}")
    assert response.status_code == 200
    features: list[dict[str, Any]] = mapbox_vector_tile.decode(response.content)[layer]["features"]
    assert features
    return features


def _station(features: list[dict[str, Any]]) -> dict[str, Any]:
    [station] = [f for f in features if f["properties"].get("code") == STATION]
    return station


def test_a_low_zoom_tile_carries_only_the_declared_properties(client: TestClient, seeds: Seeds) -> None:
    """At zoom 10 every feature of a plan layer's tile carries exactly its non-empty low-zoom properties
    (what the map styles, labels and filters by), not the plan text; its MVT id is the feature's id, which
    /items/{id} answers with the whole feature."""
    features = _features(client, "rail_stations", _station_tile(seeds, 10))
    for feature in features:
        seed = seeds["rail_stations"][feature["properties"]["code"]]["properties"]
        expected = {name: seed[name] for name in LOW if seed.get(name) is not None}
        assert feature["properties"] == expected
    station = _station(features)
    whole = client.get(f"/collections/rail_stations/items/{station['id']}").json()
    assert whole["properties"]["code"] == STATION
    assert whole["properties"]["plan_text"] == seeds["rail_stations"][STATION]["properties"]["plan_text"]


def test_a_high_zoom_tile_carries_every_property(client: TestClient, seeds: Seeds) -> None:
    """From zoom 12 (`all`) the tile carries every property the feature has: scalars as they are, arrays as
    their JSON text."""
    for zoom in (12, 14):
        station = _station(_features(client, "rail_stations", _station_tile(seeds, zoom)))
        seed = seeds["rail_stations"][STATION]["properties"]
        expected = {name: value for name, value in seed.items() if value is not None}
        got = {
            name: json.loads(value) if isinstance(expected.get(name), list) else value
            for name, value in station["properties"].items()
        }
        assert "plan_text" in got and got == expected, zoom


def test_the_dataset_tile_follows_each_layers_declaration(client: TestClient, seeds: Seeds) -> None:
    """In the whole plan's tile at zoom 10 the county boundaries carry their own low-zoom set (adcode and
    level besides the common ones), the plan layers theirs."""
    tile = _station_tile(seeds, 10)
    response = client.get(f"/tiles/WebMercatorQuad/{tile.z}/{tile.y}/{tile.x}")
    decoded = mapbox_vector_tile.decode(response.content)
    boundary_keys = {k for f in decoded["admin_boundaries"]["features"] for k in f["properties"]}
    assert {"adcode", "level", "status"} <= boundary_keys <= {*LOW, "adcode", "level"}
    station_keys = {k for f in decoded["rail_stations"]["features"] for k in f["properties"]}
    assert "status" in station_keys and station_keys <= set(LOW)


def test_tile_metadata_says_which_fields_from_which_zoom(client: TestClient, catalog: Catalog) -> None:
    """TileJSON lists every field a tile may carry with its type and, in `fields_minzoom`, the lowest zoom
    carrying it; the OGC tileset's propertiesSchema says the same as `x-minTileMatrix`."""
    tilejson = client.get("/collections/rail_stations/tiles/WebMercatorQuad/tilejson").json()
    [vector] = tilejson["vector_layers"]
    layer = catalog.layers["rail_stations"]
    assert list(vector["fields"]) == layer.property_names
    assert vector["fields"]["status"] == "String" and vector["fields"]["stated_area_km2"] == "Number"
    minzoom = vector["fields_minzoom"]
    assert {name for name, z in minzoom.items() if z == 0} == set(LOW)
    assert minzoom["plan_text"] == 12
    tileset = client.get("/collections/rail_stations/tiles/WebMercatorQuad").json()
    [entry] = tileset["layers"]
    schema = entry["propertiesSchema"]["properties"]
    assert schema["status"]["x-minTileMatrix"] == "0" and schema["plan_text"]["x-minTileMatrix"] == "12"
    assert schema["stated_area_km2"]["type"] == "number"


def test_the_property_set_is_part_of_the_tile_key(client: TestClient, catalog: Catalog) -> None:
    """Zooms with different property sets have different fingerprints (part of the cache key and ETag);
    zooms of one step share it."""
    layers = [catalog.layers["rail_stations"]]
    assert property_set(layers, 3) == property_set(layers, 11) != property_set(layers, 12)
    assert property_set(layers, 12) == property_set(layers, 22)


def test_bench_parcels_tiles_carry_what_styling_needs_until_zoom_13() -> None:
    """The benchmark layer's z12 statement encodes the id, status, accuracy and land use (its style colours
    by land use) and no other property; from zoom 14 every property."""
    layer = read_bench_layer(PROJECT_ROOT / "layers", "bench_parcels")
    assert layer.tile_properties(12) == ["status", "accuracy", "land_use"]
    sql = tile_sql([layer], 12, 3426, 1682).sql
    assert 'AS "land_use"' in sql and 'AS "code"' not in sql and 'AS "name_zh"' not in sql
    assert layer.tile_properties(14) == layer.property_names
    assert 'AS "area_m2"' in tile_sql([layer], 14, 13704, 6728).sql
