"""The processes: their descriptions (OGC API – Processes process descriptions, inputs and outputs as
JSON Schema) and how each one runs: its inputs checked, its one statement, its answer as the bytes
PostgreSQL built.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from jsonschema import Draft202012Validator

from geo_service.analysis import statements
from geo_service.analysis.inputs import (
    GEOMETRY_TYPES,
    InvalidInput,
    Site,
    check_inputs,
    crs_schema,
    parse_site,
)
from geo_service.catalog import Catalog
from geo_service.db.engine import ReadPool, reading
from geo_service.ogc.query import Sql

VERSION = "1.0.0"
JSON = "application/json"
CSV = "text/csv"
SITE_LIMIT = 500  # items listed in a site check by default (every one is counted)
MAX_SITE_LIMIT = 5000

GEOMETRY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type"],
    "properties": {
        "type": {
            "type": "string",
            "enum": list(GEOMETRY_TYPES),
        },
        "coordinates": {"type": "array"},
    },
}
FEATURE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "geometry"],
    "properties": {"type": {"const": "Feature"}, "geometry": {"type": ["object", "null"]}},
}
REFERENCE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["href"],
    "properties": {
        "href": {
            "type": "string",
            "format": "uri-reference",
            "description": "A feature of this service: /collections/{collectionId}/items/{featureId}.",
        }
    },
}


def _site_input(what: str) -> dict[str, Any]:
    return {
        "title": "场地 Site",
        "description": f"{what}: a GeoJSON geometry (in CRS84 unless `crs` says otherwise), a GeoJSON "
        'Feature, or a feature of this service as {"href": "/collections/{collectionId}/items/{featureId}"}. '
        "At most 100,000 vertices; it must be valid (no self-intersection) and lie in or by Jiaxing.",
        "schema": {"oneOf": [GEOMETRY_SCHEMA, FEATURE_SCHEMA, REFERENCE_SCHEMA]},
        "minOccurs": 1,
        "maxOccurs": 1,
    }


def _layers_input(catalog: Catalog, default: list[str]) -> dict[str, Any]:
    return {
        "title": "图层 Layers",
        "description": f"The collections to look in (default: {', '.join(default)}).",
        "schema": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"type": "string", "enum": list(catalog.layers)},
        },
        "minOccurs": 0,
        "maxOccurs": 1,
    }


CRS_INPUT = {
    "title": "坐标参考系 CRS",
    "description": "The CRS of the site's coordinates, in its axis order (EPSG:4326 and EPSG:4490 are "
    "latitude first, EPSG:4549 northing first).",
    "schema": crs_schema(),
    "minOccurs": 0,
    "maxOccurs": 1,
}


@dataclass(frozen=True)
class Prepared:
    """An execution ready to run: its statement, and how its answer is named and typed."""

    process_id: str
    output_id: str
    media_type: str
    sql: Sql
    site: Site | None = None
    reach_m: float = 0.0  # how far from Jiaxing the site may lie
    # an answer that depends only on these layers' contents is kept under their versions (AnswerCache)
    depends_on: tuple[str, ...] = ()


@dataclass(frozen=True)
class Answer:
    """What a process answered: the output's bytes (built by PostgreSQL) and their media type."""

    output_id: str
    media_type: str
    body: bytes

    def document(self) -> dict[str, Any]:
        """The results document (`{outputId: value}`) of OGC API – Processes."""
        if self.media_type == JSON:
            return {self.output_id: json.loads(self.body)}
        return {self.output_id: {"value": self.body.decode(), "mediaType": self.media_type}}

    def document_bytes(self) -> bytes:
        """The results document as bytes, without decoding a JSON output."""
        if self.media_type == JSON:
            return b'{"' + self.output_id.encode() + b'":' + self.body + b"}"
        return json.dumps(self.document(), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Process:
    """One process: its description and how to prepare an execution from checked inputs."""

    id: str
    title: str
    description: str
    keywords: list[str]
    inputs: dict[str, dict[str, Any]]
    outputs: dict[str, dict[str, Any]]
    prepare: Callable[[dict[str, Any], Catalog, str], Prepared]

    @cached_property
    def validators(self) -> dict[str, Draft202012Validator]:
        """Each input's JSON Schema, ready to check values (what `check_inputs` uses), made once."""
        return {name: Draft202012Validator(spec["schema"]) for name, spec in self.inputs.items()}

    @cached_property
    def required(self) -> list[str]:
        """The inputs an execution must give."""
        return [name for name, spec in self.inputs.items() if spec.get("minOccurs", 1) > 0]

    def summary(self, base: str) -> dict[str, Any]:
        """The process summary of `/processes`."""
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "keywords": self.keywords,
            "version": VERSION,
            "jobControlOptions": ["sync-execute", "async-execute"],
            "outputTransmission": ["value"],
            "links": [
                {
                    "href": f"{base}/processes/{self.id}",
                    "rel": "self",
                    "type": JSON,
                    "title": "过程描述 Process description",
                },
                {
                    "href": f"{base}/processes/{self.id}/execution",
                    "rel": "http://www.opengis.net/def/rel/ogc/1.0/execute",
                    "type": JSON,
                    "title": "执行 Execute",
                },
            ],
        }

    def description_document(self, base: str) -> dict[str, Any]:
        """The process description of `/processes/{id}`."""
        return {**self.summary(base), "inputs": self.inputs, "outputs": self.outputs}


