"""The page in a real browser (Debian's Chromium driven by Playwright) against the real server: draw, translate,
see the output, live updates, upload. Screenshots go to test-artifacts/ at the repository root."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from pix2pix.inference import Translator
from pix2pix.serve.app import create_app
from tests.serve.conftest import free_port, png_bytes

sync_api = pytest.importorskip("playwright.sync_api",
                               reason="the browser test needs playwright: pip install playwright")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).is_file(),
                                reason="the browser test needs Debian's chromium (apt-get install chromium; .ci/run "
                                       "installs it)")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

OUTPUT_PIXELS = """() => {
  const image = document.getElementById("output");
  const canvas = document.createElement("canvas");
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
  let low = 765, high = 0;
  for (let i = 0; i < data.length; i += 4) {
    const sum = data[i] + data[i + 1] + data[i + 2];
    low = Math.min(low, sum);
    high = Math.max(high, sum);
  }
  return {width: canvas.width, height: canvas.height, spread: high - low};
}"""


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def browser_page(browser, live_server):
    """The page of `pix2pix serve`, loaded, with every request it makes to anywhere but the server collected."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    elsewhere: list[str] = []
    page.on("request", lambda request: elsewhere.append(request.url)
            if not request.url.startswith((live_server, "data:", "blob:")) else None)
    page.goto(live_server)
    wait_for_translations(page, 1)
    yield page, elsewhere
    page.close()


@pytest.fixture(scope="module")
def sketch_server(served_run) -> Iterator[str]:
    """The same run served in this process without a palette or examples, as a run of edges or sketches is."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(Translator.load(served_run, device="cpu")), port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def translations(page) -> int:
    return int(page.get_attribute("#output-frame", "data-translations"))


def wait_for_translations(page, count: int) -> None:
    page.wait_for_function("(count) => { const frame = document.getElementById('output-frame'); "
                           "return Number(frame.dataset.translations) >= count && frame.dataset.state === 'done'; }",
                           arg=count, timeout=20_000)


def drag(page, selector: str, points: list[tuple[float, float]]) -> None:
    """Presses the mouse at the first point (fractions of the element's box), moves through the rest, releases."""
    box = page.locator(selector).bounding_box()
    at = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*at[0])
    page.mouse.down()
    for x, y in at[1:]:
        page.mouse.move(x, y, steps=4)
    page.mouse.up()


def canvas_colour(page, fx: float, fy: float) -> list[int]:
    return page.evaluate("""([fx, fy]) => {
      const canvas = document.getElementById("canvas");
      const x = Math.floor(fx * canvas.width), y = Math.floor(fy * canvas.height);
      return Array.from(canvas.getContext("2d").getImageData(x, y, 1, 1).data.slice(0, 3));
    }""", [fx, fy])


def test_drawing_then_translate_shows_a_translation_and_live_mode_follows_the_drawing(browser_page, facades):
    page, elsewhere = browser_page
    page.click(".switch")  # live off: only the button translates
    assert not page.is_checked("#live")
    done = translations(page)
    page.click(".swatch:nth-child(3)")  # the palette's third class (window)
    drag(page, "#overlay", [(0.2, 0.2), (0.5, 0.3), (0.8, 0.2)])
    colour = page.get_attribute(".swatch:nth-child(3)", "data-color")
    assert "#" + "".join(f"{v:02x}" for v in canvas_colour(page, 0.5, 0.3)) == colour
    page.wait_for_timeout(400)
    assert translations(page) == done  # no live translation
    page.click("#translate")
    wait_for_translations(page, done + 1)
    pixels = page.evaluate(OUTPUT_PIXELS)
    assert (pixels["width"], pixels["height"]) == (32, 32) and pixels["spread"] > 10  # not blank
    assert page.get_attribute("#download", "href").startswith("blob:")

    page.click(".switch")  # live on: the drawing is translated without a click
    page.click(".tool:nth-child(2)")  # rectangle
    drag(page, "#overlay", [(0.1, 0.6), (0.6, 0.9)])
    wait_for_translations(page, done + 2)
    page.click("#undo")
    wait_for_translations(page, done + 3)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "serve-page.png"))
    assert not page.locator("#status.error").count(), page.text_content("#status")
    assert not elsewhere  # nothing from outside the server: the page works offline


def test_uploading_a_file_translates_it_at_its_size(browser_page, tmp_path):
    page, _ = browser_page
    upload = tmp_path / "photo.jpg"
    upload.write_bytes(png_bytes(48, 40, fmt="JPEG"))
    done = translations(page)
    page.set_input_files("#file", str(upload))
    wait_for_translations(page, done + 1)
    assert "photo.jpg" in page.text_content("#input-note")
    pixels = page.evaluate(OUTPUT_PIXELS)
    assert (pixels["width"], pixels["height"]) == (48, 40) and pixels["spread"] > 10
    page.screenshot(path=str(ARTIFACTS / "serve-upload.png"))


def test_without_a_palette_the_page_offers_a_pen_and_an_eraser_on_white(browser, sketch_server):
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    page.goto(sketch_server)
    wait_for_translations(page, 1)
    assert page.locator(".tool").all_text_contents() == ["Pen", "Eraser"] and not page.is_visible("#palette")
    assert canvas_colour(page, 0.5, 0.5) == [255, 255, 255]
    page.fill("#size", "6")
    drag(page, "#overlay", [(0.2, 0.5), (0.8, 0.5)])
    assert canvas_colour(page, 0.5, 0.5) == [0, 0, 0]
    page.click(".tool:nth-child(2)")
    drag(page, "#overlay", [(0.3, 0.5), (0.7, 0.5)])
    assert canvas_colour(page, 0.5, 0.5) == [255, 255, 255]
    page.click("#clear")
    page.click("#translate")
    wait_for_translations(page, 2)
    assert page.evaluate(OUTPUT_PIXELS)["width"] == 32
    page.close()
