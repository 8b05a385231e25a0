"""OGC API – Tiles: Mapbox Vector Tiles of each collection and of the whole plan, read back with a real MVT
decoder and compared with the seed features (which feature is in which tile, where, with which properties)."""

from __future__ import annotations

from typing import Any

import mapbox_vector_tile
import morecantile
import pytest
from fastapi.testclient import TestClient
from shapely.geometry import box, shape
from sqlalchemy import text

from geo_service.app import create_app
from geo_service.catalog import Catalog
from geo_service.editing.keys import add_key
from geo_service.settings import Settings
from tests.conftest import Writable

Seeds = dict[str, dict[str, dict[str, Any]]]
TMS = morecantile.tms.get("WebMercatorQuad")
MVT = "application/vnd.mapbox-vector-tile"
LAYERS = ["admin_boundaries", "demonstration_zone", "g60_platforms", "rail_lines", "rail_stations"]
SOUTH_STATION = "c01_jiaxing_south_stn"


def _tile_url(layer: str | None, tile: morecantile.Tile) -> str:
    prefix = f"/collections/{layer}" if layer else ""
    return f"{prefix}/tiles/WebMercatorQuad/{tile.z}/{tile.y}/{tile.x}"


def _decode(content: bytes) -> dict[str, Any]:
    return mapbox_vector_tile.decode(content)


def _buffered(tile: morecantile.Tile, fraction: float) -> Any:
    west, south, east, north = TMS.xy_bounds(tile)
    pad = (east - west) * fraction
    (w, s), (e, n) = TMS.lnglat(west - pad, south - pad), TMS.lnglat(east + pad, north + pad)
    return box(w, s, e, n)


def _tiles_of(seeds: Seeds, layer: str, zoom: int) -> list[morecantile.Tile]:
    """Every tile at `zoom` that some seed feature of the layer touches (its bounding box's tiles)."""
    found: set[morecantile.Tile] = set()
    for feature in seeds[layer].values():
        if feature["geometry"]:
            found.update(TMS.tiles(*shape(feature["geometry"]).bounds, zooms=[zoom]))
    return sorted(found, key=lambda t: (t.x, t.y))


@pytest.mark.parametrize("layer", LAYERS)
def test_each_tile_holds_the_features_it_covers(client: TestClient, seeds: Seeds, layer: str) -> None:
    """At zoom 9, every tile of the layer holds every seed feature intersecting it, and none that lies beyond
    the tile plus its 64/4096 drawing buffer; properties come from the feature."""
    tiles = _tiles_of(seeds, layer, 9)
    assert tiles
    for tile in tiles:
        response = client.get(_tile_url(layer, tile))
        inside = {
            c
            for c, f in seeds[layer].items()
            if f["geometry"] and shape(f["geometry"]).intersects(_buffered(tile, 0))
        }
        near = {
            c
            for c, f in seeds[layer].items()
            if f["geometry"] and shape(f["geometry"]).intersects(_buffered(tile, 64 / 4096 + 0.002))
        }
        if response.status_code == 204:
            assert not inside, tile
            continue
        assert response.status_code == 200 and response.headers["content-type"] == MVT
        [(name, decoded)] = _decode(response.content).items()
        assert name == layer
        codes = {f["properties"]["code"] for f in decoded["features"]}
        assert inside <= codes <= near, tile
        for f in decoded["features"]:
            props = seeds[layer][f["properties"]["code"]]["properties"]
            assert f["properties"]["name_zh"] == props["name_zh"]
            assert f["properties"]["status"] == props["status"]
            assert isinstance(f["id"], int)


