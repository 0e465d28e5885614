"""The lake's pages over plain HTTP: every route's answer, escaping of hostile values, the token and the
sign-in page, no way out of the store, reading only, `datalake browse` and `client.browse()`."""

from __future__ import annotations

import http.client
import io
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.error import HTTPError
from urllib.parse import parse_qs, quote, urlencode, urlsplit
from urllib.request import HTTPRedirectHandler, Request, build_opener

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import RECEIPTS, image_bytes, process
from datalake import DatalakeClient
from datalake.cli import app
from datalake.errors import DatalakeError
from server_util import Server

TOKEN = "http-test-token-5678"
SCRIPT = "<script>alert(1)</script>"
COLUMN = "<b>\"col'</b>"  # a user column's name


class NoRedirects(HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = build_opener(NoRedirects)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> dict:
        assert self.headers["Content-Type"].startswith("application/json"), self.headers
        return json.loads(self.body)


def fetch(url: str, method: str = "GET", form: dict | None = None, headers: dict | None = None) -> Answer:
    """One request as it is, redirects not followed."""
    data = urlencode(form).encode() if form is not None else None
    try:
        with OPENER.open(Request(url, data=data, method=method, headers=headers or {}), timeout=30) as answer:
            return Answer(answer.status, dict(answer.headers), answer.read())
    except HTTPError as exc:
        return Answer(exc.code, dict(exc.headers), exc.read())


def raw_get(url: str, path: str) -> Answer:
    """GET `path` exactly as written (`..`, `%2e` and all), as a hostile client sends it."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.endheaders()
        answer = connection.getresponse()
        return Answer(answer.status, dict(answer.headers), answer.read())
    finally:
        connection.close()


class Page(HTMLParser):
    """A page as a browser reads it: its elements (with attributes) and the text a person sees."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.texts: list[str] = []  # the text of each element, in order
        self.feed(html)
        self.close()
        self.text = " ".join(t for t in self.texts if t)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.texts.append(data.strip())

    def names(self) -> set[str]:
        return {tag for tag, _ in self.tags}

    def error(self) -> str:
        """The text of the page's error box."""
        return self.text.split(" datalake Overview Gallery Collections ", 1)[1]


def page(url: str, status: int = 200) -> Page:
    answer = fetch(url)
    assert answer.status == status, answer.text[:2000]
    assert answer.headers["Content-Type"].startswith("text/html")
    policy = answer.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy
    found = Page(answer.text)
    assert "script" not in found.names()
    return found


def copy_lake(lake: Path, to: Path) -> Path:
    """A private copy of a lake, without its thumbnail cache."""
    return Path(shutil.copytree(lake, to, symlinks=True, ignore=lambda folder, _: ["cache"] if Path(folder) == lake else []))


@pytest.fixture(scope="module")
def lake(demo_lake: Path, tmp_path_factory) -> Path:
    return copy_lake(demo_lake, tmp_path_factory.mktemp("http") / "lake")


@pytest.fixture(scope="module")
def client(lake: Path) -> DatalakeClient:
    return DatalakeClient(user_id="demo", base_path=lake)


@pytest.fixture(scope="module")
def pages(client: DatalakeClient) -> str:
    """The lake's pages from this process: their URL without the final slash."""
    browsing = client.browse()
    yield browsing.url.rstrip("/")
    browsing.stop()


@pytest.fixture(scope="module")
def rows(client: DatalakeClient) -> list[dict]:
    return client.search(tasks=["ocr"]).to_dict(orient="records")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> tuple[str, DatalakeClient]:
    """A lake holding hostile values where users may put them (a label, a user column's name and value,
    an upload's description, a collection's description, an HTML file), and its pages' URL."""
    root = tmp_path_factory.mktemp("hostile")
    client = DatalakeClient(user_id="mallory", base_path=root / "lake", create_dirs=True, num_proc=2)
    label = json.dumps({"elements": [{"text": SCRIPT, "bbox": [1, 1, 10, 10]}]})
    client.upload_task(pd.DataFrame({"image": [image_bytes(1)], "label": [label], COLUMN: ["<i>v</i>"]}),
                       provider="test", dataset="d", task="ocr", variant="v", meta={"lang": "ko", "src": "real"},
                       description=SCRIPT)
    (root / "page.html").write_text(f"<html>{SCRIPT}</html>")
    pq.write_table(pa.table({"file_path": [str(root / "page.html")]}), root / "files.parquet")
    client.upload_raw(root / "files.parquet", provider="test", dataset="d")
    assert [u["status"] for u in process(client)["uploads"]] == ["processed", "processed"]
    client.build_db()
    client.import_collection(client.search(), name="set", version="v1", description=SCRIPT)
    client.build_db()
    browsing = client.browse()
    yield browsing.url.rstrip("/"), client
    browsing.stop()


@pytest.fixture(scope="module")
def server(lake: Path, tmp_path_factory) -> Server:
    """A real datalake-server (API and pages) on loopback requiring a token, on its own copy of the lake."""
    served = Server(copy_lake(lake, tmp_path_factory.mktemp("served") / "lake"), env={"DATALAKE_TOKEN": TOKEN})
    yield served
    served.stop()


def file_name(row: dict) -> str:
    """An asset's name in the URLs of the pages: `<hash>.<ext>`."""
    return row["path"].split("/")[1]


# -- every route answers -------------------------------------------------------------------------

def test_every_page_answers_with_what_it_shows(pages, rows):
    receipts = urlencode({"task": "ocr", "meta": "lang=ko", **RECEIPTS, "per_page": 4, "page": 2})
    assert "6 matching rows, showing 5–6" in page(f"{pages}/gallery?{receipts}").text
    assert "48 rows" in page(f"{pages}/").text
    assert "CC0-1.0" in page(f"{pages}/").text  # the demo dataset's license, from its OCR upload
    assert "48 matching rows, showing 1–48" in page(f"{pages}/gallery").text
    raw = f"{pages}/gallery?task=raw"  # rows with no label at all: the search leaves the column out
    assert "24 matching rows, showing 1–24" in page(raw).text and fetch(raw).text.count('src="/thumbnails/') == 24
    assert rows[0]["row_id"] in page(f"{pages}/rows/{rows[0]['row_id']}").text
    assert "demo_receipts" in page(f"{pages}/collections").text
    assert "OCR rows mentioning 합계" in page(f"{pages}/collections/demo_receipts/v2?per_page=1&page=2").text
    assert " added, " in page(f"{pages}/collections/demo_receipts/diff/v1/v2").text
    assert "Sign in" in page(f"{pages}/login").text


def test_thumbnails_and_images_are_served_as_images(pages, client, rows):
    png = next(r for r in rows if r["path"].endswith(".png"))
    thumbnail = fetch(f"{pages}/thumbnails/{file_name(png)}")
    assert (thumbnail.status, thumbnail.headers["Content-Type"]) == (200, "image/jpeg")
    with Image.open(io.BytesIO(thumbnail.body)) as image:
        assert (image.format, image.size) == ("JPEG", (160, 96))

    asset = fetch(f"{pages}/assets/{file_name(png)}")
    assert (asset.status, asset.headers["Content-Type"]) == (200, "image/png")
    assert asset.body == (client.lake.assets / png["path"]).read_bytes()
    assert "Content-Disposition" not in asset.headers
    assert asset.headers["X-Content-Type-Options"] == "nosniff"
    assert asset.headers["Content-Security-Policy"].startswith("sandbox;")


def test_what_is_missing_is_a_404_page_naming_it(pages):
    assert page(f"{pages}/rows/20990101T000000000Z-deadbeef:0", 404).error().startswith(
        "no row 20990101T000000000Z-deadbeef:0 in the catalog")
    assert page(f"{pages}/collections/demo_receipts/v9", 404).error().startswith(
        "no collection version demo_receipts v9 in the database")
    assert page(f"{pages}/collections/nothing/diff/v1/v2", 404).error() == \
        "no collection version nothing v1 in the database"
    unknown = "0" * 32
    asset, thumbnail = (fetch(f"{pages}/{kind}/{unknown}.png") for kind in ("assets", "thumbnails"))
    assert (asset.status, asset.json()["error"]) == (404, f"no asset {unknown} in the store")
    assert (thumbnail.status, thumbnail.json()["error"]) == (
        404, f"no thumbnail for {unknown}.png: it is not in the store, or not an image this lake can read "
             "(`datalake db validate` checks the store)")


def test_bad_input_is_a_400_page_naming_it(pages):
    assert page(f"{pages}/rows/not-a-row", 400).error() == \
        "'not-a-row' is not a row id (`<upload_id>:<row number>`)"
    assert page(f"{pages}/gallery?per_page=many", 400).error() == "per_page must be a whole number"
    assert page(f"{pages}/gallery?meta=lang", 400).error() == "meta 'lang' must be FIELD=value, e.g. lang=ko"
    assert page(f"{pages}/collections/{quote('bad name')}/v1", 400).error().startswith(
        "collection name 'bad name' is not allowed")
    bad_name = fetch(f"{pages}/assets/schema.yaml")
    assert (bad_name.status, bad_name.json()["error"]) == (400, "'schema.yaml' is not an asset's name (`<hash>.<ext>`)")


def test_the_api_answers_json(server):
    assert fetch(f"{server.url}/health").json() == {"ok": True}
    info = fetch(f"{server.url}/info", headers={"Authorization": f"Bearer {TOKEN}"})
    assert info.status == 200 and info.json()["auth"] is True
    unknown = fetch(f"{server.url}/no-such-route", headers={"Authorization": f"Bearer {TOKEN}"})
    assert (unknown.status, unknown.json()["error"]) == (404, "Not Found")
    browsing = fetch(f"{server.url}/no-such-route", headers={"Authorization": f"Bearer {TOKEN}",
                                                               "Accept": "text/html,*/*;q=0.8"})
    assert browsing.status == 404 and browsing.headers["Content-Type"].startswith("text/html")
    assert Page(browsing.text).error() == "Not Found"


# -- user values are text ------------------------------------------------------------------------

def test_hostile_values_in_the_lake_show_as_text(hostile):
    url, client = hostile
    row_ids = dict(client.sql("select task, row_id from catalog").itertuples(index=False))
    sample = page(f"{url}/rows/{row_ids['ocr']}")
    assert sample.texts.count(SCRIPT) == 2  # the box's text over the image, the upload's description
    assert COLUMN in sample.texts and "<i>v</i>" in sample.texts
    assert f'"text": "{SCRIPT}"' in sample.text  # the label
    for html in (sample, page(f"{url}/"), page(f"{url}/gallery"), page(f"{url}/collections"),
                 page(f"{url}/collections/set/v1")):
        assert not {"b", "i", "script"} & html.names()
    assert SCRIPT in page(f"{url}/gallery").texts  # the caption: the label's text
    assert SCRIPT in page(f"{url}/collections").text
    assert [tag for tag, _ in sample.tags if tag == "polygon"] == ["polygon"]


def test_hostile_values_in_the_url_show_as_text(hostile):
    url, _ = hostile
    gallery = page(f"{url}/gallery?" + urlencode({"provider": f'">{SCRIPT}', "text": SCRIPT, "meta": f"lang={SCRIPT}"}))
    inputs = {attrs["name"]: attrs.get("value") for tag, attrs in gallery.tags if tag == "input" and attrs.get("value")}
    assert inputs == {"provider": f'">{SCRIPT}', "text": SCRIPT, "meta": f"lang={SCRIPT}"}
    assert page(f"{url}/rows/{quote(SCRIPT, safe='')}", 400).error() == \
        f"'{SCRIPT}' is not a row id (`<upload_id>:<row number>`)"


def test_a_file_that_is_not_an_image_is_downloaded_not_shown(hostile):
    url, client = hostile
    path = client.sql("select path from catalog where task = 'raw'")["path"][0]
    answer = fetch(f"{url}/assets/{path.split('/')[1]}")
    assert answer.status == 200 and answer.body == f"<html>{SCRIPT}</html>".encode()
    assert answer.headers["Content-Type"] == "application/octet-stream"
    assert answer.headers["Content-Disposition"] == f'attachment; filename="{path.split("/")[1]}"'
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["Content-Security-Policy"].startswith("sandbox;")
    assert fetch(f"{url}/thumbnails/{path.split('/')[1]}").status == 404


# -- the token -----------------------------------------------------------------------------------

def test_without_the_token_the_api_refuses_and_a_browser_is_sent_to_sign_in(server):
    refused = fetch(f"{server.url}/info")
    assert (refused.status, refused.json()["type"]) == (401, "AuthError")
    assert refused.json()["error"].startswith("missing or wrong token")
    assert fetch(f"{server.url}/", headers={"Authorization": "Bearer wrong"}).status == 401
    browser = fetch(f"{server.url}/gallery?task=ocr", headers={"Accept": "text/html"})
    sent_to = urlsplit(browser.headers["Location"])
    assert (browser.status, sent_to.path, parse_qs(sent_to.query)) == (303, "/login", {"next": ["/gallery?task=ocr"]})
    assert "Sign in" in page(f"{server.url}/login").text
    assert fetch(f"{server.url}/", headers={"Authorization": f"Bearer {TOKEN}"}).status == 200


def test_signing_in_sets_an_http_only_cookie_good_for_reading_only(server):
    wrong = fetch(f"{server.url}/login", "POST", {"token": "wrong", "next": "/gallery"})
    assert wrong.status == 401 and "Set-Cookie" not in wrong.headers
    assert "That token is not the server's token." in Page(wrong.text).text

    signed_in = fetch(f"{server.url}/login", "POST", {"token": TOKEN, "next": "/gallery?task=ocr"})
    assert (signed_in.status, signed_in.headers["Location"]) == (303, "/gallery?task=ocr")
    cookie = signed_in.headers["Set-Cookie"]
    assert cookie.startswith(f"datalake_token={TOKEN};") and "HttpOnly" in cookie and "SameSite=Strict" in cookie

    with_cookie = {"Cookie": f"datalake_token={TOKEN}"}
    assert fetch(f"{server.url}/gallery?task=ocr", headers=with_cookie).status == 200
    assert fetch(f"{server.url}/status", headers=with_cookie).json()["state"] in ("idle", "processing")
    refused = fetch(f"{server.url}/process", "POST", {}, headers=with_cookie)
    assert (refused.status, refused.json()["type"]) == (401, "AuthError")
    started = fetch(f"{server.url}/process", "POST", {}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert started.status == 200 and started.json()["status"] in ("started", "already_running")
    assert fetch(f"{server.url}/", headers={"Cookie": "datalake_token=wrong"}).status == 401


@pytest.mark.parametrize("target", ["//evil.example", "https://evil.example/", "/\\evil.example", "evil", ""])
def test_signing_in_never_leads_to_another_site(server, target):
    signed_in = fetch(f"{server.url}/login", "POST", {"token": TOKEN, "next": target})
    assert (signed_in.status, signed_in.headers["Location"]) == (303, "/")
    form = Page(fetch(f"{server.url}/login?" + urlencode({"next": target})).text)
    assert [a["value"] for tag, a in form.tags if a.get("name") == "next"] == ["/"]


# -- nothing outside the store -------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    "/assets/../../config/schema.yaml", "/assets/..%2f..%2fconfig%2fschema.yaml",
    "/assets/%2e%2e/%2e%2e/config/schema.yaml", "/assets/%2e%2e%2f%2e%2e%2fconfig%2fschema.yaml",
    "/thumbnails/..%2f..%2fconfig%2fschema.yaml", "/assets/..%2fschema.yaml", "/assets/schema.yaml",
    "/assets/%2e%2e%2f%2e%2e%2flayout.json", "/assets/ABCDEF0123456789ABCDEF0123456789.png",
])
def test_no_url_reaches_a_file_outside_the_store(pages, lake, path):
    answer = raw_get(pages, path)
    assert answer.status in (400, 404), answer.text
    for secret in (lake / "config" / "schema.yaml", lake / "layout.json"):
        assert secret.read_bytes()[:40] not in answer.body


