"""The aiohttp application: routes translate HTTP to core calls and errors to one JSON shape; the
lake's pages (datalake.browse) are served beside them."""

from __future__ import annotations

import asyncio
import hmac
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable
from urllib.parse import urlencode

from aiohttp import web
from watchfiles import awatch

from .. import __version__
from ..browse.pages import TOKEN_COOKIE, add_pages, error_page
from ..catalog.db import build_db
from ..curation.index import index_fingerprints
from ..errors import AuthError, ConflictError, DatalakeError, ValidationError
from ..jobs import JobStore
from ..lake import Lake
from ..lifecycle import list_retractions
from ..processing.processor import DatalakeProcessor, upload_counts
from .lifecycle_jobs import garbage_work, retraction_work
from .runner import JobRunner

log = logging.getLogger("datalake.server")
MAX_BODY = 1024 * 1024
OPEN_PATHS = ("/health", "/login")  # answered without the token
STEP_MS = 300  # uploads arriving closer together than this are one burst
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class ServerOptions:
    base_path: str
    num_proc: int
    token: str | None = None
    watch: bool = False
    debounce_ms: int = 1000
    user_id: str = "datalake-server"  # who retracts when a request names nobody


def error_response(request: web.Request, status: int, message: str, kind: str) -> web.Response:
    """The error as JSON, or as a page for a browser (an unknown address, say)."""
    if _from_a_browser(request):
        return error_page(status, message)
    return web.json_response({"ok": False, "error": message, "status": status, "type": kind}, status=status)


def _from_a_browser(request: web.Request) -> bool:
    """Whether a person's browser asks: a read that accepts HTML (API clients ask for JSON)."""
    return request.method in ("GET", "HEAD") and "text/html" in request.headers.get("Accept", "")


@web.middleware
async def error_answers(request: web.Request, handler: Handler) -> web.StreamResponse:
    if (request.content_length or 0) > MAX_BODY:
        return error_response(request, 413, f"request body over {MAX_BODY} bytes", "DatalakeError")
    try:
        return await handler(request)
    except DatalakeError as exc:
        return error_response(request, exc.status, str(exc), type(exc).__name__)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(request, exc.status, exc.reason, "DatalakeError")
    except Exception as exc:  # a bug: say so without leaking internals
        log.exception("request failed")
        return error_response(request, 500, f"internal error: {type(exc).__name__}", "DatalakeError")


def token_check(token: str | None) -> Any:
    """Every request but /health and the sign-in page needs the token: as `Authorization: Bearer`,
    or for reading pages as the cookie the sign-in page sets. A browser without it is sent there."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if token and request.path not in OPEN_PATHS and not _carries(request, token):
            if _from_a_browser(request):
                raise web.HTTPSeeOther("/login?" + urlencode({"next": request.path_qs}))
            raise AuthError("missing or wrong token: send `Authorization: Bearer <token>` "
                            "(the client and CLI read it from DATALAKE_TOKEN or --token)")
        return await handler(request)

    return check


def _carries(request: web.Request, token: str) -> bool:
    """Whether the request holds the token: any request in its header, a read in the cookie."""
    if hmac.compare_digest(request.headers.get("Authorization", "").encode(), f"Bearer {token}".encode()):
        return True
    return request.method in ("GET", "HEAD") and \
        hmac.compare_digest(request.cookies.get(TOKEN_COOKIE, "").encode(), token.encode())


def create_pages_app(base_path: str, token: str | None) -> web.Application:
    """The lake's pages alone (`datalake browse`): reading only, no jobs."""
    lake = Lake(base_path).require()
    app = web.Application(middlewares=[error_answers, token_check(token)], client_max_size=MAX_BODY)
    app.add_routes([web.get("/health", health)])
    add_pages(app, lake.root, token)
    return app


