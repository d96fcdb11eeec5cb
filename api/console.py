"""The web console for agents, sales staff and marketing, served under `/console`.

Plain HTML, JavaScript modules and CSS from `api/static/console/`: nothing to build, nothing
loaded from elsewhere. The pages call the public API with the key the user enters; the key is
kept in the tab's sessionStorage and only ever sent as an `Authorization: Bearer` header (the
alert stream is read with `fetch()` for that reason, not `EventSource`, which cannot send
headers), so it never appears in a URL or an access log.

The routes are matched after every API route and hold no state, so the decision path does not
see them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from api.context import AppState
from api.errors import ApiError
from api.responses import ORJSON

ROOT = Path(__file__).with_name("static") / "console"
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Only files that exist when the app starts can be served: no path from a request reaches disk.
FILES = {p.relative_to(ROOT).as_posix(): p for p in ROOT.rglob("*") if p.suffix in TYPES}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


def _file(name: str) -> FileResponse:
    path = FILES.get(name)
    if path is None:
        raise ApiError(404, "not_found", f"console file {name!r} does not exist")
    return FileResponse(path, media_type=TYPES[path.suffix], headers=HEADERS)


@router.get("/console")
async def index() -> FileResponse:
    return _file("index.html")


@router.get("/console/whoami")
async def whoami(request: Request,
                 authorization: Annotated[str | None, Header()] = None) -> ORJSON:
    """The key's id and roles, so the console shows only the views the key may use."""
    st: AppState = request.app.state.nb
    key_id, roles = st.keys.roles(authorization)
    return ORJSON({"key_id": key_id, "roles": sorted(roles)},
                  headers={"Cache-Control": "no-store"})


@router.get("/console/{name:path}")
async def asset(name: str) -> Response:
    if name in ("", "index.html"):
        return RedirectResponse("/console", status_code=308)
    return _file(name)
