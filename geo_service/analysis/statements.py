"""The SQL of each process: one statement per answer, built as JSON by PostgreSQL.

Areas, lengths and distances are measured in EPSG:4549 (CGCS2000 / 3-degree Gauss–Kruger CM 120E, which
covers Jiaxing); geometries are stored in WGS 84 and searched by its GiST index first. `:site` is the checked
site as GeoJSON text, or NULL with `:ref_layer`/`:ref_id` naming a stored feature (inputs.Site).
"""

from __future__ import annotations

from typing import Any

from geo_service.ogc.query import Sql

METRIC_SRID = 4549
BOUNDARIES = "admin_boundaries"
# layers whose items a site conflicts with, and how the conflict reads (by the item's category)
CONFLICT_LAYERS = ("ecology_culture",)
CONFLICT_REASONS = {
    "ecology": "生态区域:开发须与生态保护相协调 ecology area: development must fit its protection",
    "culture": "文化区域:涉及文化遗产保护 culture area: heritage protection applies",
}
CONFLICT_DEFAULT = "生态文化区域 ecology or culture area the plan protects"
# the nearest of these, with the distance to it
NEAREST = {"rail_station": "rail_stations", "hub": "hubs", "road_project": "road_projects"}
# what county-summary measures: zones (areas), rail and road (lengths)
ZONE_LAYERS = ("demonstration_zone", "g60_platforms", "strategic_platforms", "central_city")
RAIL_LAYER = "rail_lines"
ROAD_LAYER = "road_projects"
BUILT = ("completed", "under_construction")
# beyond this (m) `nearby` does not look: the whole city is about 100 km across
MAX_DISTANCE_M = 50_000

# the site, in WGS 84
_SITE = (
    "(SELECT CASE WHEN CAST(:site AS text) IS NOT NULL"
    " THEN ST_SetSRID(ST_GeomFromGeoJSON(CAST(:site AS text)), 4326)"
    " ELSE (SELECT r.geom FROM features r WHERE r.layer_id = CAST(:ref_layer AS text)"
    " AND r.id = CAST(:ref_id AS bigint)) END)"
)

_SITE_CTE = f"""
s0 AS (SELECT {_SITE} AS g),
s AS (
  SELECT g, m, ST_Dimension(g) AS dim, ST_Area(m) AS area, ST_Length(m) AS length
  FROM (SELECT g, ST_Transform(g, {METRIC_SRID}) AS m FROM s0 WHERE g IS NOT NULL) t
)"""

# not the feature the site is (when the site is a stored feature)
_NOT_REF = (
    "NOT (f.layer_id IS NOT DISTINCT FROM CAST(:ref_layer AS text)"
    " AND f.id IS NOT DISTINCT FROM CAST(:ref_id AS bigint))"
)

# an item as every answer names it
_ITEM_FIELDS = """
  'layer', f.layer_id, 'layer_title', CAST(:titles AS jsonb)->>f.layer_id, 'id', f.id, 'code', f.code,
  'name_zh', f.name_zh, 'name_en', f.name_en, 'category', f.category, 'status', f.status,
  'accuracy', f.accuracy, 'accuracy_m', (f.properties->>'accuracy_m')::float8,
  'href', CAST(:base AS text) || '/collections/' || f.layer_id || '/items/' || f.id"""


def _round(expr: str, digits: int = 1) -> str:
    return f"round(CAST({expr} AS numeric), {digits})"


def _share(expr: str) -> str:
    """A share rounded to 4 places, at most 1 (rounding in the intersection may pass it); NULL stays NULL."""
    return f"round(CAST(CASE WHEN ({expr}) > 1 THEN 1 ELSE ({expr}) END AS numeric), 4)"


