"""The lake's pages in a real headless Chromium (the distribution's package, `make browser`): what a
person sees on the demo lake, served by `client.browse()` and by a real datalake-server with a token."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from conftest import RECEIPTS, TOTALS, catalog_rows
from datalake import DatalakeClient
from server_util import Server

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# Headless, and quiet: without the background-networking flags Chromium keeps calling home.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")
README_SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "images" / "browse.png"
TOKEN = "browser-test-token-1234"
WAIT = 20  # seconds a page may take to show what is checked


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> WebDriver:
    """One headless Chromium for the module, with a fresh profile; Selenium downloads nothing."""
    if not Path(CHROMEDRIVER).exists():
        pytest.fail(f"{CHROMEDRIVER} is missing: `make browser` installs Chromium (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def pages(demo_lake: Path) -> str:
    """The demo lake's pages from this process (`client.browse()`): their URL without the final slash."""
    browsing = DatalakeClient(user_id="demo", base_path=demo_lake).browse()
    yield browsing.url.rstrip("/")
    browsing.stop()


@pytest.fixture(scope="module")
def server(demo_lake: Path) -> Server:
    """A real datalake-server on loopback that requires a token."""
    served = Server(demo_lake, env={"DATALAKE_TOKEN": TOKEN})
    yield served
    served.stop()


def follow(driver: WebDriver, element: WebElement) -> None:
    """Click a link or a form's button and wait until the page it leads to has replaced this one."""
    page = driver.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(driver, WAIT).until(expected_conditions.staleness_of(page))


def texts(driver: WebDriver, css: str) -> list[str]:
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, css)]


def cells(driver: WebDriver, css: str) -> list[list[str]]:
    """The text of each cell of each table row `css` selects."""
    return [[c.text.replace("\xa0", " ").strip() for c in row.find_elements(By.CSS_SELECTOR, "td")]
            for row in driver.find_elements(By.CSS_SELECTOR, css)]


def loaded_images(driver: WebDriver, css: str) -> list[dict]:
    """Each image `css` selects, scrolled into view (thumbnails load lazily) and waited for: its source
    path and natural width (0: the browser could not show it)."""
    images = driver.find_elements(By.CSS_SELECTOR, css)
    for image in images:
        driver.execute_script("arguments[0].scrollIntoView()", image)
    WebDriverWait(driver, WAIT).until(lambda d: d.execute_script("return arguments[0].every(i => i.complete)", images))
    return [{"src": urlsplit(i.get_attribute("src")).path, "width": d} for i in images
            for d in [driver.execute_script("return arguments[0].naturalWidth", i)]]


def ocr_rows(lake: Path, mentioning: str | None = None) -> list[dict]:
    """The demo's OCR rows in the database, those with an element whose text is `mentioning` when given."""
    rows = DatalakeClient(user_id="demo", base_path=lake).search(tasks=["ocr"]).to_dict(orient="records")
    assert len(rows) == len([r for r in catalog_rows(lake) if r["task"] == "ocr"]) == 24
    return [r for r in rows if mentioning is None
            or mentioning in [e["text"] for e in json.loads(r["label"])["elements"]]]


def caption(label: str) -> str:
    """A demo label as a tile's caption shows it: its words, cut at 80 characters."""
    words = " · ".join(e["text"] for e in json.loads(label)["elements"])
    return words if len(words) <= 80 else words[:79] + "…"


def test_the_overview_counts_the_rows_of_each_partition(browser, pages, demo_lake, tmp_path):
    browser.get(pages + "/")
    stored = catalog_rows(demo_lake)
    assert browser.find_element(By.ID, "total-rows").text == str(len(stored)) == "48"
    assets = {r["path"] for r in stored}
    assert [row[:3] for row in cells(browser, "table#partitions tr.partition")] == [
        ["ocr / base_ocr", "24", "24"], ["raw / image", "24", "24"]] and len(assets) == 24
    assert cells(browser, "table#partitions tr.group") == [["huggingface 48 rows"]]
    browser.save_screenshot(str(tmp_path / "overview.png"))

    follow(browser, browser.find_element(By.LINK_TEXT, "ocr / base_ocr"))
    assert browser.find_element(By.ID, "matches").text.startswith("24 matching rows")


def test_a_filtered_gallery_shows_the_matching_thumbnails_and_captions(browser, pages, demo_lake, tmp_path):
    browser.get(pages + "/gallery")
    form = browser.find_element(By.CSS_SELECTOR, "form.search")
    for name, value in (("task", "ocr"), ("meta", "lang=ko"), ("text", RECEIPTS["text"]),
                        ("json_path", RECEIPTS["json_path"])):
        form.find_element(By.NAME, name).send_keys(value)
    follow(browser, form.find_element(By.CSS_SELECTOR, "button[type=submit]"))
    assert "text=" in browser.current_url

    expected = ocr_rows(demo_lake, RECEIPTS["text"])
    assert len(expected) == 6
    assert browser.find_element(By.ID, "matches").text == "6 matching rows, showing 1–6"
    assert sorted(texts(browser, "div.grid > div.tile div.caption")) == sorted(caption(r["label"]) for r in expected)
    images = loaded_images(browser, "div.grid > div.tile img")
    assert sorted(i["src"] for i in images) == sorted(f"/thumbnails/{r['path'].split('/')[1]}" for r in expected)
    assert [i for i in images if i["width"] == 0] == []
    browser.save_screenshot(str(tmp_path / "gallery.png"))


