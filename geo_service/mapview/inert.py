"""Rendering Folium elements without recompiling their output as templates.

Branca wraps a macro's output in `Element(text)`, which compiles that text as a Jinja template again,
so a catalogue title containing `{{` would break or alter the page. Our elements insert finished text.
"""

from __future__ import annotations

from typing import Any

from branca.element import Element, Figure, MacroElement
from markupsafe import escape


class RawHtml(Element):
    """Finished HTML or script text, inserted as it is."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self._name = "RawHtml"
        self.text = text

    def render(self, **kwargs: Any) -> str:
        """The text itself."""
        return self.text


def render_inert(element: MacroElement, **kwargs: Any) -> None:
    """Place the element's `header`, `html` and `script` macros in the page, then render its children."""
    figure = element.get_root()
    if not isinstance(figure, Figure):
        raise TypeError(f"{element.get_name()} is not inside a Figure, so it cannot be rendered")
    macros = element._template.module.__dict__
    for part in ("header", "html", "script"):
        macro = macros.get(part)
        if macro is not None:
            getattr(figure, part).add_child(RawHtml(str(macro(element, kwargs))), name=element.get_name())
    for child in list(element._children.values()):
        child.render(**kwargs)


def add_links(element: MacroElement, js: list[tuple[str, str]], css: list[tuple[str, str]]) -> None:
    """Link scripts and stylesheets in the page head, once per name."""
    figure = element.get_root()
    if not isinstance(figure, Figure):
        raise TypeError(f"{element.get_name()} is not inside a Figure, so it cannot be rendered")
    for name, url in js:
        figure.header.add_child(RawHtml(f'<script src="{escape(url)}"></script>'), name=name)
    for name, url in css:
        figure.header.add_child(RawHtml(f'<link rel="stylesheet" href="{escape(url)}"/>'), name=name)