def site_check(params: dict[str, Any], layers: list[str], limit: int) -> Sql:
    """One row: whether the site was found and touches Jiaxing, and the report (JSON text)."""
    conflict_cases = " ".join(
        f"WHEN '{category}' THEN '{reason}'" for category, reason in CONFLICT_REASONS.items()
    )
    nearest = ", ".join(
        f"""'{key}', (
          SELECT json_build_object({_ITEM_FIELDS}, 'distance_m', {_round("f.d")})
          FROM (
            SELECT f.*, ST_Distance(ST_Transform(f.geom, {METRIC_SRID}), s.m) AS d
            FROM features f WHERE f.layer_id = '{layer}' AND f.geom IS NOT NULL AND {_NOT_REF}
            ORDER BY f.geom <-> s.g LIMIT 8
          ) f ORDER BY f.d, f.id LIMIT 1)"""
        for key, layer in NEAREST.items()
    )
    sql = f"""
WITH {_SITE_CTE},
areas AS (
  SELECT f.properties->>'adcode' AS adcode, f.name_zh, f.name_en, f.properties->>'level' AS level,
         CASE s.dim WHEN 2 THEN ST_Area(ST_Intersection(ST_Transform(f.geom, {METRIC_SRID}), s.m))
                    WHEN 1 THEN ST_Length(ST_Intersection(ST_Transform(f.geom, {METRIC_SRID}), s.m))
                    ELSE 1 END AS overlap
  FROM features f, s
  WHERE f.layer_id = '{BOUNDARIES}' AND f.geom && s.g AND ST_Intersects(f.geom, s.g)
),
city AS (SELECT overlap FROM areas WHERE level = 'city' LIMIT 1),
counties AS (
  SELECT a.*, CASE s.dim WHEN 2 THEN a.overlap / NULLIF(s.area, 0) WHEN 1 THEN a.overlap / NULLIF(s.length, 0)
                         ELSE 1 END AS share
  FROM areas a, s WHERE a.level <> 'city'
),
towns AS (
  SELECT f.id, f.layer_id, f.code, f.name_zh, f.name_en,
         ST_Area(ST_Intersection(ST_Transform(f.geom, {METRIC_SRID}), s.m)) AS overlap
  FROM features f, s WHERE f.category = 'town' AND f.geom && s.g AND ST_Intersects(f.geom, s.g)
),
hits AS (
  SELECT f.*, ST_Dimension(f.geom) AS fdim, ST_Transform(f.geom, {METRIC_SRID}) AS fm,
         CASE WHEN ST_Within(s.g, f.geom) THEN 'within' WHEN ST_Within(f.geom, s.g) THEN 'contains'
              ELSE 'intersects' END AS relation,
         f.layer_id = ANY(CAST(:conflict_layers AS text[])) AS conflict
  FROM features f, s
  WHERE f.layer_id = ANY(CAST(:layers AS text[])) AND f.geom && s.g AND ST_Intersects(f.geom, s.g)
    AND {_NOT_REF}
),
measured AS (
  SELECT h.*,
         CASE WHEN s.dim = 2 AND h.fdim = 2 THEN ST_Area(ST_Intersection(h.fm, s.m)) END AS overlap_m2,
         CASE WHEN s.dim = 2 AND h.fdim = 1 THEN ST_Length(ST_Intersection(h.fm, s.m))
              WHEN s.dim = 1 AND h.fdim = 2 THEN ST_Length(ST_Intersection(s.m, h.fm)) END AS length_m,
         CASE WHEN h.fdim = 2 THEN ST_Area(h.fm) END AS item_area
  FROM hits h, s
),
ranked AS (
  SELECT m.*,
         CASE WHEN s.dim = 2 AND m.fdim = 2 THEN m.overlap_m2 / NULLIF(s.area, 0)
              WHEN s.dim = 1 AND m.fdim = 2 THEN m.length_m / NULLIF(s.length, 0) END AS share,
         row_number() OVER (ORDER BY m.conflict DESC, m.overlap_m2 DESC NULLS LAST,
                                     m.length_m DESC NULLS LAST, m.layer_id, m.id) AS rank
  FROM measured m, s
)
SELECT
  (SELECT count(*) FROM s) > 0 AS found,
  EXISTS (SELECT 1 FROM city) AS inside,
  (SELECT json_build_object(
    'site', json_build_object(
      'type', replace(ST_GeometryType(s.g), 'ST_', ''), 'source', CAST(:source AS text),
      'area_m2', CASE WHEN s.dim = 2 THEN {_round("s.area")} END,
      'length_m', CASE WHEN s.dim = 1 THEN {_round("s.length")} END,
      'bbox', json_build_array(ST_XMin(s.g), ST_YMin(s.g), ST_XMax(s.g), ST_YMax(s.g)),
      'inside_share', (SELECT {
        _share("c.overlap / NULLIF(CASE s.dim WHEN 2 THEN s.area WHEN 1 THEN s.length ELSE 1 END, 0)")
    } FROM city c)),
    'county', (SELECT json_build_object('adcode', c.adcode, 'name_zh', c.name_zh, 'name_en', c.name_en,
                                        'share', {_share("c.share")})
               FROM counties c ORDER BY c.overlap DESC, c.adcode LIMIT 1),
    'counties', COALESCE((SELECT json_agg(json_build_object(
                  'adcode', c.adcode, 'name_zh', c.name_zh, 'name_en', c.name_en,
                  'overlap_m2', CASE WHEN s.dim = 2 THEN {_round("c.overlap")} END,
                  'overlap_m', CASE WHEN s.dim = 1 THEN {_round("c.overlap")} END,
                  'share', {_share("c.share")}) ORDER BY c.overlap DESC, c.adcode)
                FROM counties c), '[]'::json),
    'town', (SELECT json_build_object('code', t.code, 'name_zh', t.name_zh, 'name_en', t.name_en,
                                      'layer', t.layer_id, 'id', t.id,
                                      'href', CAST(:base AS text) || '/collections/' || t.layer_id
                                              || '/items/' || t.id)
             FROM towns t ORDER BY t.overlap DESC, t.id LIMIT 1),
    'town_note', (SELECT CASE WHEN count(*) = 0 THEN
                    '本数据未定位镇级边界 The data locates no towns; only the county is given.'
                  ELSE '镇级位置仅收录:' || string_agg(name_zh, '、' ORDER BY code)
                       || ' Towns are located only for: ' || string_agg(name_en, ', ' ORDER BY code)
                       || '; elsewhere the town is not known (null).' END
                  FROM features WHERE category = 'town' AND geom IS NOT NULL),
    'items_total', (SELECT count(*) FROM ranked),
    'conflicts', (SELECT count(*) FROM ranked WHERE conflict),
    'by_layer', COALESCE((SELECT json_object_agg(layer_id, n) FROM
                  (SELECT layer_id, count(*) AS n FROM ranked GROUP BY layer_id) bl), '{{}}'::json),
    'items', COALESCE((SELECT json_agg(json_build_object({_ITEM_FIELDS},
                'plan_text', f.properties->>'plan_text', 'plan_section', f.properties->>'plan_section',
                'relation', f.relation,
                'overlap_m2', {_round("f.overlap_m2")}, 'length_m', {_round("f.length_m")},
                'share', {_share("f.share")},
                'item_share', {_share("f.overlap_m2 / NULLIF(f.item_area, 0)")},
                'conflict', f.conflict,
                'accuracy_note', CASE WHEN f.accuracy = 'schematic' THEN
                    '示意范围,误差约 ±' || COALESCE(f.properties->>'accuracy_m', '?') || ' 米,重叠仅供参考 '
                    || 'schematic outline (±' || COALESCE(f.properties->>'accuracy_m', '?')
                    || ' m): the overlap is indicative' END,
                'conflict_reason', CASE WHEN f.conflict THEN
                    CASE f.category {conflict_cases} ELSE '{CONFLICT_DEFAULT}' END END)
                ORDER BY f.rank)
              FROM ranked f WHERE f.rank <= CAST(:limit AS integer)), '[]'::json),
    'nearest', json_build_object({nearest}),
    'schematic_items', (SELECT count(*) FROM ranked WHERE accuracy = 'schematic'),
    'notes', json_build_array(
      '面积、长度与距离按 EPSG:4549(CGCS2000 3度带 中央经线120°E)计算。 Areas, lengths and distances are '
      || 'measured in EPSG:4549 (CGCS2000 / 3-degree Gauss–Kruger CM 120E).',
      '规划项目多为示意位置:accuracy 与 accuracy_m 给出各项的精度。 Most plan items are located '
      || 'schematically: accuracy and accuracy_m give each one''s precision; an overlap with a schematic '
      || 'outline is indicative, not a survey.')
  )::text FROM s) AS report
"""
    return Sql(sql, {**params, "layers": layers, "limit": limit, "conflict_layers": list(CONFLICT_LAYERS)})


