"""The UI's HTTP server (aiohttp): the page, its JSON, and the live push (server-sent events).

Routes (GET/HEAD only; see :mod:`flowerhub.ui.auth` for who may read them):

- ``/``: the page (``static/index.html``); ``/static/*`` its own modules and styles;
  ``/vendor/*`` the front-end libraries (a fixed list of files from ``web/node_modules``,
  installed by ``make ui``);
- ``/api/status``, ``/api/fleet``, ``/api/sites``, ``/api/site/{id}``, ``/api/activations``:
  each view's snapshot as JSON (:mod:`flowerhub.ui.views`);
- ``/api/stream?view=fleet|sites|site|activations[&site=ID][&activation=ID]``
  (``&from=...&to=...``: the Site view over a time range, ISO-8601 or µs): the view as
  server-sent events: one ``snapshot`` event, then a ``delta`` event with what changed,
  pushed as soon as the feed folds a batch (at most every ``MIN_PUSH_S``), and at least
  every ``HEARTBEAT_S`` (the status line's clock and the "last seen" ages tick);
- ``/api/reports``, ``/api/reports/{id}``, ``/reports/{id}/{file}``: the audit reports
  (:mod:`flowerhub.ui.reports`), their files served read-only.

Why server-sent events, not websockets: the page only listens (the UI is read-only), SSE
is plain HTTP (proxies, auth cookies and basic auth work unchanged) and the browser's
``EventSource`` reconnects by itself. Why aiohttp: already installed (faust's dependency),
asyncio like the Kafka reader, so one process, one event loop, no threads.

Each stream is its own task waiting on :class:`Pulse`: a slow client delays only itself,
and at most ``MAX_STREAMS`` are served at once (503 beyond).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from flowerhub.ui.auth import COOKIE, Access, Decision, decide
from flowerhub.ui.model import ViewModel
from flowerhub.ui.reports import ReportIndex
from flowerhub.ui.views import VIEWS, Cursor, FeedState, Payload, Source, TimeRange, status

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
#: where ``make ui`` installs the libraries; FLOWERHUB_UI_NODE_MODULES elsewhere (the image)
NODE_MODULES = Path(os.environ.get("FLOWERHUB_UI_NODE_MODULES") or HERE / "web" / "node_modules")
#: the front-end library files the page loads: /vendor/<name> -> web/node_modules/<path>
VENDOR: Mapping[str, str] = {
    "uPlot.esm.js": "uplot/dist/uPlot.esm.js",
    "uPlot.min.css": "uplot/dist/uPlot.min.css",
    "tabulator_esm.min.js": "tabulator-tables/dist/js/tabulator_esm.min.js",
    "tabulator.min.css": "tabulator-tables/dist/css/tabulator_simple.min.css",
}
MIN_PUSH_S = 0.1
HEARTBEAT_S = 1.0
MAX_STREAMS = 64
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)
JSON_DUMPS: Callable[[Any], str] = lambda obj: json.dumps(  # noqa: E731  # aiohttp's dumps hook
    obj, allow_nan=False, separators=(",", ":")
)


class FrontendMissingError(RuntimeError):
    """The front-end libraries are not installed (``make ui``)."""


def check_frontend(node_modules: Path = NODE_MODULES) -> None:
    missing = [name for name, path in VENDOR.items() if not (node_modules / path).is_file()]
    if missing:
        raise FrontendMissingError(
            f"the UI's front-end libraries are not installed ({', '.join(missing)} missing "
            f"under {node_modules}): run `make ui` (npm ci in flowerhub/ui/web)"
        )


class Pulse:
    """A version counter with a wake-up: the feed calls ``notify`` after each batch."""

    def __init__(self) -> None:
        self.version = 0
        self._event = asyncio.Event()

    def notify(self) -> None:
        self.version += 1
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, seen: int, timeout_s: float) -> int:
        """The version once it differs from ``seen``, or after ``timeout_s`` anyway."""
        if self.version == seen:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), timeout_s)
        return self.version


@dataclass
class UiState:
    """Everything a request reads."""

    model: ViewModel
    source: Source
    feed: FeedState
    reports: ReportIndex
    access: Access = field(default_factory=Access)
    loopback_bind: bool = True
    tls: bool = False
    pulse: Pulse = field(default_factory=Pulse)
    streams: set[asyncio.Task[Any]] = field(default_factory=set)

    def status(self) -> Payload:
        return status(self.model, self.source, self.feed)


STATE = web.AppKey("state", UiState)


def _sse(kind: str, payload: Payload) -> bytes:
    return f"event: {kind}\ndata: {JSON_DUMPS(payload)}\n\n".encode()


@web.middleware
async def guard(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Authentication, read-only, security headers (see :mod:`flowerhub.ui.auth`)."""
    state = request.app[STATE]
    decision = decide(
        state.access,
        method=request.method,
        host_header=request.headers.get("Host", ""),
        headers=request.headers,
        cookies=request.cookies,
        query=request.query,
        loopback_bind=state.loopback_bind,
    )
    response: web.StreamResponse
    if decision is Decision.BAD_METHOD:
        response = web.Response(status=405, text="read-only: GET and HEAD only\n")
        response.headers["Allow"] = "GET, HEAD"
    elif decision is Decision.BAD_HOST:
        response = web.Response(
            status=403, text="the Host header does not name this loopback server\n"
        )
    elif decision is Decision.UNAUTHORIZED:
        scheme = "Basic" if state.access.basic_user is not None else "Bearer"
        response = web.Response(
            status=401,
            text="FlowerHub UI: authentication required (open /?token=<token>, or send "
            "'Authorization: Bearer <token>' or basic-auth credentials)\n",
        )
        response.headers["WWW-Authenticate"] = f'{scheme} realm="FlowerHub UI"'
    elif decision is Decision.SET_COOKIE:
        query = {k: v for k, v in request.query.items() if k != "token"}
        response = web.HTTPSeeOther(request.rel_url.with_query(query).human_repr())
        response.set_cookie(
            COOKIE,
            request.query["token"],
            httponly=True,
            samesite="Strict",
            secure=state.tls,
            path="/",
        )
    else:
        response = await handler(request)
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def vendor(request: web.Request) -> web.StreamResponse:
    path = VENDOR.get(request.match_info["name"])
    if path is None:
        raise web.HTTPNotFound(text="no such front-end file\n")
    return web.FileResponse(NODE_MODULES / path)


