"""Property-based fuzzing of PATCH (JSON Merge Patch, with an editor key): whatever body and headers a client
sends, the answer is never a 5xx; a refusal is a problem naming what is wrong and leaves every feature, its
version and history exactly as they were; an accepted patch adds exactly one version to history."""

from __future__ import annotations

from collections import Counter
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from geo_service.editing.keys import add_key
from tests.conftest import Writable, check_problem, database_state
from tests.hostile import FUZZ, deep_json, garbage_json, garbage_text, json_text, mutated

# The app's connection pool draws on `random` (reconnection jitter) in its own thread while the next example
# is generated; Hypothesis mistakes that for a strategy using `random`. Generation itself is seeded.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module:hypothesis.errors.HypothesisDeprecationWarning"
)
LAYER = "rail_stations"
MERGE = "application/merge-patch+json"
NAMES = [
    "code",
    "name_zh",
    "name_en",
    "status",
    "county",
    "accuracy",
    "accuracy_m",
    "aliases",
    "note",
    "nope",
]
# what a refusal's detail may name: the body, a member or property of it, or a header
BODY_WORDS = ["body", "json", "patch", "feature", "content-type", "if-match", "content-crs", "x-edit-comment"]


@pytest.fixture(scope="module")
def token(writable: Writable) -> str:
    """An editor's key on the module's private database."""
    return add_key(writable.engine, "模糊测试 fuzzer", "editor")


@pytest.fixture(scope="module")
def target(writable: Writable) -> str:
    """The path of the feature every patch is sent to."""
    with writable.engine.connect() as conn:
        fid = conn.execute(
            text("SELECT min(id) FROM features WHERE layer_id = :l"), {"l": LAYER}
        ).scalar_one()
    return f"/collections/{LAYER}/items/{fid}"


HOSTILE_TEXT = st.one_of(
    st.sampled_from(["", "\x00", "a\x00b", "\ud800", "x" * 20_000, "💥", "\u202e", "<script>"]),
    st.text(max_size=12),
)
HOSTILE_NUMBERS = st.one_of(st.sampled_from([0, -1, 1e308, 10**400, float("nan"), float("inf")]), st.floats())
HOSTILE_SCALARS = st.one_of(
    HOSTILE_TEXT, HOSTILE_NUMBERS, st.sampled_from([True, None, [], {}, ["330402"], ["\x00"], {"a": "\x00"}])
)
# each property with the values that are nearly right for it
NEAR_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "note": HOSTILE_TEXT,
    "name_en": HOSTILE_TEXT,
    "status": st.one_of(st.sampled_from(["planned", "completed", "Planned"]), HOSTILE_TEXT),
    "accuracy_m": HOSTILE_NUMBERS,
    "aliases": st.lists(HOSTILE_TEXT, max_size=3),
    "county": st.lists(st.sampled_from(["330402", "330411", "3304", "\x00"]), max_size=3),
}


def _coordinate() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from([120.8, 30.7, 121.05, 30.95, -180, 180.000001, 91]),
        st.floats(),
        st.sampled_from(["120.8", None, [], 10**400, True]),
    )


@st.composite
def _geometry(draw: st.DrawFn) -> Any:
    """A point near Jiaxing with hostile coordinates, or another shape, or not a geometry at all."""
    x, y = draw(_coordinate()), draw(_coordinate())
    return draw(
        st.sampled_from(
            [
                {"type": "Point", "coordinates": [x, y]},
                {"type": "Point", "coordinates": [y, x]},
                {"type": "Point", "coordinates": [x, y, 5]},
                {"type": "Point", "coordinates": [x]},
                {"type": "Point", "coordinates": [[x, y]]},
                {"type": "Point", "coordinates": x},
                {"type": "MultiPoint", "coordinates": [[x, y], [x, y]]},
                {"type": "LineString", "coordinates": [[x, y], [120.9, 30.8]]},
                {"type": "GeometryCollection", "geometries": [{"type": "Point", "coordinates": [x, y]}]},
                {"type": "Point"},
                {"coordinates": [x, y]},
                None,
                x,
            ]
        )
    )


