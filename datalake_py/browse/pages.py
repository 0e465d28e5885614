"""The gallery's pages: the lake's overview, a search as thumbnails, one sample with its label drawn,
collections and their diffs. Read-only: the pages only read the database and the store (and keep
thumbnails in the lake's rebuildable cache). Templates escape every value; pages run no script.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import mimetypes
import re
from functools import partial, wraps
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from ..catalog.validation import MissingAsset, StoreFiles, UnsafeAsset
from ..client import DatalakeClient
from ..errors import DatalakeError, NotFoundError, ValidationError
from ..lake import asset_relpath, check_hash
from ..schema import load_schema
from ..upload.assets import IMAGE_EXTS
from . import queries
from .boxes import find_shapes
from .thumbnails import thumbnail

PER_PAGE, MAX_PER_PAGE = 100, 500
TOKEN_COOKIE = "datalake_token"
PREVIEW = 80  # characters of a label shown under a thumbnail
ASSET_NAME = re.compile(r"([0-9a-f]{32})\.([a-z0-9]{1,10})")  # `<hash>.<ext>`, a store file's own name
LEVEL_FIELDS = (("provider", "providers"), ("dataset", "datasets"), ("task", "tasks"), ("variant", "variants"))
# Pages run no script, and whatever an asset holds cannot run as the lake's pages either.
PAGE_POLICY = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'"
ASSET_POLICY = "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'"

templates = jinja2.Environment(loader=jinja2.PackageLoader("datalake.browse", "templates"),
                               autoescape=True, undefined=jinja2.StrictUndefined)


def _preview(value: Any, width: int = PREVIEW) -> str:
    """A label on one line: the texts its JSON holds (an OCR label's words, an answer) joined by
    ` · `, or the label itself when it holds none; whitespace collapsed, cut at `width`."""
    if value is None:
        return ""
    parsed = _parsed(value)
    texts = list(islice(_texts(parsed), width)) if isinstance(parsed, (dict, list)) else []
    text = " · ".join(texts) if texts else value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


def _parsed(value: Any) -> Any:
    """A label's JSON when it is JSON text, else the value as it is."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _texts(node: Any) -> Iterator[str]:
    """The non-empty strings a JSON value holds, in order (keys left out)."""
    if isinstance(node, str):
        if node.strip():
            yield node
    elif isinstance(node, dict):
        for item in node.values():
            yield from _texts(item)
    elif isinstance(node, list):
        for item in node:
            yield from _texts(item)


def _pretty(value: Any) -> str:
    """A label as indented JSON when it is JSON, else as it is."""
    parsed = _parsed(value)
    if isinstance(parsed, str):
        return parsed
    return json.dumps(parsed, ensure_ascii=False, indent=2, default=str)


def _size(num: Any) -> str:
    num = float(num or 0)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if num < 1000 or unit == "TB":
            return f"{num:.0f} {unit}" if unit == "B" else f"{num:.1f} {unit}"
        num /= 1000
    return ""


def _is_image(path: Any) -> bool:
    return isinstance(path, str) and path.rsplit(".", 1)[-1] in IMAGE_EXTS


templates.filters.update(preview=_preview, pretty=_pretty, size=_size, is_image=_is_image,
                         num=lambda n: f"{int(n or 0):,}", asset_name=lambda p: str(p).rsplit("/", 1)[-1])


def _render(template: str, status: int = 200, **values: Any) -> web.Response:
    response = web.Response(text=templates.get_template(template).render(**values), status=status,
                            content_type="text/html")
    response.headers["Content-Security-Policy"] = PAGE_POLICY
    return response


def error_page(status: int, message: str) -> web.Response:
    """A page saying what went wrong and what to do."""
    return _render("error.html", status=status, message=message)


def _number(query: Any, key: str, default: int, most: int) -> int:
    """A whole number from the query string, at least 1 and at most `most`."""
    try:
        value = int(query.get(key, default))
    except ValueError:
        raise ValidationError(f"{key} must be a whole number") from None
    return min(max(value, 1), most)


def gallery_filters(query: Any) -> dict[str, Any]:
    """The search a gallery URL describes: levels as comma-separated globs, `meta=field=value` (repeated),
    `text` with an optional `column` and `json_path`: the same filters as client.search."""
    filters: dict[str, Any] = {}
    for field, argument in LEVEL_FIELDS:
        globs = [g.strip() for g in query.get(field, "").split(",") if g.strip()]
        filters[argument] = globs or None
    meta = {}
    for pair in query.getall("meta", []):
        if pair.strip():
            field, sep, value = pair.partition("=")
            if not sep:
                raise ValidationError(f"meta {pair!r} must be FIELD=value, e.g. lang=ko")
            meta[field.strip()] = value.strip()
    filters["meta"] = meta or None
    text, column, path = (query.get(key, "").strip() for key in ("text", "column", "json_path"))
    filters["text_search"] = None if not text else \
        {"column": column or "label", "text": text, **({"json_path": path} if path else {})}
    return filters


def _page(handler: Callable[..., Any]) -> Callable[..., Any]:
    """A page handler whose errors are a page saying what went wrong and what to do."""

    @wraps(handler)
    async def page(self: "Pages", request: web.Request) -> web.Response:
        try:
            return await handler(self, request)
        except DatalakeError as exc:
            return error_page(exc.status, str(exc))

    return page


class Pages:
    """The routes of the gallery, reading one lake through a read-only client."""

    def __init__(self, client: DatalakeClient):
        self.client = client
        self.lake = client.lake

    async def _read(self, work: Callable[..., Any], *args: Any) -> Any:
        """Run a query or a file read off the event loop, so one slow page does not hold the others."""
        return await asyncio.get_running_loop().run_in_executor(None, partial(work, *args))

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/", self.overview), web.get("/gallery", self.gallery), web.get("/rows/{row_id}", self.sample),
                web.get("/collections", self.collections), web.get("/collections/{name}/{version}", self.collection),
                web.get("/collections/{name}/diff/{old}/{new}", self.diff),
                web.get("/thumbnails/{name}", self.thumbnail), web.get("/assets/{name}", self.asset)]

    @_page
    async def overview(self, request: web.Request) -> web.Response:
        partitions = await self._read(queries.overview, self.client)
        return _render("overview.html", partitions=partitions, lake=str(self.lake.root),
                       total_rows=sum(p["num_rows"] for p in partitions))

    @_page
    async def gallery(self, request: web.Request) -> web.Response:
        query = request.query
        per_page = _number(query, "per_page", PER_PAGE, MAX_PER_PAGE)
        page = _number(query, "page", 1, 10 ** 9)
        rows, total = await self._read(lambda: queries.gallery(self.client, gallery_filters(query), page, per_page))
        pages = max(1, -(-total // per_page))
        return _render("gallery.html", rows=rows, total=total, page=page, pages=pages, per_page=per_page,
                       form=_form(query), link=partial(_page_link, query))

    @_page
    async def sample(self, request: web.Request) -> web.Response:
        found = await self._read(queries.sample, self.client, request.match_info["row_id"])
        row = found["row"]
        rule = load_schema(self.lake).tasks.get(row["task"])
        shapes = find_shapes(row.get("label"), rule.boxes if rule else None) if _is_image(row.get("path")) else []
        return _render("sample.html", shapes=shapes, **found)

    @_page
    async def collections(self, request: web.Request) -> web.Response:
        found = await self._read(queries.collections, self.client)
        return _render("collections.html", collections=found)

    @_page
    async def collection(self, request: web.Request) -> web.Response:
        query = request.query
        per_page = _number(query, "per_page", PER_PAGE, MAX_PER_PAGE)
        page = _number(query, "page", 1, 10 ** 9)
        info = request.match_info
        found = await self._read(queries.collection, self.client, info["name"], info["version"], page, per_page)
        versions = await self._read(queries.collections, self.client)
        pages = max(1, -(-int(found["collection"]["num_samples"]) // per_page))
        return _render("collection.html", page=page, pages=pages, link=partial(_page_link, query),
                       versions=[v for v in versions if v["name"] == info["name"]], **found)

    @_page
    async def diff(self, request: web.Request) -> web.Response:
        info = request.match_info
        found = await self._read(queries.diff, self.client, info["name"], info["old"], info["new"])
        return _render("diff.html", name=info["name"], old=info["old"], new=info["new"], **found)

    async def thumbnail(self, request: web.Request) -> web.StreamResponse:
        digest, ext = _asset_name(request.match_info["name"])
        made = await self._read(thumbnail, self.lake, digest, asset_relpath(digest, ext))
        if made is None:
            raise NotFoundError(f"no thumbnail for {digest}.{ext}: it is not in the store, or not an image "
                                "this lake can read (`datalake db validate` checks the store)")
        return web.Response(body=made.read_bytes(), content_type="image/jpeg",
                            headers={"Cache-Control": "private, max-age=86400, immutable"})

    async def asset(self, request: web.Request) -> web.Response:
        """An asset's stored bytes; an image is shown, anything else is downloaded."""
        digest, ext = _asset_name(request.match_info["name"])
        body = await self._read(_read_asset, self.lake, digest, asset_relpath(digest, ext))
        kind = mimetypes.guess_type(f"x.{ext}")[0] if ext in IMAGE_EXTS and ext != "svg" else None
        headers = {"Content-Security-Policy": ASSET_POLICY, "X-Content-Type-Options": "nosniff",
                   "Cache-Control": "private, max-age=86400, immutable"}
        if not kind:
            headers["Content-Disposition"] = f'attachment; filename="{digest}.{ext}"'
        return web.Response(body=body, content_type=kind or "application/octet-stream", headers=headers)


def _asset_name(name: str) -> tuple[str, str]:
    found = ASSET_NAME.fullmatch(name)
    if not found:
        raise ValidationError(f"{name!r} is not an asset's name (`<hash>.<ext>`)")
    return check_hash(found.group(1)), found.group(2)


def _read_asset(lake: Any, digest: str, relpath: str) -> bytes:
    """An asset's bytes, reached as validation reaches them: never through a link, of the file or its folder."""
    try:
        _, source = StoreFiles(lake).open(digest, relpath)
    except (MissingAsset, UnsafeAsset):
        raise NotFoundError(f"no asset {digest} in the store") from None
    with source:
        return source.read()


def _form(query: Any) -> dict[str, Any]:
    """The gallery form's values, as the URL gave them."""
    return {**{field: query.get(field, "") for field, _ in LEVEL_FIELDS},
            "meta": [m for m in query.getall("meta", []) if m.strip()],
            **{key: query.get(key, "") for key in ("text", "column", "json_path")}}


def _page_link(query: Any, page: int) -> str:
    """The same URL at another page."""
    items = [(k, v) for k, v in query.items() if k != "page"] + [("page", str(page))]
    return "?" + urlencode(items)


def _next_page(value: Any) -> str:
    """Where to go after signing in: a path of these pages, never another site."""
    value = str(value or "/")
    return value if value.startswith("/") and not value.startswith(("//", "/\\")) else "/"


def login_routes(token: str | None) -> list[web.RouteDef]:
    """The sign-in page: a browser gives the token once and keeps it in an HttpOnly cookie that
    only its own requests to these pages carry (SameSite=Strict)."""

    async def form(request: web.Request) -> web.Response:
        return _render("login.html", next=_next_page(request.query.get("next")), wrong=False)

    async def sign_in(request: web.Request) -> web.Response:
        data = await request.post()
        target = _next_page(data.get("next"))
        if not token or not hmac.compare_digest(str(data.get("token", "")).encode(), token.encode()):
            return _render("login.html", status=401, next=target, wrong=bool(token))
        response = web.HTTPSeeOther(target)
        response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict", path="/", secure=request.secure)
        raise response

    return [web.get("/login", form), web.post("/login", sign_in)]


def add_pages(app: web.Application, lake_root: Path, token: str | None) -> None:
    """Serve the gallery of the lake at `lake_root` from `app`, at `/`, with its sign-in page."""
    app.add_routes([*Pages(DatalakeClient(base_path=lake_root, server_url="")).routes(), *login_routes(token)])
