"""The service behind a real nginx caching proxy (Debian's package): repeated reads are answered by the
cache (the service sends a 304 or nothing), an edit shows at once through it, and a request carrying
`Authorization` is never answered from the cache. The caching policy of each kind of response
(geo_service.caching) is checked on the service itself."""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import httpx
import mapbox_vector_tile
import morecantile
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from geo_service.app import create_app
from geo_service.caching import ASSET_VERSION, IMMUTABLE, NO_STORE, REVALIDATE
from geo_service.catalog import Catalog
from geo_service.db.engine import sync_engine
from geo_service.editing.keys import add_key
from geo_service.loader import load
from geo_service.ops.cacheproxy import caching_proxy
from geo_service.settings import Settings
from tests.conftest import private_database, running_server

LAYER = "rail_stations"
MERGE = {"Content-Type": "application/merge-patch+json"}
TMS = morecantile.tms.get("WebMercatorQuad")


class Proxied(NamedTuple):
    """The service straight and through nginx, and an engine on its private database."""

    service: httpx.Client
    proxy: httpx.Client
    engine: Engine


@pytest.fixture(scope="module")
def proxied(
    server_url: str, catalog: Catalog, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Proxied]:
    """A private loaded database served by uvicorn, with nginx caching in front of it."""
    with private_database(server_url, "http_cache") as url:
        engine = sync_engine(url)
        load(engine, catalog)
        app = create_app(settings.model_copy(update={"database_url": url}), catalog)
        with (
            running_server(app) as base,
            caching_proxy(base, tmp_path_factory.mktemp("nginx")) as (proxy_url, _),
            httpx.Client(base_url=base, timeout=30) as service,
            httpx.Client(base_url=proxy_url, timeout=30) as proxy,
        ):
            yield Proxied(service, proxy, engine)
        engine.dispose()


def served(service: httpx.Client) -> dict[tuple[str, str], float]:
    """The service's own count of the GETs it answered, by route template and status."""
    counts: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(service.get("/metrics").text):
        if family.name == "jxplan_http_requests":
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.labels["method"] == "GET":
                    key = (sample.labels["route"], sample.labels["status"])
                    counts[key] = counts.get(key, 0) + sample.value
    return counts


def _new(after: dict[tuple[str, str], float], before: dict[tuple[str, str], float]) -> dict[str, float]:
    """Status → how many more GETs the service answered (the /metrics reads themselves left out)."""
    out: dict[str, float] = {}
    for (route, status), value in after.items():
        extra = value - before.get((route, status), 0)
        if extra and route != "/metrics":
            out[status] = out.get(status, 0) + extra
    return out


def _urls(proxied: Proxied) -> tuple[str, str, str, int]:
    """A page, a feature and a z14 tile holding that feature, and the feature's id."""
    page = f"/collections/{LAYER}/items?limit=5"
    first = proxied.service.get(page).json()["features"][0]
    lon, lat = first["geometry"]["coordinates"][:2]
    tile = TMS.tile(lon, lat, 14)
    return (
        page,
        f"/collections/{LAYER}/items/{first['id']}",
        f"/collections/{LAYER}/tiles/WebMercatorQuad/{tile.z}/{tile.y}/{tile.x}",
        int(first["id"]),
    )


def test_repeated_reads_are_answered_by_the_cache(proxied: Proxied) -> None:
    """The second GET of a page, a feature and a tile is revalidated (the service sends a 304, no body)."""
    page, feature, tile, _ = _urls(proxied)
    for url in (page, feature, tile):
        first = proxied.proxy.get(url)
        assert first.status_code == 200, first.text
        assert first.headers["x-cache-status"] == "MISS"
        assert first.headers["cache-control"] == REVALIDATE
        assert "x-accel-expires" not in first.headers  # nginx keeps it to itself
        before = served(proxied.service)
        again = proxied.proxy.get(url)
        assert again.status_code == 200
        assert again.headers["x-cache-status"] in ("HIT", "REVALIDATED")
        assert again.content == first.content
        assert _new(served(proxied.service), before) in ({}, {"304": 1}), url


