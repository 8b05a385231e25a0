"""Stylesheets Folium links that no npm package ships as such, built from installed files when served.

* Glyphicons: Folium links Bootstrap 3's stand-alone Glyphicons sheet, which exists only on a CDN.
  Loading all of Bootstrap 3 beside Bootstrap 5 would restyle the page, so we cut the Glyphicons
  rules out of the installed Bootstrap 3 stylesheet.
* Rotated Awesome Markers icons: `folium.Icon(angle=…)` adds the class `fa-rotate-<angle>`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

NODE_MODULES = Path(__file__).resolve().parent / "assets" / "node_modules"  # installed by `npm ci`

BOOTSTRAP3_CSS = "bootstrap3/dist/css/bootstrap.css"


@dataclass(frozen=True)
class DerivedFile:
    """A stylesheet made by `build` from installed files (`sources`, relative to node_modules)."""

    sources: tuple[str, ...]
    build: Callable[[], str]


def _top_level_rules(css: str) -> Iterator[tuple[str, str]]:
    """(prelude, body) of each top-level rule; nested blocks (@media) stay inside their body."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.DOTALL)
    depth = 0
    start = 0
    prelude = ""
    for index, char in enumerate(css):
        if char == "{":
            if depth == 0:
                prelude = css[start:index].strip()
                start = index + 1
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                yield prelude, css[start:index]
                start = index + 1


def _is_glyphicon_rule(prelude: str, body: str) -> bool:
    if prelude == "@font-face":
        return "Glyphicons Halflings" in body
    selectors = [selector.strip() for selector in prelude.split(",")]
    return all(selector.startswith(".glyphicon") for selector in selectors)


def glyphicons_css() -> str:
    """The Glyphicons font face and icon classes of Bootstrap 3, without the rest of Bootstrap 3."""
    css = (NODE_MODULES / BOOTSTRAP3_CSS).read_text(encoding="utf-8")
    rules = [
        f"{prelude} {{{body}}}\n"
        for prelude, body in _top_level_rules(css)
        if _is_glyphicon_rule(prelude, body)
    ]
    header = "/* Glyphicons rules of Bootstrap 3 (MIT licence), cut from dist/css/bootstrap.css. */\n"
    return header + "".join(rules)


def awesome_rotate_css() -> str:
    """Rotation classes for Awesome Markers icons, one per whole degree."""
    rules = (f".awesome-marker i.fa-rotate-{angle}{{transform:rotate({angle}deg)}}" for angle in range(361))
    return "\n".join(rules) + "\n"


DERIVED_FILES: dict[str, DerivedFile] = {
    "bootstrap3/dist/css/bootstrap-glyphicons.css": DerivedFile((BOOTSTRAP3_CSS,), glyphicons_css),
    "leaflet.awesome-markers/dist/leaflet.awesome.rotate.css": DerivedFile((), awesome_rotate_css),
}


@cache
def derived_text(path: str) -> str:
    """The content of a derived stylesheet, built once per process."""
    return DERIVED_FILES[path].build()
