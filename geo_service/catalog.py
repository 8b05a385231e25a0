"""The layer catalogue and map documents, read from `layers/` and `maps/`: the one source of what exists."""

from __future__ import annotations

import re
from copy import deepcopy
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from jsonschema import Draft202012Validator
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

GeometryType = Literal["Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"]

LAYER_ID = re.compile(r"^[a-z][a-z0-9_]*$")
STATUS_VALUES = ["planned", "under_construction", "completed", "existing"]
ACCURACY_VALUES = ["surveyed", "approximate", "schematic", "unlocated"]
# How the coded values read to people: 中文 first, English beside it.
STATUS_LABELS: dict[str, str] = {
    "planned": "规划 planned",
    "under_construction": "在建 under construction",
    "completed": "已建成 completed",
    "existing": "现状 existing",
}

ACCURACY_LABELS: dict[str, str] = {
    "surveyed": "实测 surveyed",
    "approximate": "近似 approximate",
    "schematic": "示意 schematic",
    "unlocated": "未定位 unlocated",
}

# Properties every plan feature carries (DESIGN §3). The first group are typed columns in PostGIS;
# the rest live in the JSONB remainder together with each layer's own properties.
COLUMN_PROPERTIES = ("code", "name_zh", "name_en", "category", "status", "accuracy")

COMMON_PROPERTIES: dict[str, dict[str, Any]] = {
    "code": {
        "type": "string",
        "pattern": "^[a-z0-9][a-z0-9_-]*$",
        "maxLength": 80,
        "title": "代码 Code",
        "description": "Stable slug of the item (lower-case letters, digits, _ and -; no dots).",
    },
    "name_zh": {"type": "string", "minLength": 1, "maxLength": 200, "title": "名称 Name (Chinese)"},
    "name_en": {"type": "string", "minLength": 1, "maxLength": 300, "title": "Name (English) 英文名称"},
    "category": {"type": "string", "minLength": 1, "maxLength": 80, "title": "类别 Category"},
    "status": {"type": "string", "enum": STATUS_VALUES, "title": "状态 Status"},
    "status_date": {
        "type": ["string", "null"],
        "maxLength": 80,
        "title": "状态日期 Status date",
        "description": "When the status was reached, as the source gives it (YYYY, YYYY-MM or YYYY-MM-DD).",
    },
    "county": {
        "type": "array",
        "items": {"type": "string", "pattern": "^[0-9]{6}$"},
        "title": "所属区县 County adcodes",
    },
    "plan_section": {"type": ["string", "null"], "maxLength": 200, "title": "规划章节 Plan section"},
    "plan_text": {
        "type": ["string", "null"],
        "maxLength": 4000,
        "title": "规划原文 Plan text",
        "description": "The exact clause of the plan (or source article) that names this item.",
    },
    "plan_source": {
        "type": ["string", "null"],
        "maxLength": 200,
        "title": "原文出处 Plan text source",
        "description": "The source text file the plan_text is quoted from.",
    },
    "source": {"type": ["string", "null"], "maxLength": 2000, "title": "位置来源 Location source"},
    "source_url": {"type": ["string", "null"], "maxLength": 2000, "title": "来源链接 Source URL"},
    "accuracy": {"type": "string", "enum": ACCURACY_VALUES, "title": "精度 Accuracy"},
    "accuracy_m": {
        "type": ["number", "null"],
        "minimum": 0,
        "title": "估计误差(米) Estimated error (m)",
    },
    "geometry_method": {
        "type": ["string", "null"],
        "maxLength": 2000,
        "title": "几何来源方法 How the geometry was made",
    },
    "aliases": {"type": "array", "items": {"type": "string"}, "title": "别名 Aliases"},
    "note": {"type": ["string", "null"], "maxLength": 4000, "title": "备注 Note"},
}
REQUIRED_PROPERTIES = ["code", "name_zh", "name_en", "category", "status", "accuracy"]
CATALOG_FILE = "catalog.yaml"  # the plan layers, each with its seed file
BENCH_FILE = "bench.yaml"  # generated benchmark layers (no seed file), only with JXPLAN_BENCH_LAYERS
# property names double as `/items` query parameters (`?status=planned`), so none may be a standard one
RESERVED_NAMES = {"f", "limit", "bbox", "datetime", "crs", "filter", "sortby", "properties", "cursor", "id"}
MAX_TILE_ZOOM = 22  # the deepest tile matrix served (WebMercatorQuad 0–22)
# what a layer's vector tiles carry when its catalogue entry does not say (besides the feature id, which
# every tile feature carries as its MVT id): enough to style, label and link to the feature
DEFAULT_TILE_PROPERTIES = ("code", "name_zh", "name_en", "category", "status", "accuracy")
# the properties the map's tile styling reads at every zoom: the status (dash, class, the status filter)
# and the accuracy (schematic features drawn faded); the property a style colours `by` comes on top
STYLE_TILE_PROPERTIES = ("status", "accuracy")