def test_a_link_planted_in_the_store_is_never_followed(demo_lake, tmp_path):
    lake = copy_lake(demo_lake, tmp_path / "lake")
    client = DatalakeClient(user_id="demo", base_path=lake)
    paths = [r["path"] for r in client.search(tasks=["ocr"]).to_dict(orient="records")]
    secret = tmp_path / "secret.png"
    secret.write_bytes(image_bytes(99))
    linked_file, linked_folder, cached = paths[0], next(p for p in paths[1:] if p[:2] != paths[0][:2]), paths[-1]
    (lake / "assets" / linked_file).unlink()
    (lake / "assets" / linked_file).symlink_to(secret)
    outside = tmp_path / "outside"
    shutil.move(lake / "assets" / linked_folder[:2], outside)
    (lake / "assets" / linked_folder[:2]).symlink_to(outside, target_is_directory=True)
    thumbnail = lake / "cache" / "thumbnails" / cached[:2] / f"{cached.split('/')[1].split('.')[0]}.jpg"
    thumbnail.parent.mkdir(parents=True)
    thumbnail.symlink_to(secret)
    browsing = client.browse()
    try:
        url = browsing.url.rstrip("/")
        for path in (linked_file, linked_folder):
            for kind in ("assets", "thumbnails"):
                answer = fetch(f"{url}/{kind}/{path.split('/')[1]}")
                assert answer.status == 404 and answer.body != secret.read_bytes(), (kind, path)
        made = fetch(f"{url}/thumbnails/{cached.split('/')[1]}")
        assert made.status == 200 and made.body != secret.read_bytes()
        with Image.open(io.BytesIO(made.body)) as image:
            assert (image.format, image.size) == ("JPEG", (160, 96))
    finally:
        browsing.stop()
    assert secret.read_bytes() == image_bytes(99)


