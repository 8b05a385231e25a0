"""Hypothesis strategies of hostile input, shared by the fuzz tests: mutations of valid values (where bugs
live) and garbage (unicode, huge numbers, NaN and Infinity, very long strings, deep nesting, NUL bytes).

`FUZZ` is the settings every fuzz test starts from: a fixed seed (derandomized), no example database and no
deadline, so a run is the same on every machine and in CI.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

HUGE_NUMBERS = st.sampled_from(
    ["1e309", "-1e309", "1e308", "2e-324", "9" * 400, "-" + "9" * 30, "NaN", "Infinity", "-Infinity", "0x10"]
)
NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=-1000, max_value=1000),
)


def number_text() -> st.SearchStrategy[str]:
    """A number as a client might write it: ordinary, huge, tiny, NaN/Infinity, or not quite a number."""
    return st.one_of(
        NUMBERS.map(str), HUGE_NUMBERS, st.sampled_from(["", " ", "1,5", "1_000", "٣", "1e", "--1"])
    )


def garbage_text() -> st.SearchStrategy[str]:
    """Text no valid request holds: any unicode (surrogates aside), NUL and control bytes, very long runs."""
    return st.one_of(
        st.text(st.characters(exclude_categories=["Cs"]), max_size=40),
        st.text(alphabet="\x00\x01\x7f'\"()[]{},;:\\%", max_size=20),
        st.sampled_from(["x" * 20_000, "(" * 5000, "'" * 3001, "\u202e\ufeff\u200b", "💥" * 500]),
    )


def mutated(valid: str) -> st.SearchStrategy[str]:
    """`valid` with one change: a character deleted, replaced or inserted, cut short, or doubled."""

    @st.composite
    def one_edit(draw: st.DrawFn) -> str:
        if not valid:
            return str(draw(garbage_text()))
        at = draw(st.integers(0, len(valid) - 1))
        new = draw(st.sampled_from([*list("()'\",.-+ 0123456789eE/:TZ_%\\\x00"), "é", "中", "AND", "NULL"]))
        kind = draw(st.sampled_from(["delete", "replace", "insert", "truncate", "double"]))
        if kind == "delete":
            return valid[:at] + valid[at + 1 :]
        if kind == "replace":
            return valid[:at] + new + valid[at + 1 :]
        if kind == "insert":
            return valid[:at] + new + valid[at:]
        if kind == "truncate":
            return valid[:at]
        return valid + valid

    return one_edit()


def near(valid: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Valid values, and each mutated by a few edits."""
    return st.one_of(valid, valid.flatmap(mutated), valid.flatmap(mutated).flatmap(mutated))


def garbage_json() -> st.SearchStrategy[Any]:
    """Any JSON value, leaves included that break naive code: huge and non-finite numbers, NUL, long text."""
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        NUMBERS,
        st.text(max_size=20),
        st.sampled_from(["\x00", "a\x00b", "\ud800", "x" * 10_000, "\ufffd", 10**400, -(10**40)]),
    )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
        ),
        max_leaves=12,
    )


def deep_json(depth: int) -> str:
    """JSON text nested `depth` arrays deep, then an object: more than any parser should recurse into."""
    return "[" * depth + json.dumps({"op": "=", "args": [{"property": "status"}, "planned"]}) + "]" * depth


def json_text(documents: st.SearchStrategy[Any]) -> st.SearchStrategy[str]:
    """JSON text of the documents, NaN and Infinity written as Python's `json` writes them (not strict JSON),
    and characters either as they are or as `\\u` escapes (how NUL and lone surrogates get past a check of
    the raw text)."""

    def written(document: Any, ascii_only: bool) -> str:
        text = json.dumps(document, ensure_ascii=ascii_only)
        try:
            text.encode()
        except UnicodeEncodeError:  # a lone surrogate cannot be sent as itself, only escaped
            return json.dumps(document)
        return text

    return st.builds(written, documents, st.booleans())