async def health(_: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def create_app(options: ServerOptions) -> web.Application:
    lake = Lake(options.base_path).require()
    store = JobStore(lake)

    def process(stop: Any) -> Any:
        return DatalakeProcessor(lake.root, options.num_proc).process_all_pending(stop)

    def index(stop: Any) -> Any:
        return index_fingerprints(lake, options.num_proc, stop)

    runner = JobRunner(store, {"process": process, "build": lambda _stop: build_db(lake), "index": index},
                       then={"process": "index"} if options.watch else None)
    app = web.Application(middlewares=[error_answers, token_check(options.token)], client_max_size=MAX_BODY)
    routes = web.RouteTableDef()

    @routes.get("/info")
    async def info(_: web.Request) -> web.Response:
        return web.json_response({
            "version": __version__, "num_proc": options.num_proc, "watch": options.watch,
            "auth": bool(options.token),
            "paths": {"base_path": str(lake.root), "catalog": str(lake.catalog), "assets": str(lake.assets),
                      "staging": str(lake.staging), "db": str(lake.db_path)},
        })

    @routes.get("/status")
    async def status(_: web.Request) -> web.Response:
        busy = {"process": "processing", "build": "building", "index": "indexing fingerprints",
                "retract": "retracting", "gc": "collecting garbage"}
        kinds = sorted({job["kind"] for job in runner.running.values()})
        state = "stopping" if runner.stop.is_set() else " and ".join(busy[k] for k in kinds) or "idle"
        return web.json_response({"state": state, "uploads": upload_counts(lake), "watch": options.watch,
                                  "running_jobs": [j for j in store.list() if j["status"] == "running"]})

    def start(kind: str, work: Any = None) -> web.Response:
        if runner.stop.is_set():
            raise ConflictError("the server is shutting down; try again once it is back")
        job, started = runner.start(kind, work)
        return web.json_response({"job_id": job["job_id"], "status": "started" if started else "already_running"})

    @routes.post("/process")
    async def start_processing(_: web.Request) -> web.Response:
        return start("process")

    @routes.post("/build")
    async def start_build(_: web.Request) -> web.Response:
        return start("build")

    @routes.post("/index")
    async def start_indexing(_: web.Request) -> web.Response:
        return start("index")

    @routes.post("/retract")
    async def start_retraction(request: web.Request) -> web.Response:
        return start("retract", retraction_work(lake, await _json_body(request), options.user_id))

    @routes.post("/gc")
    async def start_garbage_collection(request: web.Request) -> web.Response:
        return start("gc", garbage_work(lake, await _json_body(request)))

    @routes.get("/retractions")
    async def retractions(_: web.Request) -> web.Response:
        return web.json_response({"retractions": list_retractions(lake)})

    @routes.get("/jobs")
    async def list_jobs(_: web.Request) -> web.Response:
        return web.json_response({"jobs": store.list()})

    @routes.get("/jobs/{job_id}")
    async def get_job(request: web.Request) -> web.Response:
        return web.json_response(store.get(request.match_info["job_id"]))

    @routes.delete("/jobs/{job_id}")
    async def delete_job(request: web.Request) -> web.Response:
        job = store.get(request.match_info["job_id"])
        if job["status"] == "running":
            raise DatalakeError(f"job {job['job_id']} is still running; delete it once it has ended")
        store.delete(job["job_id"])
        return web.json_response({"ok": True, "deleted": job["job_id"]})

    app.add_routes([*routes, web.get("/health", health)])
    add_pages(app, lake.root, options.token)
    app.on_startup.append(lambda _: _recover(store, runner, lake))
    if options.watch:
        app.cleanup_ctx.append(_watcher(lake, runner, options.debounce_ms))
    app.on_shutdown.append(lambda _: runner.shutdown())
    return app


async def _json_body(request: web.Request) -> Any:
    """The request's JSON body (None when it has none); ValidationError when it is not JSON."""
    if not request.can_read_body:
        return None
    try:
        return await request.json()
    except ValueError:
        raise ValidationError("the request body is not valid JSON") from None


async def _recover(store: JobStore, runner: JobRunner, lake: Lake) -> None:
    """Mark jobs a killed server left running as failed, and process again what they left."""
    recovered = store.recover()
    if recovered:
        log.warning("jobs interrupted by a stop: %s", ", ".join(recovered))
    store.prune()
    counts = upload_counts(lake)
    if counts["processing"] or (recovered and counts["pending"]):
        runner.request("process")


def _watcher(lake: Lake, runner: JobRunner, debounce_ms: int) -> Callable[[web.Application], Any]:
    async def watch(_: web.Application) -> Any:
        stop = asyncio.Event()

        async def loop() -> None:
            if upload_counts(lake)["pending"]:
                runner.request("process")
            async for _changes in awatch(lake.stage("pending"), stop_event=stop, debounce=debounce_ms,
                                         step=STEP_MS, recursive=False):
                runner.request("process")

        task = asyncio.create_task(loop())
        yield
        stop.set()
        await asyncio.wait_for(task, timeout=5)

    return watch