# -- reading only --------------------------------------------------------------------------------

def listing(lake: Path) -> dict[str, tuple]:
    """Every file, folder and link of the lake outside cache/, with its kind, size and modification time."""
    return {str(p.relative_to(lake)): (p.is_symlink(), p.is_dir(), p.lstat().st_size if not p.is_dir() else 0,
                                       p.lstat().st_mtime_ns)
            for p in lake.rglob("*") if p.relative_to(lake).parts[0] != "cache"}


def test_browsing_every_page_leaves_the_lake_as_it_was(demo_lake, tmp_path):
    lake = copy_lake(demo_lake, tmp_path / "lake")
    before = listing(lake)
    client = DatalakeClient(user_id="demo", base_path=lake)
    found = client.search().to_dict(orient="records")
    browsing = client.browse()
    try:
        url = browsing.url.rstrip("/")
        for path in ["/", "/gallery", "/gallery?task=ocr&" + urlencode(RECEIPTS), "/collections",
                     "/collections/demo_receipts/v1", "/collections/demo_receipts/v2",
                     "/collections/demo_receipts/diff/v1/v2", "/login", "/rows/nothing:0", "/gallery?page=x"]:
            assert fetch(url + path).status in (200, 400, 404)
        for row in found:
            assert fetch(f"{url}/rows/{row['row_id']}").status == 200
            assert fetch(f"{url}/thumbnails/{file_name(row)}").status == 200
            assert fetch(f"{url}/assets/{file_name(row)}").status == 200
        assert fetch(f"{url}/login", "POST", {"token": "x"}).status == 401
    finally:
        browsing.stop()
    assert listing(lake) == before
    assert len(list((lake / "cache" / "thumbnails").rglob("*.jpg"))) == 24