def test_point_lands_where_the_station_is(client: TestClient, seeds: Seeds) -> None:
    """嘉兴南站 decodes, at zoom 14, to within one tile pixel of its seed coordinate."""
    lon, lat = seeds["rail_stations"][SOUTH_STATION]["geometry"]["coordinates"]
    tile = TMS.tile(lon, lat, 14)
    decoded = _decode(client.get(_tile_url("rail_stations", tile)).content)["rail_stations"]
    [station] = [f for f in decoded["features"] if f["properties"]["code"] == SOUTH_STATION]
    gx, gy = station["geometry"]["coordinates"]
    west, south, east, north = TMS.xy_bounds(tile)
    x = west + gx / decoded["extent"] * (east - west)
    y = south + gy / decoded["extent"] * (north - south)  # the decoder turns y upwards
    got_lon, got_lat = TMS.lnglat(x, y)
    pixel = (east - west) / 4096
    want_x, want_y = TMS.xy(lon, lat)
    assert abs(x - want_x) <= pixel and abs(y - want_y) <= pixel
    assert got_lon == pytest.approx(lon, abs=1e-4) and got_lat == pytest.approx(lat, abs=1e-4)


def test_polygons_are_simplified_at_low_zoom(client: TestClient, seeds: Seeds) -> None:
    """The city boundary at zoom 7 carries far fewer vertices than the seed (detail below a screen pixel is
    dropped), yet still outlines the city."""
    city = seeds["admin_boundaries"]["cn-330400"]
    seed_vertices = sum(len(ring) for polygon in city["geometry"]["coordinates"] for ring in polygon)
    lon, lat = shape(city["geometry"]).representative_point().coords[0]
    decoded = _decode(client.get(_tile_url("admin_boundaries", TMS.tile(lon, lat, 7))).content)
    [boundary] = [
        f for f in decoded["admin_boundaries"]["features"] if f["properties"]["code"] == "cn-330400"
    ]
    coords = boundary["geometry"]["coordinates"]
    rings = coords if boundary["geometry"]["type"] == "Polygon" else [r for p in coords for r in p]
    assert 20 < sum(len(r) for r in rings) < seed_vertices / 4


def test_dataset_tile_has_one_layer_per_collection(client: TestClient, seeds: Seeds) -> None:
    """The plan tile around 嘉兴南站 has one MVT layer per collection with features there, named by its id."""
    lon, lat = seeds["rail_stations"][SOUTH_STATION]["geometry"]["coordinates"]
    tile = TMS.tile(lon, lat, 10)
    response = client.get(_tile_url(None, tile))
    assert response.status_code == 200
    decoded = _decode(response.content)
    expected = {
        layer
        for layer, features in seeds.items()
        if any(
            f["geometry"] and shape(f["geometry"]).intersects(_buffered(tile, 0)) for f in features.values()
        )
    }
    assert set(decoded) == expected and "rail_stations" in expected and "admin_boundaries" in expected


def test_empty_tile_is_204(client: TestClient) -> None:
    """A tile with nothing in it (the Pacific) is 204 with no body, and still carries an ETag."""
    response = client.get("/collections/rail_stations/tiles/WebMercatorQuad/10/420/950")
    assert response.status_code == 204 and response.content == b"" and response.headers["etag"]


def test_tile_conditional_get(client: TestClient, seeds: Seeds) -> None:
    """A tile answers If-None-Match with 304 while the layer is unchanged."""
    lon, lat = seeds["rail_stations"][SOUTH_STATION]["geometry"]["coordinates"]
    url = _tile_url("rail_stations", TMS.tile(lon, lat, 12))
    first = client.get(url)
    again = client.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.headers["etag"] == first.headers["etag"]


def test_an_edit_changes_the_tile_at_once(writable: Writable, seeds: Seeds) -> None:
    """After a feature changes, the tile's ETag changes and a client holding the old ETag gets the new tile
    (no stale tiles after edits)."""
    lon, lat = seeds["rail_stations"][SOUTH_STATION]["geometry"]["coordinates"]
    url = _tile_url("rail_stations", TMS.tile(lon, lat, 12))
    first = writable.client.get(url)
    with writable.engine.begin() as conn:
        conn.execute(
            text(
                'UPDATE features SET properties = properties || \'{"name_zh": "嘉兴南站(改)"}\'::jsonb'
                " WHERE layer_id = 'rail_stations' AND code = :code"
            ),
            {"code": SOUTH_STATION},
        )
    second = writable.client.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert second.status_code == 200 and second.headers["etag"] != first.headers["etag"]
    decoded = _decode(second.content)["rail_stations"]
    assert [
        f["properties"]["name_zh"] for f in decoded["features"] if f["properties"]["code"] == SOUTH_STATION
    ] == ["嘉兴南站(改)"]