def site_exists(params: dict[str, Any], distance_m: float) -> Sql:
    """One row: whether the site was found, and whether it lies within `distance_m` of Jiaxing (0: touches
    it). What an asynchronous execution checks before its job is accepted."""
    sql = f"""
WITH {_SITE_CTE}
SELECT (SELECT count(*) FROM s) > 0,
  EXISTS (SELECT 1 FROM features c, s WHERE c.layer_id = '{BOUNDARIES}' AND c.properties->>'level' = 'city'
          AND ST_DWithin(ST_Transform(c.geom, {METRIC_SRID}), s.m, CAST(:distance AS float8)))
"""
    return Sql(sql, {**params, "distance": distance_m})


def _county_rows(layers: list[str]) -> str:
    """Per area (the city and each county) and layer and status: items, and their area and length in it.

    An item belongs to an area when its geometry touches it; an item without a location, when its `county`
    property names the area (the city: any of its counties)."""
    return f"""
areas AS (
  SELECT f.properties->>'adcode' AS adcode, f.name_zh, f.name_en, f.properties->>'level' AS level,
         f.geom, ST_Transform(f.geom, {METRIC_SRID}) AS m
  FROM features f WHERE f.layer_id = '{BOUNDARIES}'
),
items AS (
  SELECT f.id, f.layer_id, f.status, f.geom, ST_Transform(f.geom, {METRIC_SRID}) AS m,
         ST_Dimension(f.geom) AS dim, COALESCE(f.properties->'county', '[]'::jsonb) AS county
  FROM features f WHERE f.layer_id = ANY(CAST(:layers AS text[]))
),
members AS (
  SELECT a.adcode, i.*,
         CASE WHEN i.dim = 2 THEN ST_Area(ST_Intersection(i.m, a.m)) END AS area_m2,
         CASE WHEN i.dim = 1 THEN ST_Length(ST_Intersection(i.m, a.m)) END AS length_m
  FROM areas a JOIN items i ON (
    CASE WHEN i.geom IS NOT NULL THEN i.geom && a.geom AND ST_Intersects(i.geom, a.geom)
         WHEN a.level = 'city' THEN jsonb_array_length(i.county) > 0
         ELSE i.county ? a.adcode END)
)"""