class Bilingual(BaseModel):
    """A text in Chinese (shown first) and English."""

    model_config = ConfigDict(frozen=True)

    zh: str
    en: str

    def __str__(self) -> str:
        return f"{self.zh} {self.en}"


class PlanReference(BaseModel):
    """Where in the plan a layer comes from."""

    document: str
    section: str | None = None


class LayerStyle(BaseModel):
    """Default map style of a layer; `by` colours features by a property's values."""

    color: str = "#3366cc"
    fill_color: str | None = None
    weight: float = 2
    fill_opacity: float = 0.25
    radius: float = 6
    by: str | None = None
    colors: dict[str, str] = Field(default_factory=dict)
    z_index: int = 400


class TileStep(BaseModel):
    """From `min_zoom` on (until the next step's), a layer's tiles carry these properties: a list of names,
    or `all` (every property the layer declares)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_zoom: int = Field(ge=0, le=MAX_TILE_ZOOM)
    properties: list[str] | Literal["all"]


class LayerTiles(BaseModel):
    """How a layer's vector tiles are made: which properties they carry at which zooms.

    ```yaml
    tiles:
      properties:
        - {min_zoom: 0, properties: [status, accuracy, land_use]}
        - {min_zoom: 14, properties: all}
    ```
    Steps in rising `min_zoom`, the first at 0; each carries at least what the one before it carries.
    A layer that does not say carries DEFAULT_TILE_PROPERTIES (and the property its style colours by) at
    every zoom."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    properties: list[TileStep] = Field(min_length=1)