def _station_at(content: bytes, tile: morecantile.Tile) -> tuple[float, float] | None:
    """Where 嘉兴南站 is drawn in the tile (longitude, latitude), or None if the tile does not hold it."""
    if not content:
        return None
    decoded = _decode(content)["rail_stations"]
    found = [f for f in decoded["features"] if f["properties"]["code"] == SOUTH_STATION]
    if not found:
        return None
    gx, gy = found[0]["geometry"]["coordinates"]
    west, south, east, north = TMS.xy_bounds(tile)
    lon, lat = TMS.lnglat(
        west + gx / decoded["extent"] * (east - west), south + gy / decoded["extent"] * (north - south)
    )
    return lon, lat


def test_a_moved_feature_moves_in_the_tiles(writable: Writable, seeds: Seeds) -> None:
    """PATCHing a feature's geometry moves it in the very next tiles: gone from the tile it left, drawn at
    its new place in the tile it moved to (the stored Web Mercator geometry follows the edit)."""
    client = writable.client
    auth = {"Authorization": f"Bearer {add_key(writable.engine, '瓦片测试 tiler', 'editor')}"}
    lon, lat = seeds["rail_stations"][SOUTH_STATION]["geometry"]["coordinates"]
    new_lon, new_lat = lon + 0.05, lat + 0.03
    old_tile, new_tile = TMS.tile(lon, lat, 14), TMS.tile(new_lon, new_lat, 14)
    assert old_tile != new_tile
    before = client.get(_tile_url("rail_stations", old_tile))
    assert _station_at(before.content, old_tile) == pytest.approx((lon, lat), abs=1e-4)
    cache = client.app.state.tile_cache  # type: ignore[attr-defined]
    hits = cache.hits
    assert client.get(_tile_url("rail_stations", old_tile)).content == before.content
    assert cache.hits == hits + 1  # the old tile is in the cache now
    assert _station_at(client.get(_tile_url("rail_stations", new_tile)).content, new_tile) is None
    with writable.engine.connect() as conn:
        fid = conn.scalar(
            text("SELECT id FROM features WHERE layer_id = 'rail_stations' AND code = :c"),
            {"c": SOUTH_STATION},
        )
    moved = client.patch(
        f"/collections/rail_stations/items/{fid}",
        json={"geometry": {"type": "Point", "coordinates": [new_lon, new_lat]}},
        headers=auth | {"Content-Type": "application/merge-patch+json"},
    )
    assert moved.status_code == 204, moved.text
    after = client.get(
        _tile_url("rail_stations", old_tile), headers={"If-None-Match": before.headers["etag"]}
    )
    assert after.status_code in (200, 204) and _station_at(after.content, old_tile) is None
    plain = client.get(_tile_url("rail_stations", old_tile))  # no validator: still not the cached tile
    assert plain.headers["etag"] == after.headers["etag"] and _station_at(plain.content, old_tile) is None
    there = client.get(_tile_url("rail_stations", new_tile))
    assert _station_at(there.content, new_tile) == pytest.approx((new_lon, new_lat), abs=1e-4)