def _county_summary(layers: list[str], select: str) -> Sql:
    """The summary's statement, ending in `select` over its `summary` rows."""
    built = ", ".join(f"'{s}'" for s in BUILT)
    sql = f"""
WITH {_county_rows(layers)},
zones AS (
  SELECT a.adcode, ST_Area(ST_Union(ST_Intersection(i.m, a.m))) AS area_m2
  FROM areas a JOIN items i ON i.layer_id = ANY(CAST(:zones AS text[])) AND i.dim = 2
    AND i.geom && a.geom AND ST_Intersects(i.geom, a.geom)
  GROUP BY a.adcode
),
per_layer AS (
  SELECT adcode, layer_id, json_object_agg(status, n ORDER BY status) AS statuses
  FROM (SELECT adcode, layer_id, status, count(*) AS n FROM members GROUP BY adcode, layer_id, status) c
  GROUP BY adcode, layer_id
),
summary AS (
  SELECT a.adcode, a.name_zh, a.name_en, a.level, ST_Area(a.m) / 1e6 AS area_km2,
    (SELECT count(*) FROM members m WHERE m.adcode = a.adcode) AS items,
    (SELECT json_object_agg(status, n ORDER BY status) FROM
       (SELECT status, count(*) AS n FROM members m WHERE m.adcode = a.adcode GROUP BY status) c)
      AS by_status,
    (SELECT json_object_agg(p.layer_id, p.statuses ORDER BY p.layer_id) FROM per_layer p
       WHERE p.adcode = a.adcode) AS by_layer,
    COALESCE((SELECT z.area_m2 FROM zones z WHERE z.adcode = a.adcode), 0) / 1e6 AS zone_area_km2,
    COALESCE((SELECT sum(area_m2) FROM members m WHERE m.adcode = a.adcode
              AND m.layer_id = 'ecology_culture'), 0) / 1e6 AS ecology_culture_km2,
    COALESCE((SELECT sum(length_m) FROM members m WHERE m.adcode = a.adcode
              AND m.layer_id = '{RAIL_LAYER}'), 0) / 1e3 AS rail_km,
    COALESCE((SELECT sum(length_m) FROM members m WHERE m.adcode = a.adcode
              AND m.layer_id = '{ROAD_LAYER}'), 0) / 1e3 AS road_km,
    (SELECT count(*) FILTER (WHERE status IN ({built}))::float8 / NULLIF(count(*), 0)
       FROM members m WHERE m.adcode = a.adcode AND status <> 'existing') AS built_share,
    (SELECT sum(length_m) FILTER (WHERE status IN ({built})) / NULLIF(sum(length_m), 0)
       FROM members m WHERE m.adcode = a.adcode AND m.layer_id = '{RAIL_LAYER}'
       AND status <> 'existing') AS rail_built_share,
    (SELECT sum(length_m) FILTER (WHERE status IN ({built})) / NULLIF(sum(length_m), 0)
       FROM members m WHERE m.adcode = a.adcode AND m.layer_id = '{ROAD_LAYER}'
       AND status <> 'existing') AS road_built_share
  FROM areas a
)
SELECT {select.replace("{doc}", _SUMMARY_DOC)}
"""
    return Sql(sql, {"layers": layers, "zones": [z for z in ZONE_LAYERS if z in layers]})


