"""HTML representations of the API's resources (bilingual, no external assets)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

STATUS_LABELS = {
    "planned": "规划 planned",
    "under_construction": "在建 under construction",
    "completed": "已建成 completed",
    "existing": "现状 existing",
}
ACCURACY_LABELS = {
    "surveyed": "实测 surveyed",
    "approximate": "近似 approximate",
    "schematic": "示意 schematic",
    "unlocated": "未定位 unlocated",
}


def render(
    request: Request, template: str, headers: dict[str, str] | None = None, **context: Any
) -> HTMLResponse:
    """Render one of the API's templates."""
    context.setdefault("status_labels", STATUS_LABELS)
    context.setdefault("accuracy_labels", ACCURACY_LABELS)
    return TEMPLATES.TemplateResponse(request, template, context, headers=headers)