def default_layers(catalog: Catalog) -> list[str]:
    """The plan layers a check looks in by default: every one but the boundaries and benchmark layers."""
    return [
        layer_id
        for layer_id, layer in catalog.layers.items()
        if layer_id != statements.BOUNDARIES and layer.file is not None
    ]


def layer_titles(catalog: Catalog) -> str:
    """Each layer's title, 中文 then English, as JSON for the statements."""
    return json.dumps({lid: f"{lay.title.zh} {lay.title.en}" for lid, lay in catalog.layers.items()})


def _site_params(site: Site, catalog: Catalog, base: str) -> dict[str, Any]:
    return {**site.params(), "source": site.source, "titles": layer_titles(catalog), "base": base}


def _prepare_site_check(inputs: dict[str, Any], catalog: Catalog, base: str) -> Prepared:
    site = parse_site(inputs["site"], inputs.get("crs"), catalog)
    layers = inputs.get("layers") or default_layers(catalog)
    limit = inputs.get("limit", SITE_LIMIT)
    sql = statements.site_check(_site_params(site, catalog, base), layers, limit)
    return Prepared("site-check", "report", JSON, sql, site)


def _prepare_county_summary(inputs: dict[str, Any], catalog: Catalog, base: str) -> Prepared:
    layers = inputs.get("layers") or default_layers(catalog)
    depends_on = tuple(sorted({*layers, statements.BOUNDARIES}))
    if inputs.get("format", "json") == "csv":
        sql = statements.county_summary_csv(layers)
        return Prepared("county-summary", "summary", CSV, sql, depends_on=depends_on)
    return Prepared(
        "county-summary", "summary", JSON, statements.county_summary(layers), depends_on=depends_on
    )


def _prepare_nearby(inputs: dict[str, Any], catalog: Catalog, base: str) -> Prepared:
    site = parse_site(inputs["site"], inputs.get("crs"), catalog)
    layers = inputs.get("layers") or default_layers(catalog)
    distance = float(inputs.get("distance", 1000))
    sql = statements.nearby(_site_params(site, catalog, base), layers, distance, inputs.get("limit", 10))
    return Prepared("nearby", "nearby", JSON, sql, site, reach_m=distance)


def build_processes(catalog: Catalog) -> dict[str, Process]:
    """The processes this service offers, described for this catalogue."""
    plan_layers = default_layers(catalog)
    site_check = Process(
        id="site-check",
        title="选址检查 Site check",
        description="Checks a site against the plan: the county it lies in (and the town, where the data "
        "locates towns), every plan item it intersects or lies within (layer, name, status, plan text, "
        "overlap in m² and its share of the site), the ecology and culture areas it touches flagged as "
        "conflicts, the nearest rail station, hub and road project, and the accuracy of each item (a "
        "schematic outline says so, with its error in metres). Areas and distances in EPSG:4549.",
        keywords=["选址", "site", "conflict", "冲突", "plan"],
        inputs={
            "site": _site_input("The site to check"),
            "crs": CRS_INPUT,
            "layers": _layers_input(catalog, plan_layers),
            "limit": {
                "title": "条目上限 Item limit",
                "description": "List at most this many items (all are counted in items_total and by_layer).",
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_SITE_LIMIT, "default": SITE_LIMIT},
                "minOccurs": 0,
                "maxOccurs": 1,
            },
        },
        outputs={
            "report": {
                "title": "检查报告 Report",
                "description": "site, county, counties, town, town_note, conflicts, items (conflicts first, "
                "then by overlap), nearest {rail_station, hub, road_project}, items_total, by_layer.",
                "schema": {"type": "object", "contentMediaType": JSON},
            }
        },
        prepare=_prepare_site_check,
    )
    county_summary = Process(
        id="county-summary",
        title="区县汇总 County summary",
        description="For 嘉兴市 and each of its seven counties: plan items per layer and status, zone area "
        "(km²), rail and road length (km), and the share completed or under construction; as JSON or CSV. "
        "Areas and lengths in EPSG:4549.",
        keywords=["区县", "county", "summary", "统计"],
        inputs={
            "format": {
                "title": "格式 Format",
                "description": "json (the default) or csv (one row per area).",
                "schema": {"type": "string", "enum": ["json", "csv"], "default": "json"},
                "minOccurs": 0,
                "maxOccurs": 1,
            },
            "layers": _layers_input(catalog, plan_layers),
        },
        outputs={
            "summary": {
                "title": "汇总 Summary",
                "schema": {
                    "oneOf": [
                        {"type": "object", "contentMediaType": JSON},
                        {"type": "string", "contentMediaType": CSV},
                    ]
                },
            }
        },
        prepare=_prepare_county_summary,
    )
    nearby = Process(
        id="nearby",
        title="周边项目 Nearby plan items",
        description="Plan items within a distance of a point, a geometry or a feature, by layer, nearest "
        "first (distances in metres, EPSG:4549).",
        keywords=["周边", "nearby", "distance", "距离"],
        inputs={
            "site": _site_input("Where to look from"),
            "crs": CRS_INPUT,
            "distance": {
                "title": "距离 Distance (m)",
                "schema": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "maximum": statements.MAX_DISTANCE_M,
                    "default": 1000,
                },
                "minOccurs": 0,
                "maxOccurs": 1,
            },
            "layers": _layers_input(catalog, plan_layers),
            "limit": {
                "title": "每层上限 Items per layer",
                "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
                "minOccurs": 0,
                "maxOccurs": 1,
            },
        },
        outputs={
            "nearby": {
                "title": "周边项目 Nearby items",
                "description": "distance_m, total, layers [{layer, title, matched, items [… distance_m]}], "
                "layers ordered by their nearest item.",
                "schema": {"type": "object", "contentMediaType": JSON},
            }
        },
        prepare=_prepare_nearby,
    )
    return {p.id: p for p in (site_check, county_summary, nearby)}


