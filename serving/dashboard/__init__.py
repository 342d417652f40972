"""The web dashboard: static HTML and JavaScript pages served at ``/``, no build step.

The pages (``static/``: ``index.html``, one module per page under ``js/pages/``, shared helpers
in ``js/``, Chart.js vendored under ``vendor/``) read the JSON routes like any client, with
the read key the person enters when the deployment requires one; the files themselves hold no
data, so they are served without a key. See docs/dashboard.md.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["STATIC_DIR", "mount_dashboard"]

STATIC_DIR = Path(__file__).parent / "static"
#: Where the pages' files are served.
PREFIX = "/dashboard"


def mount_dashboard(app: FastAPI) -> None:
    """Serve the dashboard: ``/`` is its page, ``/dashboard/...`` its scripts and styles."""
    index = STATIC_DIR / "index.html"

    @app.get("/", include_in_schema=False)
    async def dashboard_page() -> FileResponse:
        # no-cache: a browser revalidates, so that an upgraded server's pages are seen at once.
        return FileResponse(index, headers={"Cache-Control": "no-cache"})

    app.mount(PREFIX, StaticFiles(directory=STATIC_DIR), name="dashboard")
