"""Serving the map pages' files: vendor libraries at `/static/vendor/`, our own at `/static/app/`."""

from __future__ import annotations

from pathlib import Path, PurePath

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from geo_service.mapview.assets import NODE_MODULES, package_of, vendor_packages
from geo_service.mapview.derived_css import DERIVED_FILES, derived_text

APP_FILES = Path(__file__).resolve().parent / "static_files"
VENDOR_MOUNT = "/static/vendor"
APP_MOUNT = "/static/app"


class VendorFiles(StaticFiles):
    """The installed npm packages the pages link (and only those), plus the derived stylesheets."""

    def __init__(self) -> None:
        # The directory may not exist before the setup step; `missing_assets()` reports that at start-up.
        super().__init__(directory=NODE_MODULES, check_dir=False)
        self.allowed_packages = vendor_packages()

    async def get_response(self, path: str, scope: Scope) -> Response:
        """A derived stylesheet, a file of an allowed package, or 404."""
        posix = PurePath(path).as_posix()
        if posix in DERIVED_FILES:
            if scope["method"] not in ("GET", "HEAD"):
                raise HTTPException(status_code=405, headers={"Allow": "GET, HEAD"})
            try:
                text = derived_text(posix)
            except OSError as exc:
                raise HTTPException(status_code=404) from exc
            return Response(text, media_type="text/css; charset=utf-8")
        if package_of(posix) not in self.allowed_packages:
            raise HTTPException(status_code=404)
        return await super().get_response(path, scope)


def mount_static(app: Starlette) -> None:
    """Mount the vendor libraries and our own scripts and styles on the app."""
    app.mount(VENDOR_MOUNT, VendorFiles(), name="vendor")
    app.mount(APP_MOUNT, StaticFiles(directory=APP_FILES), name="mapview-static")