class Layer(BaseModel):
    """One catalogue entry: a collection of features with a declared geometry type and property schema."""

    model_config = ConfigDict(frozen=True)

    id: str
    title: Bilingual
    description: Bilingual
    geometry_type: GeometryType
    # the seed GeoJSON beside the catalogue; None for a layer whose rows are generated in the database
    # (the benchmark layers of `layers/bench.yaml`), which `jxplan load` skips
    file: str | None = None
    keywords: list[str] = Field(default_factory=list)
    plan_reference: PlanReference | None = None
    properties: dict[str, dict[str, Any]] = Field(default_factory=dict)
    required: list[str] = Field(default_factory=list)
    style: LayerStyle = Field(default_factory=LayerStyle)
    editable: bool = True
    tiles: LayerTiles | None = None

    @field_validator("id")
    @classmethod
    def _id_is_a_slug(cls, value: str) -> str:
        if not LAYER_ID.match(value):
            raise ValueError(f"layer id {value!r} must be lower-case letters, digits and _ (no dots)")
        return value

    @model_validator(mode="after")
    def _no_clash_with_common(self) -> Layer:
        clash = set(self.properties) & set(COMMON_PROPERTIES)
        if clash:
            raise ValueError(f"layer {self.id} redeclares common properties {sorted(clash)}")
        reserved = set(self.properties) & RESERVED_NAMES
        if reserved:
            raise ValueError(
                f"layer {self.id}: property names {sorted(reserved)} are reserved query parameters"
            )
        bad = [name for name in self.properties if not LAYER_ID.match(name)]
        if bad:
            raise ValueError(
                f"layer {self.id}: property names {bad} must be lower-case letters, digits and _"
            )
        self._check_tiles()
        return self

    def _check_tiles(self) -> None:
        """The `tiles.properties` steps: zooms rising from 0, known names, never fewer than before, and at
        every zoom what the map's tile styling reads."""
        where = f"layer {self.id}: tiles.properties"
        steps = self.tile_steps
        if steps[0].min_zoom != 0:
            raise ValueError(f"{where}: the first step must start at min_zoom 0, not {steps[0].min_zoom}")
        known = self.property_names
        carried: list[str] = []
        for before, step in zip([None, *steps], steps, strict=False):
            if before is not None and step.min_zoom <= before.min_zoom:
                raise ValueError(
                    f"{where}: min_zoom must rise from step to step ({step.min_zoom} follows "
                    f"{before.min_zoom})"
                )
            if step.properties == "all":
                names = known
            else:
                names = step.properties
                if "id" in names:
                    raise ValueError(
                        f"{where}: leave out `id` (zoom {step.min_zoom}): every tile feature carries "
                        "the feature id as its MVT id"
                    )
                unknown = [n for n in names if n not in known]
                if unknown:
                    raise ValueError(
                        f"{where}: zoom {step.min_zoom} names {unknown}, which the layer does not declare "
                        f"(its properties: {', '.join(known)}; or `all`)"
                    )
                twice = sorted({n for n in names if names.count(n) > 1})
                if twice:
                    raise ValueError(f"{where}: zoom {step.min_zoom} names {twice} more than once")
            dropped = [n for n in carried if n not in names]
            if dropped:
                raise ValueError(
                    f"{where}: zoom {step.min_zoom} drops {dropped}, carried from a lower zoom; each step "
                    "carries at least what the one before it carries"
                )
            carried = list(names)
        styled = [*STYLE_TILE_PROPERTIES, *([self.style.by] if self.style.by else [])]
        self.check_tile_styling(styled, "the map's tile styling reads it")

    @cached_property
    def tile_steps(self) -> list[TileStep]:
        """The declared `tiles.properties` steps, or the default: one step from zoom 0."""
        if self.tiles is not None:
            return self.tiles.properties
        names = list(DEFAULT_TILE_PROPERTIES)
        if self.style.by and self.style.by not in names and self.style.by in self.property_names:
            names.append(self.style.by)
        return [TileStep(min_zoom=0, properties=names)]

    def check_tile_styling(self, names: list[str], why: str) -> None:
        """A `ValueError` unless every zoom's tiles carry these (declared) properties."""
        for step in self.tile_steps:
            if step.properties == "all":
                continue
            missing = [n for n in names if n in self.property_names and n not in step.properties]
            if missing:
                raise ValueError(
                    f"layer {self.id}: tiles.properties from zoom {step.min_zoom} must carry {missing} "
                    f"({why})"
                )

    def tile_properties(self, zoom: int) -> list[str]:
        """The properties this layer's tiles carry at `zoom`, in declaration order (the id aside)."""
        steps = self.tile_steps
        chosen = steps[0]
        for step in steps:
            if step.min_zoom <= zoom:
                chosen = step
        if chosen.properties == "all":
            return self.property_names
        wanted = set(chosen.properties)
        return [n for n in self.property_names if n in wanted]

    def tile_property_zooms(self) -> dict[str, int]:
        """Every property some zoom's tiles carry, with the lowest zoom it appears at."""
        zooms: dict[str, int] = {}
        for step in self.tile_steps:
            for name in self.tile_properties(step.min_zoom):
                zooms.setdefault(name, step.min_zoom)
        return {n: zooms[n] for n in self.property_names if n in zooms}

    @cached_property
    def json_schema(self) -> dict[str, Any]:
        """JSON Schema of a feature's properties: the common ones plus this layer's own."""
        props = deepcopy(COMMON_PROPERTIES) | deepcopy(self.properties)
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": props,
            "required": REQUIRED_PROPERTIES + [r for r in self.required if r not in REQUIRED_PROPERTIES],
            "additionalProperties": False,
        }

    @cached_property
    def property_validator(self) -> Draft202012Validator:
        """Validator of a feature's properties against `json_schema`."""
        return Draft202012Validator(self.json_schema)

    @property
    def seed_file(self) -> str:
        """The name of the seed GeoJSON file (a `ValueError` for a generated layer, which has none)."""
        if self.file is None:
            raise ValueError(f"layer {self.id} has no seed file: its rows are generated (jxplan bench load)")
        return self.file

    @property
    def property_names(self) -> list[str]:
        """Every property a feature of this layer may carry, common ones first."""
        return list(COMMON_PROPERTIES) + list(self.properties)