_SUMMARY_DOC = f"""json_build_object(
  'areas', COALESCE(json_agg(json_build_object(
      'adcode', adcode, 'name_zh', name_zh, 'name_en', name_en, 'level', level,
      'area_km2', {_round("area_km2", 1)}, 'items', items,
      'by_status', COALESCE(by_status, '{{}}'::json), 'by_layer', COALESCE(by_layer, '{{}}'::json),
      'zone_area_km2', {_round("zone_area_km2", 2)},
      'ecology_culture_km2', {_round("ecology_culture_km2", 2)},
      'rail_km', {_round("rail_km", 1)}, 'road_km', {_round("road_km", 1)},
      'built_share', {_round("built_share", 3)}, 'rail_built_share', {_round("rail_built_share", 3)},
      'road_built_share', {_round("road_built_share", 3)})
    ORDER BY level <> 'city', adcode), '[]'::json),
  'layers', CAST(:layers AS text[]),
  'zone_layers', CAST(:zones AS text[]),
  'notes', json_build_array(
    '按几何位置统计:要素与区县相交即计入(跨区县的线路分段计长度);未定位的要素按其 county 属性计入。 '
    || 'Items are counted in each area their geometry touches (lines that cross counties are measured in '
    || 'each); items without a location count where their county property says.',
    '建成比例 = (已建成 + 在建) / (规划 + 在建 + 已建成),不计现状要素。 built_share = (completed + under '
    || 'construction) / (planned + under construction + completed); existing items are left out. Rail and '
    || 'road shares are by length.',
    '片区面积为示范区、G60平台、战略平台与中心城区多边形之并集(重叠只计一次);多数边界为示意。 '
    || 'zone_area_km2 is the union of the zone polygons (overlaps counted once); most outlines are schematic.'
  )
)"""