async def api_status(request: web.Request) -> web.StreamResponse:
    return web.json_response(request.app[STATE].status(), dumps=JSON_DUMPS)


def _checked(name: str, query: Mapping[str, str]) -> None:
    """A bad parameter of a view (the Site view's time range) is a 400 naming it."""
    if name == "site":
        try:
            TimeRange.of(query)
        except ValueError as exc:
            raise web.HTTPBadRequest(text=f"{exc}\n") from None


def _view(request: web.Request, name: str, query: Mapping[str, str]) -> web.StreamResponse:
    state = request.app[STATE]
    _checked(name, query)
    payload, _ = VIEWS[name](state.model, Cursor(), query)
    if name == "site" and payload["site"] is None:
        raise web.HTTPNotFound(text=f"no site {query.get('site')!r} seen\n")
    payload["status"] = state.status()
    return web.json_response(payload, dumps=JSON_DUMPS)


async def api_view(request: web.Request) -> web.StreamResponse:
    name = request.match_info["view"]
    if name not in VIEWS or name == "site":
        raise web.HTTPNotFound(text=f"no view {name!r}\n")
    return _view(request, name, request.query)


async def api_site(request: web.Request) -> web.StreamResponse:
    return _view(request, "site", {**request.query, "site": request.match_info["site"]})


async def api_reports(request: web.Request) -> web.StreamResponse:
    reports = request.app[STATE].reports.scan()
    return web.json_response({"reports": [r.summary() for r in reports]}, dumps=JSON_DUMPS)


async def api_report(request: web.Request) -> web.StreamResponse:
    report = request.app[STATE].reports.get(request.match_info["report"])
    if report is None:
        raise web.HTTPNotFound(text="no such report\n")
    return web.json_response(report.detail(), dumps=JSON_DUMPS)


async def report_file(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    path = state.reports.file(request.match_info["report"], request.match_info["path"])
    if path is None:
        raise web.HTTPNotFound(text="no such report file\n")
    return web.FileResponse(path)


async def stream(request: web.Request) -> web.StreamResponse:
    """One view as server-sent events (see the module doc)."""
    state = request.app[STATE]
    name = request.query.get("view", "")
    if name not in VIEWS:
        raise web.HTTPBadRequest(text=f"view must be one of {', '.join(VIEWS)}\n")
    _checked(name, request.query)
    if len(state.streams) >= MAX_STREAMS:
        raise web.HTTPServiceUnavailable(text=f"{MAX_STREAMS} streams open already\n")
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    task = asyncio.current_task()
    assert task is not None  # noqa: S101  # a handler always runs in a task
    state.streams.add(task)
    view, query = VIEWS[name], dict(request.query)
    cursor, kind, seen = Cursor(), "snapshot", state.pulse.version
    try:
        while True:
            payload, cursor = view(state.model, cursor, query)
            payload["status"] = state.status()
            await response.write(_sse(kind, payload))
            kind = "delta"
            pushed = time.monotonic()
            seen = await state.pulse.wait(seen, HEARTBEAT_S)
            rest = MIN_PUSH_S - (time.monotonic() - pushed)
            if rest > 0:
                await asyncio.sleep(rest)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        state.streams.discard(task)
    return response


async def _close_streams(app: web.Application) -> None:
    for task in list(app[STATE].streams):
        task.cancel()


def build_app(state: UiState) -> web.Application:
    app = web.Application(middlewares=[guard])
    app[STATE] = state
    app.on_shutdown.append(_close_streams)
    app.router.add_get("/", index)
    app.router.add_static("/static", STATIC_DIR, follow_symlinks=False)
    app.router.add_get("/vendor/{name}", vendor)
    app.router.add_get("/api/status", api_status)
    app.router.add_get("/api/stream", stream)
    app.router.add_get("/api/site/{site}", api_site)
    app.router.add_get("/api/reports", api_reports)
    app.router.add_get("/api/reports/{report}", api_report)
    app.router.add_get("/api/{view}", api_view)
    app.router.add_get("/reports/{report}/{path:.+}", report_file)
    return app
