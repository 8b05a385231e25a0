"""HTML representations of the API's resources (bilingual, no external assets)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from geo_service.caching import ASSET_VERSION
from geo_service.catalog import ACCURACY_LABELS, STATUS_LABELS

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def render(
    request: Request, template: str, headers: dict[str, str] | None = None, **context: Any
) -> HTMLResponse:
    """Render one of the API's templates."""
    context.setdefault("status_labels", STATUS_LABELS)
    context.setdefault("accuracy_labels", ACCURACY_LABELS)
    context.setdefault("asset_version", ASSET_VERSION)
    return TEMPLATES.TemplateResponse(request, template, context, headers=headers)
