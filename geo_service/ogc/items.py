"""`/collections/{id}/items` and `/collections/{id}/items/{featureId}`: features, built by PostgreSQL."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
from fastapi import Request, Response
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.routing import Route

from geo_service.catalog import Layer
from geo_service.db.engine import ReadPool, read_connection
from geo_service.db.replicas import reads_for
from geo_service.errors import InvalidParameter, NotFound
from geo_service.ogc import downloads
from geo_service.ogc.counts import MatchedCounts
from geo_service.ogc.cql import combine, equality_predicate, filter_errors, parse_filter
from geo_service.ogc.crs import CRS, content_crs, parse_crs
from geo_service.ogc.cursor import decode_cursor, encode_cursor
from geo_service.ogc.dependencies import (
    LayerState,
    layer_state,
    parse_feature_id,
    parse_layer_state,
    path_layer,
    read_layer_state,
)
from geo_service.ogc.fields import SortKey, layer_fields, parse_properties, parse_sortby
from geo_service.ogc.html import render
from geo_service.ogc.links import base_url, href, link, query_pairs
from geo_service.ogc.negotiation import GEOJSON, HTML, JSON, negotiate
from geo_service.ogc.openapi import FEATURE_PARAMETERS, ITEMS_PARAMETERS
from geo_service.ogc.parameters import parse_bbox, parse_datetime, parse_limit, parse_version, reject_unknown
from geo_service.ogc.query import (
    CHUNK,
    CountUnless,
    ItemsFilter,
    download_statement,
    feature_sql,
    feature_version_statement,
    page_sql,
)
from geo_service.ogc.responses import cache_headers, etag_for, feature_etag, is_conditional, not_modified
from geo_service.ogc.streaming import ConnectionStream
from geo_service.settings import Settings

FEATURES_START = b'{"type":"FeatureCollection","features":['


def _format_links(base: str, path: str, fmt: str, pairs: list[str]) -> list[dict[str, str]]:
    """`self` and `alternate` links, as GeoJSON and HTML, of a selection (`pairs` from `query_pairs`)."""
    return [
        link(href(base, path, [*pairs, "f=json"]), "self" if fmt == GEOJSON else "alternate", GEOJSON),
        link(href(base, path, [*pairs, "f=html"]), "self" if fmt == HTML else "alternate", HTML),
    ]


def _download_links(base: str, path: str, pairs: dict[str, str]) -> list[dict[str, str]]:
    """Every match as a file, one `alternate` link per format (no cursor, no limit: a file holds all)."""
    links = []
    for fmt in downloads.FORMATS.values():
        # KML is WGS 84 by definition: its link leaves `crs` out rather than lead to a refusal
        kept = [p for k, p in pairs.items() if k != "limit" and not (fmt.key == "kml" and k == "crs")]
        links.append(
            link(href(base, path, [*kept, f"f={fmt.key}"]), "alternate", fmt.media_type, f"下载 {fmt.title}")
        )
    return links


def _collection_link(base: str, layer: Layer) -> dict[str, str]:
    return link(f"{base}/collections/{layer.id}?f=json", "collection", JSON, str(layer.title))


@dataclass(frozen=True)
class ItemsQuery:
    """A parsed `/items` request: what to select, in which order and CRS, and where the page starts."""

    filter: ItemsFilter
    crs: CRS
    sort: tuple[SortKey, ...]
    selected: tuple[str, ...] | None
    limit: int
    explicit_limit: int | None
    fingerprint: str
    after: list[Any] | None
    drop: list[str] | None  # properties left out (None: all kept)


def property_parameters(layer: Layer) -> list[str]:
    """Part 1 filters on feature properties: `?status=planned` for each scalar property."""
    return [name for name, f in layer_fields(layer).items() if f.sortable]


def parse_items_query(request: Request, layer: Layer, settings: Settings) -> ItemsQuery:
    """Every `/items` parameter checked and parsed; a 400 names the first that is wrong."""
    params = request.query_params
    equality_names = property_parameters(layer)
    reject_unknown(params, [*ITEMS_PARAMETERS, *equality_names])
    limit = parse_limit(params.get("limit"), settings.default_limit, settings.max_limit)
    explicit_limit = limit if "limit" in params else None
    crs = parse_crs(params.get("crs"), "crs")
    bbox_crs = parse_crs(params.get("bbox-crs"), "bbox-crs")
    filter_crs = parse_crs(params.get("filter-crs"), "filter-crs")
    raw_filter = params.get("filter")
    if raw_filter is None and ("filter-lang" in params or "filter-crs" in params):
        raise InvalidParameter(
            "filter-lang and filter-crs describe a filter; give filter too.", parameter="filter"
        )
    predicate = None
    if raw_filter is not None:
        predicate = parse_filter(raw_filter, params.get("filter-lang"), layer, filter_crs)
    equalities = equality_predicate({n: params[n] for n in equality_names if n in params}, layer)
    filter_ = ItemsFilter(
        layer.id, parse_bbox(params.get("bbox"), bbox_crs), bbox_crs, combine(predicate, equalities)
    )
    sort = parse_sortby(params.get("sortby"), layer)
    selected = parse_properties(params.get("properties"), layer)
    drop = None if selected is None else [n for n in layer.property_names if n not in selected]
    parse_datetime(params.get("datetime"))
    fingerprint = filter_.fingerprint() + "|" + ",".join(map(str, sort))
    kinds = tuple("number" if k.field.kind == "integer" else k.field.kind for k in sort)
    after = decode_cursor(params.get("cursor"), fingerprint, kinds)
    return ItemsQuery(filter_, crs, sort, selected, limit, explicit_limit, fingerprint, after, drop)


def _query_values(request: Request, layer: Layer) -> dict[str, str]:
    """The selection parameters of this request, to carry into links (format and cursor aside), in the
    order the API declares them."""
    params = request.query_params
    names = [*ITEMS_PARAMETERS, *property_parameters(layer)]
    return {n: params[n] for n in names if n in params and n not in ("f", "cursor")}


async def _download(
    request: Request, layer: Layer, engine: AsyncEngine, query: ItemsQuery, fmt: downloads.FileFormat
) -> Response:
    """The matching features as a file (every match, or the first `limit` when one is given)."""
    downloads.check_crs(fmt, query.crs)
    fields = downloads.columns(layer, query.selected)
    statement = download_statement(
        query.filter,
        [downloads.column_sql(f) for f in fields],
        downloads.geometry_sql(query.crs),
        sort=query.sort,
        limit=query.explicit_limit,
    )
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="REPEATABLE READ")
        state = await layer_state(conn, layer)
        etag = etag_for(
            "download", layer.id, state.version, fmt.key, sorted(request.query_params.multi_items())
        )
        if (cached := not_modified(request, etag, state.updated_at)) is not None:
            return cached
        with filter_errors(query.filter.predicate is not None):
            rows = list(await conn.execute(statement))
        await conn.rollback()
    body = await downloads.render(fmt, layer, query.crs, fields, rows)
    headers = cache_headers(etag, state.updated_at)
    headers["Content-Disposition"] = f'attachment; filename="{layer.id}.{fmt.extension}"'
    if fmt.key != "kml":
        headers["Content-Crs"] = content_crs(query.crs)
    media = fmt.media_type + ("; charset=utf-8" if fmt.key == "csv" else "")
    return Response(content=body, media_type=media, headers=headers)


async def items(request: Request) -> Response:
    """A page of features: GeoJSON assembled by PostgreSQL, or an HTML table; or a file of all matches."""
    layer = path_layer(request)
    app_state = request.app.state
    settings: Settings = app_state.settings
    fmt = negotiate(request, [GEOJSON, HTML, *downloads.FORMATS])
    query = parse_items_query(request, layer, settings)
    if fmt in downloads.FORMATS:
        return await _download(request, layer, app_state.engine, query, downloads.FORMATS[fmt])
    params = request.query_params
    filter_, crs, after, fingerprint = query.filter, query.crs, query.after, query.fingerprint

    pool: ReadPool = await reads_for(request)
    counts: MatchedCounts = app_state.matched_counts
    count: bool | CountUnless = False
    if filter_.is_filtered:  # counted in the page's statement, unless the count of this version is known
        recent = counts.latest(layer.id, filter_.fingerprint())
        count = CountUnless(None if recent is None else recent[0], settings.exact_count_threshold)
    sql, values = page_sql(
        filter_,
        after=after,
        limit=query.limit,
        count=count,
        crs=crs,
        sort=query.sort,
        drop=query.drop,
        state=True,
    ).psycopg()

    def etag_of(state: LayerState) -> str:
        return etag_for(
            "items", layer.id, state.version, fmt, sorted(params.multi_items()), str(request.base_url)
        )

    conn = await read_connection(pool)
    stream: AsyncIterator[tuple[int, bytes]] | None = None

    async def release() -> None:
        # shielded: a client that went away cancels the response, and the connection must still go back;
        # a stream the server broke off cannot be closed cleanly, and the pool then discards its connection
        with anyio.CancelScope(shield=True):
            if stream is not None:
                with contextlib.suppress(Exception):
                    await stream.aclose()  # type: ignore[attr-defined]
            await pool.putconn(conn)

    try:
        if is_conditional(request):  # the validators first, so a 304 costs no page
            held = await read_layer_state(conn, layer)
            if (cached := not_modified(request, etag_of(held), held.updated_at)) is not None:
                await pool.putconn(conn)
                return cached
        with filter_errors(filter_.predicate is not None):
            if query.limit > CHUNK:
                # streamed row by row (each row a chunk of features): a big page never sits whole in memory
                stream = conn.cursor().stream(sql, values)
                buffered: list[tuple[int, bytes]] = [await anext(stream)]
            else:  # one chunk and the page's end
                buffered = await (await conn.execute(sql, values)).fetchall()
        state = parse_layer_state(layer, buffered[0][1])
    except BaseException:
        await release()
        raise
    etag = etag_of(state)
    known = recent[1] if filter_.is_filtered and recent is not None and recent[0] == state.version else None

    async def pieces() -> AsyncIterator[tuple[int, bytes]]:
        """The page's rows after the state: (0, chunk of features)…, then (1, the page's end)."""
        with filter_errors(filter_.predicate is not None):
            for piece in buffered[1:]:
                yield piece
            if stream is not None:
                async for piece in stream:
                    yield piece

    def closing_links(end: dict[str, Any]) -> list[dict[str, str]]:
        base = base_url(request, settings)
        path = f"/collections/{layer.id}/items"
        pairs = query_pairs(**_query_values(request, layer))
        selection = list(pairs.values())
        links = _format_links(
            base, path, fmt, [*selection, *query_pairs(cursor=params.get("cursor")).values()]
        )
        links += _download_links(base, path, pairs)
        if end["has_more"]:
            cursor = encode_cursor(end["last"], fingerprint)
            next_type, f = (HTML, "html") if fmt == HTML else (GEOJSON, "json")
            next_href = href(base, path, [*selection, *query_pairs(cursor=cursor).values(), f"f={f}"])
            links.append(link(next_href, "next", next_type, "下一页 Next page"))
        links.append(_collection_link(base, layer))
        return links

    headers = cache_headers(etag, state.updated_at)

    def matched_of(end: dict[str, Any]) -> int | None:
        if not filter_.is_filtered:
            return state.feature_count
        if known is not None:
            return known
        if end["matched"] is not None:
            counts.put(layer.id, state.version, filter_.fingerprint(), end["matched"])
        return end["matched"]

    if fmt == HTML:
        try:
            parts = [(part, body) async for part, body in pieces()]
        finally:
            await release()
        end = json.loads(parts[-1][1])
        features = json.loads(b"[" + b",".join(body for part, body in parts if part == 0) + b"]")
        start = 1 if after is None else None
        return render(
            request,
            "items.html",
            headers=headers,
            features=features,
            links=closing_links(end),
            matched=matched_of(end),
            shown_from=start or "…",
            shown_to=(len(features) if start else "…"),
            collection_id=layer.id,
            layer_title=str(layer.title),
            title=str(layer.title),
            base=base_url(request, settings),
        )

    def tail(end: dict[str, Any]) -> bytes:
        """The members after the features, which depend on how the page ended."""
        members: dict[str, Any] = {}
        if (matched := matched_of(end)) is not None:
            members["numberMatched"] = matched
        members |= {
            "numberReturned": end["returned"],
            "timeStamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "links": closing_links(end),
        }
        return b"]," + json.dumps(members, ensure_ascii=False, separators=(",", ":"))[1:].encode()

    headers["Content-Crs"] = content_crs(crs)
    if stream is None:  # the whole page is here: one plain response with its length
        await pool.putconn(conn)
        chunks = [body for part, body in buffered[1:] if part == 0]
        content = FEATURES_START + b",".join(chunks) + tail(json.loads(buffered[-1][1]))
        return Response(content=content, media_type=GEOJSON, headers=headers)

    async def body() -> AsyncGenerator[bytes]:
        # the features first, then the members that depend on how the page ended
        yield FEATURES_START
        separator = b""
        async for part, text_ in pieces():
            if part == 0:
                yield separator + text_
                separator = b","
            else:
                yield tail(json.loads(text_))

    return ConnectionStream(
        body(), release, media_type=GEOJSON, headers=headers, what=f"a page of {layer.id}"
    )


async def _feature_version(engine: AsyncEngine, layer: Layer, feature_id: int, requested: str) -> Response:
    """An earlier (or the current) version of a feature, from history: GeoJSON in CRS84."""
    version = parse_version(requested, "version")
    async with engine.connect() as conn:
        row = (await conn.execute(feature_version_statement(layer.id, feature_id, version))).first()
    if row is None:
        raise NotFound(
            f"Feature {feature_id} of {layer.id} has no version {version}; its versions are listed at "
            f"/collections/{layer.id}/items/{feature_id}/history."
        )
    headers = {"ETag": feature_etag(feature_id, version, "version")}
    return Response(content=row.feature, media_type=GEOJSON, headers=headers)


async def feature(request: Request) -> Response:
    """One feature, with links to itself and its collection."""
    layer = path_layer(request)
    feature_id = str(request.path_params["feature_id"])
    app_state = request.app.state
    settings: Settings = app_state.settings
    pool: ReadPool = await reads_for(request)
    reject_unknown(request.query_params, FEATURE_PARAMETERS)
    crs = parse_crs(request.query_params.get("crs"), "crs")
    selected = parse_properties(request.query_params.get("properties"), layer)
    drop = None if selected is None else [n for n in layer.property_names if n not in selected]
    fmt = negotiate(request, [GEOJSON, HTML])
    fid = parse_feature_id(layer, feature_id)
    requested = request.query_params.get("version")
    if requested is not None:
        return await _feature_version(app_state.engine, layer, fid, requested)
    sql, values = feature_sql(layer.id, fid, crs, drop).psycopg()
    conn = await read_connection(pool)
    try:
        row = await (await conn.execute(sql, values)).fetchone()
    finally:
        await pool.putconn(conn)
    if row is None:
        raise NotFound(f"No feature {feature_id} in collection {layer.id}.")
    feature_text: bytes = row[0]
    version: int = row[1]
    updated_at: datetime = row[2]
    etag = feature_etag(
        fid,
        version,
        layer.id,
        fmt,
        sorted(request.query_params.multi_items()),
        str(request.base_url),
    )
    if (cached := not_modified(request, etag, updated_at)) is not None:
        return cached
    headers = cache_headers(etag, updated_at)
    base = base_url(request, settings)
    params = request.query_params
    selection = query_pairs(crs=params.get("crs"), properties=params.get("properties"))
    links = _format_links(base, f"/collections/{layer.id}/items/{feature_id}", fmt, list(selection.values()))
    links.append(_collection_link(base, layer))
    if fmt == HTML:
        doc = json.loads(feature_text)
        titles = {k: v.get("title", k) for k, v in layer.json_schema["properties"].items()}
        return render(
            request,
            "feature.html",
            headers=headers,
            feature=doc,
            links=links,
            version=version,
            collection_id=layer.id,
            layer_title=str(layer.title),
            titles=titles,
            title=doc["properties"].get("name_zh", feature_id),
            base=base_url(request, settings),
        )
    body = feature_text[:-1] + b',"links":' + json.dumps(links, ensure_ascii=False).encode() + b"}"
    headers["Content-Crs"] = content_crs(crs)
    return Response(content=body, media_type=GEOJSON, headers=headers)


# plain routes, matched before the app's routers (see geo_service.ogc.dependencies)
routes = [
    Route("/collections/{collection_id}/items", items, methods=["GET"]),
    Route("/collections/{collection_id}/items/{feature_id}", feature, methods=["GET"]),
]