def test_an_edit_shows_at_once_through_the_cache(proxied: Proxied) -> None:
    """After a PATCH straight to the service, the next GET of the page, the feature and the tile through
    nginx gives the new state, although nginx holds the old one."""
    page, feature, tile, feature_id = _urls(proxied)
    for url in (page, feature, tile):
        proxied.proxy.get(url)
        assert proxied.proxy.get(url).headers["x-cache-status"] in ("HIT", "REVALIDATED")
    old_tile = proxied.proxy.get(tile).content
    token = add_key(proxied.engine, "缓存测试 cache test", "editor")
    for name in ("改名一 renamed once", "改名二 renamed twice"):
        edited = proxied.service.patch(
            feature,
            headers=MERGE | {"Authorization": f"Bearer {token}"},
            json={"properties": {"name_en": name}},
        )
        assert edited.status_code == 204, edited.text
        assert proxied.proxy.get(feature).json()["properties"]["name_en"] == name
        got = proxied.proxy.get(page).json()["features"]
        assert [f["properties"]["name_en"] for f in got if f["id"] == feature_id] == [name]
        fresh = proxied.proxy.get(tile)
        assert fresh.headers["x-cache-status"] in ("EXPIRED", "MISS"), "an old tile was revalidated"
        assert fresh.content == proxied.service.get(tile).content != old_tile
        decoded = mapbox_vector_tile.decode(fresh.content)[LAYER]["features"]
        assert [f["properties"]["name_en"] for f in decoded if f["id"] == feature_id] == [name]
        old_tile = fresh.content


def test_a_request_with_authorization_is_never_answered_from_the_cache(proxied: Proxied) -> None:
    """nginx holds the feature, yet a request carrying `Authorization` goes to the service, whose answer is
    `private, no-store` and is not kept."""
    _, feature, _, _ = _urls(proxied)
    proxied.proxy.get(feature)
    assert proxied.proxy.get(feature).headers["x-cache-status"] in ("HIT", "REVALIDATED")
    token = add_key(proxied.engine, "缓存读者 cache reader", "reader")
    for _ in range(2):
        before = served(proxied.service)
        signed = proxied.proxy.get(feature, headers={"Authorization": f"Bearer {token}"})
        assert signed.status_code == 200
        assert signed.headers["x-cache-status"] == "BYPASS"
        assert signed.headers["cache-control"] == NO_STORE
        assert _new(served(proxied.service), before) == {"200": 1}


def test_each_kind_of_response_says_how_it_may_be_cached(proxied: Proxied) -> None:
    """Data revalidated and varying by Accept and Accept-Encoding; writes, errors and operations never
    stored; a versioned static file immutable, an unversioned one revalidated."""
    service = proxied.service
    _, feature, tile, _ = _urls(proxied)
    data = ("/", "/api", "/collections", f"/collections/{LAYER}/queryables", feature, tile, "/maps/bay_shore")
    for url in data:
        response = service.get(url)
        assert response.status_code == 200, url
        assert response.headers["cache-control"] == REVALIDATE, url
        assert response.headers["vary"] == "Accept, Accept-Encoding", url
        if etag := response.headers.get("etag"):
            revalidated = service.get(url, headers={"If-None-Match": etag})
            assert revalidated.status_code == 304
            assert revalidated.headers["cache-control"] == REVALIDATE, url
    for url in ("/metrics", "/ready", "/health", "/collections/nothing", f"{feature}x"):
        assert service.get(url).headers["cache-control"] == NO_STORE, url
    refused = service.patch(feature, headers=MERGE, json={"properties": {}})
    assert refused.status_code == 401 and refused.headers["cache-control"] == NO_STORE
    static = "/static/app/jxplan-map.js"
    assert service.get(f"{static}?v={ASSET_VERSION}").headers["cache-control"] == IMMUTABLE
    assert service.get(f"{static}?v=old").headers["cache-control"] == REVALIDATE
    assert service.get(static).headers["cache-control"] == REVALIDATE
    assert f"/static/app/jxplan-pages.css?v={ASSET_VERSION}" in service.get("/?f=html").text
    map_page = service.get("/maps/bay_shore").text
    assert f"/static/app/jxplan-map.js?v={ASSET_VERSION}" in map_page
    assert f"/static/vendor/leaflet/dist/leaflet.js?v={ASSET_VERSION}" in map_page