# -- datalake browse and client.browse() ---------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_datalake_browse_serves_the_pages_until_ctrl_c(lake):
    port = free_port()
    command = [str(Path(sys.executable).parent / "datalake"), "--base-path", str(lake), "browse", "--port", str(port)]
    env = {k: v for k, v in os.environ.items() if k != "DATALAKE_TOKEN"}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        with selectors.DefaultSelector() as waiting:
            waiting.register(proc.stdout, selectors.EVENT_READ)
            assert waiting.select(timeout=60), "datalake browse printed nothing in 60 s"
        line = proc.stdout.readline()
        assert line == f"Browsing the lake at {lake} on http://127.0.0.1:{port}/ (Ctrl-C to stop)\n"
        assert "48 rows" in page(f"http://127.0.0.1:{port}/").text
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert proc.stderr.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_datalake_browse_off_loopback_needs_a_token(lake, monkeypatch):
    monkeypatch.delenv("DATALAKE_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["--base-path", str(lake), "browse", "--host", "0.0.0.0"])
    assert (result.exit_code, result.stderr) == (1, "Error: serving the pages on 0.0.0.0 needs a token: give one "
                                                    "(--token-file FILE or DATALAKE_TOKEN), or serve on 127.0.0.1\n")


def test_client_browse_shows_as_its_url_and_stop_frees_the_port(client):
    browsing = client.browse()
    try:
        url = repr(browsing)
        port = urlsplit(url).port
        assert url == browsing.url == f"http://127.0.0.1:{port}/"
        assert "48 rows" in page(url).text
        with pytest.raises(DatalakeError, match=f"^cannot serve the pages on 127.0.0.1:{port}: "):
            client.browse(port=port)
    finally:
        browsing.stop()
    with pytest.raises(OSError):
        fetch(url)
    again = client.browse(port=port)
    try:
        assert "48 rows" in page(repr(again)).text
    finally:
        again.stop()


def test_a_lake_of_raw_images_without_labels_browses_like_any_other(tmp_path):
    """No upload brought a label: the catalog has no such column, and every page still answers."""
    client = DatalakeClient(user_id="alice", base_path=tmp_path / "plain", create_dirs=True)
    client.upload_raw(pd.DataFrame({"image": [image_bytes(1), image_bytes(2)]}), provider="test", dataset="plain")
    process(client)
    client.build_db()
    rows = client.search()
    assert "label" not in client.sql("select * from catalog").columns
    client.import_collection(rows, name="plain_set")
    client.build_db()
    pages = client.browse()
    try:
        assert "2 matching rows, showing 1–2" in page(f"{pages.url}gallery").text
        members = f"{pages.url}collections/plain_set/v1"
        assert "plain_set v1" in page(members).text and fetch(members).text.count('src="/thumbnails/') == 2
        assert "plain_set" in page(f"{pages.url}rows/{rows['row_id'][0]}").text
    finally:
        pages.stop()
