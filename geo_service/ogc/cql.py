"""CQL2 filters (OGC API – Features Part 3): parsed by the `cql2` library, translated here into SQL.

Both encodings are parsed into CQL2-JSON by the library; this module walks that tree and writes a SQL
condition in which every value is a bound parameter and every property is one of the layer's declared
fields (`fields.py`). Anything else — an unknown property, operator or function, a type mismatch, a
malformed geometry — is a 400 that says what to change.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import cql2
import psycopg
import shapely.geometry
from shapely.validation import explain_validity
from sqlalchemy.exc import DBAPIError

from geo_service.catalog import Layer
from geo_service.errors import InvalidParameter
from geo_service.ogc.crs import CRS, CRS84_CRS
from geo_service.ogc.fields import GEOMETRY_FIELD, GEOMETRY_SQL, Field, layer_fields
from geo_service.ogc.parameters import bbox_from_numbers
from geo_service.validation import storage_violations

FILTER_LANGS = ("cql2-text", "cql2-json")
MAX_FILTER_LENGTH = 10_000
MAX_DEPTH = 40  # nesting of brackets and NOTs; the parser recurses, so this is checked before it runs

_COMPARISONS = {"=": "=", "<>": "<>", "<": "<", ">": ">", "<=": "<=", ">=": ">="}
_SPATIAL = {
    "s_intersects": "ST_Intersects",
    "s_equals": "ST_Equals",
    "s_disjoint": "ST_Disjoint",
    "s_touches": "ST_Touches",
    "s_within": "ST_Within",
    "s_overlaps": "ST_Overlaps",
    "s_crosses": "ST_Crosses",
    "s_contains": "ST_Contains",
}
_ARRAY = ("a_equals", "a_contains", "a_containedby", "a_overlaps")
_ARITHMETIC = ("+", "-", "*", "/", "%", "^", "div")
_GEOJSON_TYPES = {
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
    "GeometryCollection",
}
_KIND_WORDS = {
    "string": "text",
    "number": "a number",
    "boolean": "true/false",
    "array": "a list",
    "geometry": "a geometry",
    "null": "NULL",
}


@dataclass(frozen=True)
class Predicate:
    """A translated filter: the SQL condition, its bound values, and a canonical text for cursors/ETags."""

    sql: str
    params: dict[str, Any]
    canonical: str


def _problem(message: str) -> InvalidParameter:
    """A 400 for the filter, whose detail names the parameter whatever part of the expression is wrong."""
    if not message.startswith("filter"):
        message = f"filter: {message}"
    return InvalidParameter(message, parameter="filter")


def _check_nesting(text: str) -> None:
    """Refuse filters nested deeper than MAX_DEPTH (brackets outside quotes, or NOT chains)."""
    depth = deepest = 0
    quote: str | None = None
    for ch in text:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == ")":
            depth -= 1
    nots = len(re.findall(r"\bnot\b", text, flags=re.IGNORECASE))
    if deepest > MAX_DEPTH or nots > MAX_DEPTH:
        raise _problem(f"filter is nested too deeply (more than {MAX_DEPTH} levels); simplify it.")


def _json_depth(node: Any, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(node, dict):
        return max((_json_depth(v, level + 1) for v in node.values()), default=level)
    if isinstance(node, list):
        return max((_json_depth(v, level + 1) for v in node), default=level)
    return level


def parse_filter(raw: str, lang: str | None, layer: Layer, crs: CRS = CRS84_CRS) -> Predicate:
    """Parse `filter` in `filter-lang` (default cql2-text) and translate it for `layer`."""
    lang = lang or "cql2-text"
    if lang not in FILTER_LANGS:
        raise InvalidParameter(
            f"filter-lang {lang!r} is not supported; use cql2-text or cql2-json.", parameter="filter-lang"
        )
    if not raw.strip():
        raise _problem("filter is empty; give a CQL2 expression such as status = 'planned'.")
    if len(raw) > MAX_FILTER_LENGTH:
        raise _problem(f"filter is longer than {MAX_FILTER_LENGTH} characters; split the query.")
    try:
        if lang == "cql2-text":
            _check_nesting(raw)
            tree = cql2.parse_text(raw).to_json()
        else:
            try:
                document = json.loads(raw)
            except (ValueError, RecursionError) as exc:
                raise _problem(f"filter is not valid JSON: {exc}") from None
            if _json_depth(document) > 2 * MAX_DEPTH:
                raise _problem(f"filter is nested too deeply (more than {MAX_DEPTH} levels); simplify it.")
            tree = cql2.parse_json(json.dumps(document)).to_json()
    except (cql2.ParseError, ValueError) as exc:
        where = str(exc).strip()
        raise _problem(f"filter is not valid {lang}:\n{where}") from None
    except InvalidParameter:
        raise
    except Exception as exc:
        # cql2's own conversion of what it parsed fails with a bare Exception (a number too large for JSON,
        # say): still the filter's fault, never a 500
        raise _problem(
            f"filter is not valid {lang}: {str(exc).strip()}; check its numbers (a double's range, "
            "about ±1.8e308) and literals."
        ) from None
    translator = _Translator(layer, crs, "cql")
    sql = translator.condition(tree, 0)
    canonical = json.dumps(tree, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return Predicate(f"({sql})", translator.params, f"{crs.uri}|{canonical}")


@contextmanager
def filter_errors(filtered: bool) -> Iterator[None]:
    """Around running a statement that may carry a filter: a data error the filter caused (an arithmetic
    overflow, say) is the client's 400, not the server's 500."""
    try:
        yield
    except (DBAPIError, psycopg.Error) as exc:
        error = exc.orig if isinstance(exc, DBAPIError) else exc  # SQLAlchemy wraps psycopg's error
        state = getattr(error, "sqlstate", None) or ""
        if filtered and state.startswith("22"):
            diag = getattr(error, "diag", None)
            reason = getattr(diag, "message_primary", None) or "data error"
            raise _problem(f"filter cannot be evaluated on this collection: {reason}.") from None
        raise


@dataclass
class _Value:
    sql: str
    kind: str  # string, number, boolean, array, geometry, null


def equality_predicate(values: dict[str, str], layer: Layer) -> Predicate | None:
    """Part 1 property parameters (`?status=planned`): each an equality on a scalar property, ANDed.

    Values are typed by the property's schema: numbers must parse, booleans are true/false."""
    if not values:
        return None
    fields = layer_fields(layer)
    comparisons: list[Any] = []
    for name, raw in sorted(values.items()):
        kind = fields[name].kind
        value: Any = raw
        if kind in ("number", "integer"):
            try:
                value = float(raw)
            except ValueError:
                raise InvalidParameter(f"{name} is a number; got {raw!r}.", parameter=name) from None
            if not math.isfinite(value):
                raise InvalidParameter(f"{name} must be a finite number.", parameter=name)
        elif kind == "boolean":
            if raw not in ("true", "false"):
                raise InvalidParameter(f"{name} is true or false; got {raw!r}.", parameter=name)
            value = raw == "true"
        comparisons.append({"op": "=", "args": [{"property": name}, value]})
    tree = comparisons[0] if len(comparisons) == 1 else {"op": "and", "args": comparisons}
    translator = _Translator(layer, CRS84_CRS, "eq")
    sql = translator.condition(tree, 0)
    canonical = json.dumps(tree, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return Predicate(f"({sql})", translator.params, canonical)


def combine(*predicates: Predicate | None) -> Predicate | None:
    """The AND of the given predicates (their bound names are distinct by prefix)."""
    present = [p for p in predicates if p is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    params: dict[str, Any] = {}
    for p in present:
        params |= p.params
    return Predicate(
        "(" + " AND ".join(p.sql for p in present) + ")", params, "&".join(p.canonical for p in present)
    )


@dataclass
class _Translator:
    layer: Layer
    crs: CRS
    prefix: str
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.fields: dict[str, Field] = layer_fields(self.layer)

    # -- helpers -------------------------------------------------------------------------------------
    def bind(self, value: Any) -> str:
        name = f"{self.prefix}{len(self.params)}"
        self.params[name] = value
        return f":{name}"

    def _args(self, node: dict[str, Any], op: str, count: int | None = None) -> list[Any]:
        args = node.get("args")
        if not isinstance(args, list):
            raise _problem(f"{op.upper()} needs a list of arguments ('args').")
        if count is not None and len(args) != count:
            raise _problem(f"{op.upper()} takes {count} argument(s); got {len(args)}.")
        return args

    def _expect(self, value: _Value, kinds: tuple[str, ...], what: str) -> None:
        if value.kind not in kinds and value.kind != "null":
            wanted = " or ".join(_KIND_WORDS[k] for k in kinds)
            raise _problem(f"{what} needs {wanted}, not {_KIND_WORDS[value.kind]}.")

    # -- conditions ----------------------------------------------------------------------------------
    def condition(self, node: Any, depth: int) -> str:
        """A boolean SQL expression."""
        if depth > MAX_DEPTH:
            raise _problem(f"filter is nested too deeply (more than {MAX_DEPTH} levels); simplify it.")
        if isinstance(node, bool):
            return "TRUE" if node else "FALSE"
        if not isinstance(node, dict) or not isinstance(node.get("op"), str):
            raise _problem(f"{json.dumps(node, ensure_ascii=False)[:80]} is not a condition.")
        op = node["op"].lower()
        if op in ("and", "or"):
            args = self._args(node, op)
            if len(args) < 2:
                raise _problem(f"{op.upper()} joins two or more conditions.")
            return "(" + f" {op.upper()} ".join(self.condition(a, depth + 1) for a in args) + ")"
        if op == "not":
            (inner,) = self._args(node, op, 1)
            return f"(NOT {self.condition(inner, depth + 1)})"
        if op in _COMPARISONS:
            left, right = (self.value(a, depth + 1) for a in self._args(node, op, 2))
            self._comparable(left, right, op)
            return f"({left.sql} {_COMPARISONS[op]} {right.sql})"
        if op == "like":
            left, pattern = (self.value(a, depth + 1) for a in self._args(node, op, 2))
            self._expect(left, ("string",), "LIKE")
            self._expect(pattern, ("string",), "the LIKE pattern")
            return f"({left.sql} LIKE {pattern.sql})"
        if op == "between":
            subject, low, high = (self.value(a, depth + 1) for a in self._args(node, op, 3))
            for v in (subject, low, high):
                self._expect(v, ("number", "string"), "BETWEEN")
            self._comparable(subject, low, op)
            self._comparable(subject, high, op)
            return f"({subject.sql} BETWEEN {low.sql} AND {high.sql})"
        if op == "in":
            subject_node, items = self._args(node, op, 2)
            if not isinstance(items, list) or not items:
                raise _problem(
                    "IN needs a non-empty list of values, e.g. status IN ('planned', 'completed')."
                )
            subject = self.value(subject_node, depth + 1)
            values = [self.value(i, depth + 1) for i in items]
            for v in values:
                self._comparable(subject, v, op)
            return f"({subject.sql} IN ({', '.join(v.sql for v in values)}))"
        if op == "isnull":
            (subject_node,) = self._args(node, op, 1)
            return f"({self.value(subject_node, depth + 1).sql} IS NULL)"
        if op in _SPATIAL:
            left, right = (self.value(a, depth + 1) for a in self._args(node, op, 2))
            self._expect(left, ("geometry",), op.upper())
            self._expect(right, ("geometry",), op.upper())
            return f"{_SPATIAL[op]}({left.sql}, {right.sql})"
        if op in _ARRAY:
            return self._array(node, op, depth)
        if op.startswith("t_"):
            raise _problem(
                f"{op.upper()}: temporal operators are not supported — plan features carry no time "
                "instants or intervals (status_date is free text)."
            )
        raise _problem(
            f"{op!r} is not a condition this service knows. Use comparisons (=, <>, <, >, <=, >=), "
            "LIKE, BETWEEN, IN, IS NULL, AND/OR/NOT, S_INTERSECTS and the other S_ functions, "
            "or A_ functions."
        )

    def _comparable(self, left: _Value, right: _Value, op: str) -> None:
        kinds = {left.kind, right.kind} - {"null"}
        if len(kinds) > 1:
            raise _problem(
                f"{op.upper()} compares {_KIND_WORDS[left.kind]} with {_KIND_WORDS[right.kind]}; "
                "compare like with like (quote text values, e.g. status = 'planned')."
            )
        if kinds & {"geometry", "array"}:
            raise _problem(
                f"{op.upper()} cannot compare {_KIND_WORDS[kinds.pop()]}s; "
                "use S_EQUALS for geometries and A_EQUALS for lists."
            )

    def _array(self, node: dict[str, Any], op: str, depth: int) -> str:
        left, right = (self.value(a, depth + 1) for a in self._args(node, op, 2))
        self._expect(left, ("array",), op.upper())
        self._expect(right, ("array",), op.upper())
        if op == "a_equals":
            return f"({left.sql} = {right.sql})"
        if op == "a_contains":
            return f"({left.sql} @> {right.sql})"
        if op == "a_containedby":
            return f"({left.sql} <@ {right.sql})"
        return (
            f"EXISTS (SELECT 1 FROM jsonb_array_elements({left.sql}) a"
            f" JOIN jsonb_array_elements({right.sql}) b ON a = b)"
        )

    # -- values --------------------------------------------------------------------------------------
    def value(self, node: Any, depth: int) -> _Value:
        """A scalar, list or geometry operand."""
        if depth > MAX_DEPTH:
            raise _problem(f"filter is nested too deeply (more than {MAX_DEPTH} levels); simplify it.")
        if node is None:
            return _Value("NULL", "null")
        if isinstance(node, bool):
            return _Value(f"CAST({self.bind(node)} AS boolean)", "boolean")
        if isinstance(node, int | float):
            if not math.isfinite(node):
                raise _problem("numbers in a filter must be finite.")
            return _Value(f"CAST({self.bind(float(node))} AS double precision)", "number")
        if isinstance(node, str | list) and (unstorable := storage_violations(node, "value")):
            raise _problem(f"a value {unstorable[0].reason}.")
        if isinstance(node, str):
            return _Value(f"CAST({self.bind(node)} AS text)", "string")
        if isinstance(node, list):
            return self._list(node)
        if not isinstance(node, dict):
            raise _problem(f"{node!r} is not a value.")
        if "property" in node:
            return self._property(node["property"])
        if "timestamp" in node or "date" in node:
            return self._instant(node)
        if "interval" in node:
            raise _problem("INTERVAL is only meaningful with temporal operators, which are not supported.")
        if "bbox" in node:
            return self._bbox(node["bbox"])
        if node.get("type") in _GEOJSON_TYPES:
            return self._geometry(node)
        if isinstance(node.get("op"), str):
            return self._function(node, depth)
        raise _problem(f"{json.dumps(node, ensure_ascii=False)[:80]} is not a value.")

    def _property(self, name: Any) -> _Value:
        if name == GEOMETRY_FIELD:
            return _Value(GEOMETRY_SQL, "geometry")
        found = self.fields.get(name) if isinstance(name, str) else None
        if found is None:
            known = ", ".join([GEOMETRY_FIELD, *self.fields])
            raise _problem(
                f"collection {self.layer.id} has no queryable property {name!r}. Queryables: {known} "
                f"(see /collections/{self.layer.id}/queryables)."
            )
        kind = "number" if found.kind == "integer" else found.kind
        return _Value(found.sql, kind)

    def _instant(self, node: dict[str, Any]) -> _Value:
        """DATE('…') and TIMESTAMP('…') compare with text properties as ISO 8601 text."""
        text = node.get("timestamp", node.get("date"))
        try:
            if "timestamp" in node:
                datetime.fromisoformat(str(text).replace("Z", "+00:00"))
            else:
                date.fromisoformat(str(text))
        except ValueError:
            raise _problem(f"{text!r} is not an RFC 3339 date or timestamp.") from None
        return _Value(f"CAST({self.bind(str(text))} AS text)", "string")

    def _list(self, items: list[Any]) -> _Value:
        for item in items:
            if isinstance(item, dict) and "property" in item:
                raise _problem("a list literal holds values only, not properties.")
        return _Value(f"CAST({self.bind(json.dumps(items, ensure_ascii=False))} AS jsonb)", "array")

    def _bbox(self, numbers: Any) -> _Value:
        if not isinstance(numbers, list) or not all(
            isinstance(n, int | float) and not isinstance(n, bool) for n in numbers
        ):
            raise _problem("BBOX takes 4 (or 6) numbers.")
        box = bbox_from_numbers([float(n) for n in numbers], self.crs, parameter="filter")
        parts = []
        for w, s, e, n in box.envelopes():
            names = tuple(self.bind(v)[1:] for v in (w, s, e, n))
            parts.append(self.crs.envelope_sql(names))  # type: ignore[arg-type]
        sql = parts[0] if len(parts) == 1 else f"ST_Collect({parts[0]}, {parts[1]})"
        return _Value(sql, "geometry")

    def _geometry(self, node: dict[str, Any]) -> _Value:
        try:
            shape = shapely.geometry.shape(node)
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
            raise _problem(f"geometry literal {node.get('type')} is malformed: {exc}") from None
        if shape.is_empty:
            raise _problem(f"geometry literal {node.get('type')} is empty.")
        if not all(math.isfinite(c) for c in shape.bounds):
            raise _problem("geometry literal coordinates must be finite numbers.")
        if not shape.is_valid:
            raise _problem(f"geometry literal is not valid: {explain_validity(shape)}.")
        text = json.dumps(shapely.geometry.mapping(shapely.force_2d(shape)))
        return _Value(self.crs.literal_sql(f"ST_GeomFromGeoJSON({self.bind(text)})"), "geometry")

    def _function(self, node: dict[str, Any], depth: int) -> _Value:
        op = node["op"].lower()
        if op == "casei":
            (inner,) = self._args(node, op, 1)
            value = self.value(inner, depth + 1)
            self._expect(value, ("string",), "CASEI")
            return _Value(f"lower({value.sql})", "string")
        if op == "accenti":
            raise _problem("ACCENTI (accent-insensitive comparison) is not supported; use CASEI.")
        if op in _ARITHMETIC:
            left, right = (self.value(a, depth + 1) for a in self._args(node, op, 2))
            self._expect(left, ("number",), f"arithmetic {op!r}")
            self._expect(right, ("number",), f"arithmetic {op!r}")
            a, b = left.sql, right.sql
            sql = {
                "+": f"({a} + {b})",
                "-": f"({a} - {b})",
                "*": f"({a} * {b})",
                "/": f"({a} / NULLIF({b}, 0))",
                "%": f"(mod({a}::numeric, NULLIF({b}, 0)::numeric))::double precision",
                "div": f"(div({a}::numeric, NULLIF({b}, 0)::numeric))::double precision",
                "^": f"(CASE WHEN {a} = 0 AND {b} < 0 THEN NULL ELSE power({a}, {b}) END)",
            }[op]
            return _Value(sql, "number")
        if op in _COMPARISONS or op in ("and", "or", "not", "like", "between", "in", "isnull"):
            raise _problem(f"{op.upper()} gives true/false; it cannot be used as a value.")
        raise _problem(
            f"function {node['op']!r} is not supported; the functions are CASEI and + - * / % ^ DIV."
        )