class MapLayer(BaseModel):
    """A layer as it appears on one map.

    `source` is how the browser gets the features: `geojson` (every feature, from the items pages),
    `tiles` (vector tiles, for large layers) or `auto` (tiles when the layer holds more features than the
    map's threshold)."""

    layer: str
    show: bool = True
    style: LayerStyle | None = None
    source: Literal["auto", "geojson", "tiles"] = "auto"


class MapDocument(BaseModel):
    """A thematic map: which layers, their styles, where it opens."""

    model_config = ConfigDict(frozen=True)

    id: str
    title: Bilingual
    description: Bilingual
    center: tuple[float, float] = Field(description="lat, lon")
    zoom: int = Field(ge=1, le=20)
    layers: list[MapLayer]

    @field_validator("id")
    @classmethod
    def _id_is_a_slug(cls, value: str) -> str:
        if not LAYER_ID.match(value):
            raise ValueError(f"map id {value!r} must be lower-case letters, digits and _")
        return value


class Catalog(BaseModel):
    """Everything that exists: layers and maps, in their declared order."""

    layers: dict[str, Layer]
    maps: dict[str, MapDocument]
    layers_dir: Path

    def layer_file(self, layer: Layer) -> Path:
        """The seed GeoJSON file of a layer (a `ValueError` for a generated layer, which has none)."""
        return self.layers_dir / layer.seed_file


class CatalogError(ValueError):
    """The catalogue or a map document is malformed."""


def _read_layers(path: Path, *, generated: bool) -> list[Layer]:
    """The `layers:` list of one catalogue file: plan layers each name their seed `file`, generated
    (benchmark) layers none."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        layers = [Layer.model_validate(entry) for entry in raw["layers"]]
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
        raise CatalogError(f"{path}: {exc}") from exc
    for layer in layers:
        if generated and layer.file is not None:
            raise CatalogError(f"{path}: layer {layer.id} is generated and may not name a seed file")
        if not generated and layer.file is None:
            raise CatalogError(f"{path}: layer {layer.id} must name its seed GeoJSON `file`")
    return layers


def load_catalog(layers_dir: Path, maps_dir: Path, *, bench_layers: bool = False) -> Catalog:
    """Read `layers/catalog.yaml` and every `maps/*.yaml`, checking that maps name existing layers.

    With `bench_layers` (the `JXPLAN_BENCH_LAYERS` setting) the synthetic benchmark layers of
    `layers/bench.yaml` follow the plan layers; they have no seed file (`jxplan bench load` makes them).
    """
    sources = [(layers_dir / CATALOG_FILE, False)]
    if bench_layers:
        sources.append((layers_dir / BENCH_FILE, True))
    by_id: dict[str, Layer] = {}
    for path, generated in sources:
        for layer in _read_layers(path, generated=generated):
            if layer.id in by_id:
                raise CatalogError(f"{path}: layer id {layer.id!r} declared twice")
            by_id[layer.id] = layer
    maps: dict[str, MapDocument] = {}
    for path in sorted(maps_dir.glob("*.yaml")):
        try:
            doc = MapDocument.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
        except (OSError, TypeError, ValueError, yaml.YAMLError) as exc:
            raise CatalogError(f"{path}: {exc}") from exc
        missing = [m.layer for m in doc.layers if m.layer not in by_id]
        if missing:
            raise CatalogError(f"{path}: unknown layers {missing}")
        for entry in doc.layers:  # a map that colours a layer by another property needs it in the tiles
            by = entry.style.by if entry.style is not None else None
            if by:
                try:
                    by_id[entry.layer].check_tile_styling([by], f"map {doc.id} colours the layer by it")
                except ValueError as exc:
                    raise CatalogError(f"{path}: {exc}") from exc
        maps[doc.id] = doc
    return Catalog(layers=by_id, maps=maps, layers_dir=layers_dir)


def read_bench_layer(layers_dir: Path, layer_id: str) -> Layer:
    """One layer of `layers/bench.yaml`, whatever the `bench_layers` setting (for `jxplan bench`)."""
    path = layers_dir / BENCH_FILE
    for layer in _read_layers(path, generated=True):
        if layer.id == layer_id:
            return layer
    raise CatalogError(f"{path}: no layer {layer_id!r}")