def county_summary(layers: list[str]) -> Sql:
    """One row: the summary of the city and each county (JSON text)."""
    return _county_summary(layers, "{doc}::text FROM summary")


CSV_COLUMNS = (
    "adcode",
    "name_zh",
    "name_en",
    "level",
    "area_km2",
    "items",
    "planned",
    "under_construction",
    "completed",
    "existing",
    "zone_area_km2",
    "ecology_culture_km2",
    "rail_km",
    "road_km",
    "built_share",
    "rail_built_share",
    "road_built_share",
)


def county_summary_csv(layers: list[str]) -> Sql:
    """The summary as CSV text (a header line, then the city and each county), from the JSON one."""
    fields = []
    for column in CSV_COLUMNS:
        if column in ("planned", "under_construction", "completed", "existing"):
            value = f"COALESCE(a->'by_status'->>'{column}', '0')"
        else:
            value = f"COALESCE(a->>'{column}', '')"
        if column in ("name_zh", "name_en"):
            value = f"""'"' || replace({value}, '"', '""') || '"'"""
        fields.append(value)
    row = " || ',' || ".join(fields)
    header = ",".join(CSV_COLUMNS)
    select = (
        f"'{header}' || E'\\r\\n' || string_agg({row}, E'\\r\\n' ORDER BY n) || E'\\r\\n'"
        " FROM (SELECT {doc}::jsonb AS doc FROM summary) d,"
        " jsonb_array_elements(d.doc->'areas') WITH ORDINALITY AS e(a, n)"
    )
    return _county_summary(layers, select)


def nearby(params: dict[str, Any], layers: list[str], distance_m: float, limit: int) -> Sql:
    """One row: whether the site was found, and the items within the distance by layer, nearest first."""
    sql = f"""
WITH {_SITE_CTE},
near AS (
  SELECT f.*, ST_Distance(ST_Transform(f.geom, {METRIC_SRID}), s.m) AS d
  FROM features f, s
  WHERE f.layer_id = ANY(CAST(:layers AS text[]))
    AND f.geom && ST_Expand(s.g, CAST(:distance AS float8) / 90000.0)
    AND ST_DWithin(ST_Transform(f.geom, {METRIC_SRID}), s.m, CAST(:distance AS float8))
    AND {_NOT_REF}
),
ranked AS (
  SELECT n.*, row_number() OVER (PARTITION BY n.layer_id ORDER BY n.d, n.id) AS rank FROM near n
),
per_layer AS (
  SELECT f.layer_id, min(f.d) AS nearest, count(*) AS n,
         json_agg(json_build_object({_ITEM_FIELDS}, 'distance_m', {_round("f.d")}) ORDER BY f.d, f.id)
           FILTER (WHERE f.rank <= CAST(:limit AS integer)) AS items
  FROM ranked f GROUP BY f.layer_id
)
SELECT (SELECT count(*) FROM s) > 0 AS found,
  EXISTS (SELECT 1 FROM features c, s WHERE c.layer_id = '{BOUNDARIES}' AND c.properties->>'level' = 'city'
          AND ST_DWithin(ST_Transform(c.geom, {METRIC_SRID}), s.m, CAST(:distance AS float8))) AS inside,
  (SELECT json_build_object(
     'distance_m', CAST(:distance AS float8), 'source', CAST(:source AS text),
     'total', COALESCE((SELECT sum(n) FROM per_layer), 0),
     'layers', COALESCE((SELECT json_agg(json_build_object(
        'layer', p.layer_id, 'title', CAST(:titles AS jsonb)->>p.layer_id, 'matched', p.n, 'items', p.items)
        ORDER BY p.nearest, p.layer_id) FROM per_layer p), '[]'::json))::text FROM s) AS report
"""
    return Sql(sql, {**params, "layers": layers, "distance": distance_m, "limit": limit})