def test_the_readme_screenshot_of_the_demo_lake_gallery(browser, pages, tmp_path):
    """The README's picture: the gallery of the demo's OCR rows at 1280x800, written to docs/images/browse.png
    when DATALAKE_SCREENSHOT=1 (ordinary runs leave the checkout as it is)."""
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False})
    try:
        browser.get(pages + "/gallery?task=ocr")
        images = loaded_images(browser, "div.grid > div.tile img")
        assert len(images) == 24 and [i for i in images if i["width"] == 0] == []
        browser.execute_script("window.scrollTo(0, 0)")
        shot = tmp_path / "browse.png"
        assert browser.save_screenshot(str(shot))
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("DATALAKE_SCREENSHOT") == "1":
        README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, README_SCREENSHOT)


def test_a_sample_draws_each_box_of_its_label_over_its_image(browser, pages, demo_lake, tmp_path):
    browser.get(pages + "/gallery?" + urlencode({"task": "ocr", **RECEIPTS, "per_page": 1}))  # a row of v1
    follow(browser, browser.find_element(By.CSS_SELECTOR, "div.tile a"))
    row_id = browser.current_url.rsplit("/rows/", 1)[1]
    row = next(r for r in ocr_rows(demo_lake) if r["row_id"] == row_id)
    elements = json.loads(row["label"])["elements"]
    assert len(elements) == 3

    [image] = loaded_images(browser, "img#sample-image")
    assert image == {"src": f"/assets/{row['path'].split('/')[1]}", "width": 160}
    polygons = browser.find_elements(By.CSS_SELECTOR, "svg#boxes polygon.box")
    assert len(polygons) == len(elements)
    x1, y1, x2, y2 = elements[0]["bbox"]
    assert polygons[0].get_attribute("points").split() == [f"{x:.1f},{y:.1f}" for x, y in
                                                           ((x1, y1), (x2, y1), (x2, y2), (x1, y2))]
    assert texts(browser, "svg#boxes text") == [e["text"] for e in elements]
    assert json.loads(browser.find_element(By.ID, "label").text) == json.loads(row["label"])
    assert "demo" in browser.find_element(By.ID, "lineage").text
    assert texts(browser, "ul#shared li a") == ["huggingface/demo_docs/raw/image"]  # the same image, uploaded raw
    words = [e["text"] for e in elements]
    assert texts(browser, "ul#held-by li a") == [f"demo_receipts {version}" for version, search in
                                                 (("v1", RECEIPTS), ("v2", TOTALS)) if search["text"] in words]
    assert "demo_receipts v1" in texts(browser, "ul#held-by li a")
    browser.save_screenshot(str(tmp_path / "sample.png"))


def test_a_collection_diff_counts_the_members_added_and_removed(browser, pages, demo_lake, tmp_path):
    old = {r["row_id"] for r in ocr_rows(demo_lake, RECEIPTS["text"])}
    new = {r["row_id"] for r in ocr_rows(demo_lake, TOTALS["text"])}
    added, removed = new - old, old - new
    assert added and removed

    browser.get(pages + "/collections")
    assert [line.split(" ")[:3] for line in texts(browser, "table#collections tbody tr")] == [
        ["demo_receipts", "(latest)", "v2"], ["demo_receipts", "v1", "6"]]
    follow(browser, browser.find_element(By.LINK_TEXT, "v2"))
    follow(browser, browser.find_element(By.LINK_TEXT, "v1"))  # "Compare with: v1"
    assert urlsplit(browser.current_url).path == "/collections/demo_receipts/diff/v1/v2"
    assert browser.find_element(By.ID, "diff-summary").text == f"{len(added)} added, {len(removed)} removed."
    shown = {change: {row.find_element(By.CSS_SELECTOR, "a").text for row in
                      browser.find_elements(By.CSS_SELECTOR, f"table#diff tr.{change}")}
             for change in ("added", "removed")}
    assert shown == {"added": added, "removed": removed}
    browser.save_screenshot(str(tmp_path / "diff.png"))


def test_signing_in_with_the_servers_token_reaches_the_page_asked_for(browser, server, tmp_path):
    browser.delete_all_cookies()
    browser.get(server.url + "/gallery?task=ocr")
    assert urlsplit(browser.current_url).path == "/login"
    assert browser.find_element(By.TAG_NAME, "h1").text == "Sign in"

    browser.find_element(By.NAME, "token").send_keys("not-the-token")
    follow(browser, browser.find_element(By.CSS_SELECTOR, "form button[type=submit]"))
    assert browser.find_element(By.ID, "error").text == "That token is not the server's token."
    assert urlsplit(browser.current_url).path == "/login"
    assert browser.get_cookies() == []
    browser.save_screenshot(str(tmp_path / "wrong-token.png"))

    browser.find_element(By.NAME, "token").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    WebDriverWait(browser, WAIT).until(lambda d: urlsplit(d.current_url).path == "/gallery")
    assert urlsplit(browser.current_url).query == "task=ocr"
    assert browser.find_element(By.ID, "matches").text.startswith("24 matching rows")
    assert [i for i in loaded_images(browser, "div.grid > div.tile img") if i["width"] == 0] == []
    assert browser.execute_script("return document.cookie") == ""
    [cookie] = browser.get_cookies()
    assert (cookie["name"], cookie["httpOnly"]) == ("datalake_token", True)

    browser.get(server.url + "/")
    assert browser.find_element(By.ID, "total-rows").text == "48"
    browser.save_screenshot(str(tmp_path / "signed-in.png"))
    browser.delete_all_cookies()