def test_tiles_with_and_without_the_cache_agree(
    client: TestClient, settings: Settings, catalog: Catalog
) -> None:
    """A repeated tile comes from the cache, byte for byte and with the same ETag as a service without a
    cache (JXPLAN_TILE_CACHE_MB=0) cuts from the database; an empty tile is cached as a 204."""
    cache = client.app.state.tile_cache  # type: ignore[attr-defined]
    assert cache.enabled
    paths = [
        _tile_url("admin_boundaries", morecantile.Tile(x=1710, y=840, z=11)),
        _tile_url(None, morecantile.Tile(x=3421, y=1680, z=12)),
        _tile_url("rail_stations", morecantile.Tile(x=0, y=0, z=5)),  # nothing there
    ]
    first = [client.get(path) for path in paths]
    hits = cache.hits
    again = [client.get(path) for path in paths]
    assert cache.hits == hits + len(paths)
    uncached = settings.model_copy(update={"tile_cache_mb": 0})
    with TestClient(create_app(uncached, catalog)) as plain_client:
        plain = [plain_client.get(path) for path in paths]
        assert not plain_client.app.state.tile_cache.enabled  # type: ignore[attr-defined]
    assert [r.status_code for r in first] == [r.status_code for r in again] == [r.status_code for r in plain]
    assert [r.status_code for r in first] == [200, 200, 204]
    for a, b, c in zip(first, again, plain, strict=True):
        assert a.content == b.content == c.content
        assert a.headers["etag"] == b.headers["etag"] == c.headers["etag"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/collections/rail_stations/tiles/WebMercatorQuad/23/0/0", 404),
        ("/collections/rail_stations/tiles/WebMercatorQuad/3/8/0", 404),
        ("/collections/rail_stations/tiles/WebMercatorQuad/3/0/8", 404),
        ("/collections/rail_stations/tiles/WorldCRS84Quad/3/0/0", 404),
        ("/collections/nowhere/tiles/WebMercatorQuad/3/0/0", 404),
        ("/collections/rail_stations/tiles/WebMercatorQuad/3/-1/0", 400),
        ("/collections/rail_stations/tiles/WebMercatorQuad/three/0/0", 400),
        ("/tiles/WebMercatorQuad/3/0/0?colour=red", 400),
    ],
)
def test_bad_tile_requests(client: TestClient, problem: Any, path: str, status: int) -> None:
    """Tiles outside the matrix set, unknown sets or collections are 404; malformed indices and unknown
    parameters are 400; always as problem details."""
    problem(client.get(path), status)


def test_tileset_metadata_and_tilejson(client: TestClient, seeds: Seeds) -> None:
    """The tileset document links its tiling scheme and a templated tile link (zoom/row/column) that works;
    TileJSON's `tiles` template gives the same tile; the tile matrix set has 23 zoom levels."""
    lon, lat = seeds["rail_stations"][SOUTH_STATION]["geometry"]["coordinates"]
    tile = TMS.tile(lon, lat, 11)
    tileset = client.get("/collections/rail_stations/tiles/WebMercatorQuad").json()
    assert tileset["dataType"] == "vector" and tileset["tileMatrixSetURI"].endswith("/WebMercatorQuad")
    [item] = [link for link in tileset["links"] if link["rel"] == "item"]
    assert item["templated"] and item["type"] == MVT
    href = (
        item["href"]
        .format(tileMatrix=tile.z, tileRow=tile.y, tileCol=tile.x)
        .replace("http://testserver", "")
    )
    assert client.get(href).content == client.get(_tile_url("rail_stations", tile)).content
    [scheme] = [link for link in tileset["links"] if link["rel"].endswith("/tiling-scheme")]
    tms = client.get(scheme["href"]).json()
    assert tms["id"] == "WebMercatorQuad" and len(tms["tileMatrices"]) >= 23
    tilejson = client.get("/tiles/WebMercatorQuad/tilejson").json()
    assert tilejson["tilejson"] == "3.0.0"
    assert {v["id"] for v in tilejson["vector_layers"]} == set(seeds)
    href = tilejson["tiles"][0].format(z=tile.z, x=tile.x, y=tile.y).replace("http://testserver", "")
    assert client.get(href).status_code == 200


def test_tiles_are_linked(client: TestClient) -> None:
    """The landing page links the plan's tilesets and the tiling schemes; each collection links its own."""
    landing = {link["rel"]: link["href"] for link in client.get("/").json()["links"]}
    assert client.get(landing["http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"]).status_code == 200
    assert client.get(landing["http://www.opengis.net/def/rel/ogc/1.0/tiling-schemes"]).status_code == 200
    collection = client.get("/collections/rail_lines").json()
    [tiles] = [link for link in collection["links"] if link["rel"].endswith("/tilesets-vector")]
    listed = client.get(tiles["href"]).json()["tilesets"]
    assert [t["tileMatrixSetURI"] for t in listed] == [
        "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
    ]