def prepare(process: Process, inputs: Any, catalog: Catalog, base: str) -> Prepared:
    """An execution of `process` with `inputs`, every input checked (a 4xx problem if one is wrong)."""
    checked = check_inputs(process.id, process.validators, process.required, inputs)
    return process.prepare(checked, catalog, base)


class AnswerCache:
    """The answers of one service process that depend only on whole layers (the county summary), each kept
    under the versions of the layers it reads, as the database has them when asked: an edit to any of them
    bumps its version (a trigger), so the next execution computes afresh. Versions are read on the server that
    answers, in the same connection, so a replica's answer is kept under the replica's versions."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self.items: OrderedDict[tuple[str, ...], bytes] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[str, ...]) -> bytes | None:
        """The answer kept under `key`, if any."""
        body = self.items.get(key)
        if body is None:
            self.misses += 1
            return None
        self.items.move_to_end(key)
        self.hits += 1
        return body

    def put(self, key: tuple[str, ...], body: bytes) -> None:
        """Keep an answer (the least recently used goes when full)."""
        self.items[key] = body
        self.items.move_to_end(key)
        while len(self.items) > self.size:
            self.items.popitem(last=False)


_VERSIONS_SQL = Sql(
    "SELECT string_agg(id || ':' || version, ',' ORDER BY id) FROM layers"
    " WHERE id = ANY(CAST(:ids AS text[]))",
    {},
)


async def run(prepared: Prepared, pool: ReadPool, cache: AnswerCache | None = None) -> Answer:
    """Run a prepared execution in PostgreSQL; a site not found or outside Jiaxing is a 400. With a cache, an
    answer that depends only on whole layers comes from it while those layers are unchanged."""
    async with reading(pool) as conn:
        key = None
        if cache is not None and prepared.depends_on:
            sql, _ = _VERSIONS_SQL.psycopg()
            versions = await (await conn.execute(sql, {"ids": list(prepared.depends_on)})).fetchone()
            params = json.dumps(prepared.sql.params, sort_keys=True, default=str)
            key = (prepared.sql.sql, params, str(versions[0] if versions else None))
            if (kept := cache.get(key)) is not None:
                return Answer(prepared.output_id, prepared.media_type, kept)
        cur = await conn.execute(*prepared.sql.psycopg())
        row = await cur.fetchone()
        if key is not None and cache is not None and row is not None:
            cache.put(key, bytes(row[0]))
    assert row is not None  # every statement answers one row
    if prepared.site is None:
        return Answer(prepared.output_id, prepared.media_type, bytes(row[0]))
    found, inside, body = row
    _check_site(prepared, found, inside)
    return Answer(prepared.output_id, prepared.media_type, bytes(body))


async def check_site(prepared: Prepared, pool: ReadPool) -> None:
    """The site's own checks in PostgreSQL (it exists, it lies in or by Jiaxing), before a job is accepted."""
    if prepared.site is None:
        return
    sql = statements.site_exists(prepared.site.params(), prepared.reach_m)
    async with reading(pool) as conn:
        cur = await conn.execute(*sql.psycopg())
        row = await cur.fetchone()
    assert row is not None
    _check_site(prepared, *row)


def _check_site(prepared: Prepared, found: bool, inside: bool) -> None:
    site = prepared.site
    assert site is not None
    if not found:
        raise InvalidInput(
            f"The site {site.source} does not exist or has no location: there is no feature "
            f"{site.feature_id} with a geometry in {site.layer_id}.",
            input="site",
        )
    if not inside:
        raise InvalidInput(
            "The site lies outside Jiaxing (嘉兴市): it touches none of its seven counties"
            + (" and is further than the distance from them" if prepared.process_id == "nearby" else "")
            + ". Check the coordinates (longitude first in CRS84) and the crs input.",
            input="site",
        )