@st.composite
def _patch(draw: st.DrawFn) -> Any:
    """A merge patch that is valid but for a few hostile values, members or types."""
    patch: dict[str, Any] = {}
    if draw(st.integers(0, 3)):
        name = draw(st.sampled_from(list(NEAR_VALUES)))
        patch["properties"] = {name: draw(NEAR_VALUES[name])}
        if draw(st.integers(0, 3)) == 0:
            patch["properties"][draw(st.sampled_from(NAMES))] = draw(HOSTILE_SCALARS)
    if draw(st.integers(0, 3)) == 0:
        patch["geometry"] = draw(_geometry())
    extra = draw(st.sampled_from([None] * 6 + ["type", "id", "links", "\x00"]))
    if extra is not None:
        patch[extra] = draw(st.one_of(st.sampled_from(["Feature", 1, "1", None]), HOSTILE_SCALARS))
    if draw(st.integers(0, 19)) == 0:
        patch = draw(st.sampled_from([patch.get("properties", []), [patch], "x", 1]))
    return patch


PATCHES = json_text(_patch())
BODIES = st.one_of(  # mostly near-valid patches, the rest broken JSON and garbage
    PATCHES,
    PATCHES,
    PATCHES,
    PATCHES,
    PATCHES.flatmap(mutated),
    json_text(garbage_json()),
    garbage_text(),
    st.sampled_from([deep_json(10_000), '{"properties":' * 3000 + "{}" + "}" * 3000, "", "null", "\ufeff{}"]),
)
HEADERS = st.one_of(
    st.just({}),
    st.just({}),
    st.just({}),
    st.fixed_dictionaries(
        {},
        optional={
            "Content-Type": st.sampled_from(
                [MERGE, "application/json", "text/plain", MERGE + "; charset=latin-1", ""]
            ),
            "If-Match": st.one_of(st.sampled_from(['"f1v1-x"', "*", "", 'W/"x"']), garbage_text()),
            "Content-Crs": st.sampled_from(
                [
                    "http://www.opengis.net/def/crs/EPSG/0/4326",
                    "<http://www.opengis.net/def/crs/EPSG/0/3857>",
                    "x",
                ]
            ),
            "X-Edit-Comment": st.one_of(
                garbage_text(), st.sampled_from(["%00", "%ED%A0%80", "%", "a" * 5000])
            ),
        },
    ),
)


def _ascii_header(value: str) -> str:
    """A header value as a client can send it: non-ASCII and control characters percent-encoded."""
    return value if value.isascii() and value.isprintable() else quote(value, safe="")


def test_patch(writable: Writable, token: str, target: str) -> None:
    """Hostile merge patches and headers: never a 5xx; refused ones change nothing and say why; and the
    fuzzing reaches past the door (some near-valid patches are accepted, most are refused)."""
    outcomes: Counter[int] = Counter()

    @given(body=BODIES, headers=HEADERS)
    @settings(FUZZ, max_examples=150)
    def patch(body: str, headers: dict[str, str]) -> None:
        sent = {"Content-Type": MERGE} | {k: _ascii_header(v) for k, v in headers.items()}
        sent["Authorization"] = f"Bearer {token}"
        before = database_state(writable.engine)
        response = writable.client.patch(target, content=body.encode("utf-8", "surrogatepass"), headers=sent)
        outcomes[response.status_code] += 1
        assert response.status_code < 500, (
            f"{response.status_code} for {body[:300]!r} {headers}: {response.text}"
        )
        if response.status_code >= 400:
            detail = check_problem(response, response.status_code)["detail"].lower()
            words = [*BODY_WORDS, *(name.lower() for name in NAMES), "geometry", "properties", "coordinates"]
            assert any(word in detail for word in words), f"the detail names nothing sent: {detail!r}"
            assert database_state(writable.engine) == before, (
                f"a refused patch changed the data: {body[:300]!r}"
            )
            return
        assert response.status_code == 204, response.text
        assert database_state(writable.engine)[2] == before[2] + 1, "an accepted patch adds one version"

    patch()
    assert outcomes[204] > 0 and sum(n for status, n in outcomes.items() if status >= 400) > 0, outcomes
