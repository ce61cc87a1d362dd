"""The web dashboard: a static page (index.html, app.js, app.css; plain JavaScript, no build step) served at
`/` and `/ui/*` without a key. It calls the same /api routes as the clients, with the key the user types
(kept in sessionStorage), so every action is authorised and tenant-bound as any API call is. Its responses
carry a Content-Security-Policy that lets the page reach its own origin only."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse, Response

HERE = Path(__file__).parent
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
ASSETS = {p.name: p for p in HERE.iterdir() if p.suffix in TYPES and p.name != "index.html"}
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "X-Frame-Options": "DENY", "Cache-Control": "no-cache"}


def _file(path: Path) -> FileResponse:
    return FileResponse(path, media_type=TYPES[path.suffix], headers=HEADERS)


def mount_ui(app: FastAPI) -> None:
    """Serve the dashboard: `/` (the page) and `/ui/<asset>`; not in the OpenAPI spec."""

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return _file(HERE / "index.html")

    @app.get("/ui/{name}", include_in_schema=False)
    def asset(name: str) -> Any:
        path = ASSETS.get(name)
        if path is None:
            return Response("not found", status_code=404, media_type="text/plain", headers=HEADERS)
        return _file(path)
