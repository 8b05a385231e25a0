"""Typed request dependencies: the handler receives a resolved `Layer`, never a raw string.

The data routes (a page of features, one feature, a tile) are plain Starlette routes, matched before the
others: FastAPI's router and dependency solving cost about a quarter of the CPU of a one-feature request.
They take what they need from `request.app.state` and the layer from `path_layer`; every other route uses
the dependencies below.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from fastapi import Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from geo_service.catalog import Catalog, Layer
from geo_service.errors import NotFound
from geo_service.ogc.query import LAYER_STATE_SQL, Sql
from geo_service.settings import Settings

# Dependencies are `async def`: FastAPI runs a plain `def` dependency in a worker thread, a thread hop per
# dependency per request for what is only an attribute lookup.


async def get_catalog(request: Request) -> Catalog:
    """The catalogue the app was built with."""
    catalog: Catalog = request.app.state.catalog
    return catalog


async def get_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_engine(request: Request) -> AsyncEngine:
    """The database pool opened by the app's lifespan."""
    engine: AsyncEngine = request.app.state.engine
    return engine


async def get_layer(collection_id: str, request: Request) -> Layer:
    """The collection named in the path, or 404 before the handler runs."""
    return path_layer(request, collection_id)


def path_layer(request: Request, collection_id: str | None = None) -> Layer:
    """The collection named in the path (`collection_id`), or 404."""
    if collection_id is None:
        collection_id = str(request.path_params["collection_id"])
    catalog: Catalog = request.app.state.catalog
    layer = catalog.layers.get(collection_id)
    if layer is None:
        raise NotFound(
            f"No collection {collection_id!r}. Collections: {', '.join(catalog.layers)}.",
        )
    return layer


FEATURE_ID = re.compile(r"^[1-9][0-9]{0,17}$")


def parse_feature_id(layer: Layer, feature_id: str) -> int:
    """The feature id of a path, or 404: ids are positive integers."""
    if not FEATURE_ID.match(feature_id):
        raise NotFound(f"No feature {feature_id!r} in {layer.id}: feature ids are positive integers.")
    return int(feature_id)


@dataclass(frozen=True)
class LayerState:
    """What the database says about a layer now: its version (the cache key), count and change time."""

    version: int
    feature_count: int
    updated_at: datetime


async def layer_state(conn: AsyncConnection, layer: Layer) -> LayerState:
    """The layer's current state; 404 if the catalogue declares it but it was never loaded."""
    row = (
        await conn.execute(
            text("SELECT version, feature_count, updated_at FROM layers WHERE id = :id"), {"id": layer.id}
        )
    ).first()
    if row is None:
        raise NotFound(f"Collection {layer.id!r} is declared but not loaded yet; run `jxplan load`.")
    return LayerState(row.version, row.feature_count, row.updated_at)


def parse_layer_state(layer: Layer, state: bytes | str | None) -> LayerState:
    """The layer's state from `LAYER_STATE_SQL`'s JSON array; 404 if the layer was never loaded."""
    if state is None:
        raise NotFound(f"Collection {layer.id!r} is declared but not loaded yet; run `jxplan load`.")
    version, count, updated_at = json.loads(state)
    return LayerState(version, count, datetime.fromisoformat(updated_at))


async def read_layer_state(conn: psycopg.AsyncConnection[Any], layer: Layer) -> LayerState:
    """The layer's current state through the read pool (for conditional requests, before the work)."""
    cur = await conn.execute(*Sql(f"SELECT {LAYER_STATE_SQL}", {"layer_id": layer.id}).psycopg())
    row = await cur.fetchone()
    return parse_layer_state(layer, None if row is None else row[0])
