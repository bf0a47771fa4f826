"""The page in a real Chromium, against a real uvicorn server on loopback, on the real tiny runs.

Draws a digit, then a number, with mouse strokes and checks that what the page shows is what the API answers
for what the page sent; uploads a phone-sized photo of a number stored sideways (EXIF), which the page shrinks
and turns upright, and checks the boxes it draws over the digits; says so for a photo without a digit;
generates; walks the latent space from the keyboard; shows a refusal readably.
"""

import io
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from test_serve_start import serving

from mnistlab.photo.synth import make_photos

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (`make browser` gets it)"),
]


class RecordingReads:
    """The app, keeping the body of each request to /api/read: the image that the page sent."""

    def __init__(self, app) -> None:
        self.app, self.bodies = app, []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != "/api/read":
            return await self.app(scope, receive, send)
        body = bytearray()
        self.bodies.append(body)

        async def recording_receive():
            message = await receive()
            body.extend(message.get("body", b""))
            return message

        await self.app(scope, recording_receive, send)


@pytest.fixture(scope="module")
def app(cnn_run, gan_run) -> RecordingReads:
    from mnistlab.serve.app import create_app

    return RecordingReads(create_app(cnn_run.dir, gan_run.dir))


@pytest.fixture(scope="module")
def base_url(app):
    """A real uvicorn server on a free loopback port, in a background thread, serving the fixture runs."""
    with serving(app) as url:
        yield url


@pytest.fixture
def page(base_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run"])
        # reduced motion: the bars' width transition is off, so what is measured is final
        page = browser.new_page(viewport={"width": 1200, "height": 1000}, reduced_motion="reduce")
        page.problems = []  # anything the page logs as an error, and any request that leaves the server
        page.on("pageerror", lambda error: page.problems.append(str(error)))
        page.on("console", lambda msg: msg.type == "error" and page.problems.append(msg.text))
        page.on("request", lambda r: r.url.startswith((base_url, f"blob:{base_url}", "data:"))
                or page.problems.append(f"external: {r.url}"))
        page.goto(base_url)
        page.wait_for_selector("#models dt")  # /api/models has answered and the page has set itself up
        yield page
        browser.close()


def settle(page, requests):
    """Wait until the page has read the drawing as it is now: the reading is no longer busy (aria-busy)."""
    page.wait_for_selector('#prediction[aria-busy="false"]')
    for request in requests:
        assert request.response().ok


def stroke(page, *points, steps: int = 25):
    """One mouse stroke through `points`, given as fractions of the canvas's width and height; `steps` mouse
    moves from each point to the next (each a round trip to the browser), so the page reads mid-stroke."""
    box = page.locator("#canvas").bounding_box()
    (x, y), *rest = [(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy) for fx, fy in points]
    page.mouse.move(x, y)
    page.mouse.down()
    for x, y in rest:
        page.mouse.move(x, y, steps=steps)
    page.mouse.up()


def sent_file(body: bytes) -> bytes:
    """The file inside a multipart body with one field: what the page sent."""
    return bytes(body[body.index(b"\r\n\r\n") + 4 : body.rindex(b"\r\n--")])


def answer_to(body: bytes, base_url: str) -> dict:
    """/api/read's answer, asked again, for the file in a multipart body that the page sent."""
    return httpx.post(f"{base_url}/api/read", files={"file": ("sent", sent_file(body))}).json()


def iou(a, b) -> float:
    inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def bars_and_seen(page) -> tuple[list[float], np.ndarray]:
    """The probabilities as the bars are drawn, and the 28x28 image #seen shows (0..255)."""
    shown = page.eval_on_selector_all("#probabilities .bar", """bars => bars.map(
        bar => bar.firstElementChild.getBoundingClientRect().width / bar.getBoundingClientRect().width)""")
    seen = page.evaluate("""() => Array.from(document.querySelector('#seen').getContext('2d')
                               .getImageData(0, 0, 28, 28).data.filter((_, i) => i % 4 === 0))""")
    return shown, np.reshape(seen, (28, 28))


def test_draw_read_photos_generate_and_walk(page, app, base_url, tmp_path):
    requests = []
    page.on("request", lambda r: r.url.endswith("/api/read") and requests.append(r))

    # Draw a "1": one stroke down the middle, as a person would with a mouse.
    stroke(page, (0.52, 0.15), (0.49, 0.85))
    settle(page, requests)
    assert len(requests) >= 2  # it read while drawing, not only at the end

    # What the page shows is the API's answer for what the page last sent.
    answer = answer_to(app.bodies[-1], base_url)
    assert page.locator("#prediction").inner_text() == answer["text"] == "1"
    assert page.locator("#digits").is_hidden()  # one digit: no chips, the bars say it all
    digit = answer["digits"][0]
    bars = page.locator("#probabilities li")
    assert bars.count() == 10 and page.locator("#probabilities .bar").count() == 10
    assert bars.nth(digit["digit"]).get_attribute("class") == "top"
    shown, seen = bars_and_seen(page)
    np.testing.assert_allclose(shown, digit["probabilities"], atol=0.01)  # as drawn, not only as styled
    np.testing.assert_allclose(seen, np.round(np.array(digit["image"]) * 255), atol=1)
    assert seen.max() == 255  # the 28x28 view is drawn, ink at full strength

    # Why? The map over the 28x28 view: red where ink pushed the answer up, and the runner-up beside it.
    page.check("#why")
    page.wait_for_selector("#why-text:not([hidden])")
    why = httpx.post(f"{base_url}/api/explain", json={"image": digit["image"]}).json()
    assert page.locator("#why-text b").nth(0).inner_text() == why["label"] == answer["text"]
    assert page.locator("#why-text b").nth(1).inner_text().startswith(why["runner_up_label"])
    rgb = np.reshape(page.evaluate("""() => Array.from(document.querySelector('#seen').getContext('2d')
                                      .getImageData(0, 0, 28, 28).data)"""), (28, 28, 4))[..., :3].astype(int)
    strongest = np.unravel_index(np.argmax(why["attribution"]), (28, 28))
    assert rgb[strongest][0] == 255 and rgb[strongest][1] == rgb[strongest][2] == 0  # full red where it pushed most
    assert page.locator("#why-runner-up").is_visible()
    page.uncheck("#why")
    assert page.locator("#why-text").is_hidden()
    np.testing.assert_allclose(bars_and_seen(page)[1], np.round(np.array(digit["image"]) * 255), atol=1)

    page.click("#clear")
    assert page.locator("#prediction").inner_text() == "–"

    # Two digits side by side are read as a number: a chip each; choosing the second shows its probabilities.
    stroke(page, (0.3, 0.15), (0.28, 0.85))
    stroke(page, (0.7, 0.15), (0.68, 0.85))
    settle(page, requests)
    answer = answer_to(app.bodies[-1], base_url)
    assert len(answer["text"]) == 2 and page.locator("#prediction").inner_text() == answer["text"]
    assert page.locator("#digits button").count() == 2
    page.locator("#digits button").nth(1).click()
    shown, seen = bars_and_seen(page)
    np.testing.assert_allclose(shown, answer["digits"][1]["probabilities"], atol=0.01)
    np.testing.assert_allclose(seen, np.round(np.array(answer["digits"][1]["image"]) * 255), atol=1)

    # A 4-megapixel photo of a number, stored sideways with an EXIF tag saying "rotate me", as phones do.
    photo = make_photos(1, seed=2, lengths=(3,), size=(2400, 1800), spacing="apart", edge="none")[0]
    sideways = Image.fromarray(np.ascontiguousarray(np.rot90(photo.image)))
    exif = sideways.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to show
    sideways.save(tmp_path / "photo.jpg", quality=92, exif=exif)
    page.set_input_files("#upload", str(tmp_path / "photo.jpg"))
    page.wait_for_function("() => document.querySelector('#source').textContent === 'Read from photo.jpg.'")
    image = Image.open(io.BytesIO(sent_file(app.bodies[-1])))
    assert image.format == "JPEG" and 1.8e6 < image.width * image.height <= 2e6  # shrunk in the browser
    assert image.width / image.height == pytest.approx(2400 / 1800, abs=0.01)  # and upright
    answer = answer_to(app.bodies[-1], base_url)
    assert page.locator("#prediction").inner_text() == answer["text"] and len(answer["text"]) == 3
    # A box over each digit, where the digit is in the photo, with the digit read above it.
    boxes = page.locator("#boxes .box")
    assert boxes.count() == len(photo.boxes) == 3
    shown = page.locator("#photo-image").bounding_box()
    scale = 2400 / shown["width"]
    for i, truth in enumerate(photo.boxes):
        b = boxes.nth(i).bounding_box()
        box = [(b["x"] - shown["x"]) * scale, (b["y"] - shown["y"]) * scale,
               (b["x"] + b["width"] - shown["x"]) * scale, (b["y"] + b["height"] - shown["y"]) * scale]
        assert iou(box, truth) > 0.5, (i, box, truth)
        assert boxes.nth(i).inner_text() == answer["text"][i]  # the digit, or ? for a mark read as none
        refused = answer["digits"][i]["digit"] is None
        assert ("refused" in boxes.nth(i).get_attribute("class")) == refused  # marked, not left out
    refused = [d for d in answer["digits"] if d["digit"] is None]
    assert page.locator("#verdict").is_visible() == bool(refused)  # said in words too, not only as "?"
    if refused:
        said = f"{len(refused)} of 3 marks not read as one digit: ? in the number."
        assert page.locator("#verdict").inner_text() == said
    assert page.locator("#digits button").count() == 3
    page.screenshot(path=str(tmp_path / "app-read.png"), full_page=True)
    assert Image.open(tmp_path / "app-read.png").size[0] >= 1200

    # A photo of blank paper: the page says there is no digit in it, rather than guessing one.
    page_photo = make_photos(1, seed=0, lengths=(3,), size=(2400, 1800), lines="plain", edge="none")[0]
    above = min(box[1] for box in page_photo.boxes) - 20  # the page above the number: paper only
    Image.fromarray(page_photo.image[:above]).save(tmp_path / "blank.jpg", quality=92)
    page.set_input_files("#upload", str(tmp_path / "blank.jpg"))
    page.wait_for_function("() => document.querySelector('#source').textContent === 'Read from blank.jpg.'")
    assert page.locator("#verdict").inner_text().startswith("No digit found in blank.jpg")
    assert page.locator("#prediction").inner_text() == "–" and page.locator("#boxes .box").count() == 0
    assert page.locator("#photo-image").is_visible()  # the photo is still shown
    assert page.problems == ["Failed to load resource: the server responded with a status of 422 "
                             "(Unprocessable Entity)"]  # Chromium logs the answer "no digit found" itself
    page.problems.clear()

    # Generate from a new seed: the grid is replaced by a 4x4 grid of 28 px digits.
    first = page.get_attribute("#grid", "src")
    page.fill("#seed", "5")
    page.click("#generate")
    page.wait_for_function("first => (g => g.src !== first && g.complete && g.naturalWidth > 0)"
                           "(document.querySelector('#grid'))", arg=first)
    assert page.eval_on_selector("#grid", "g => [g.naturalWidth, g.naturalHeight]") == [122, 122]

    # Ask for sevens: choosing the digit redraws the grid, and it is the API's grid of sevens from seed 5.
    first = page.get_attribute("#grid", "src")
    page.select_option("#digit", "7")
    page.wait_for_function("first => (g => g.src !== first && g.complete && g.naturalWidth > 0)"
                           "(document.querySelector('#grid'))", arg=first)
    shown = page.evaluate("""() => { const g = document.querySelector('#grid'), c = document.createElement('canvas');
        c.width = g.naturalWidth; c.height = g.naturalHeight; const x = c.getContext('2d'); x.drawImage(g, 0, 0);
        return Array.from(x.getImageData(0, 0, c.width, c.height).data.filter((_, i) => i % 4 === 0)); }""")
    sevens = Image.open(io.BytesIO(httpx.get(f"{base_url}/api/generate?n=16&seed=5&digit=7").content))
    np.testing.assert_array_equal(np.reshape(shown, (122, 122)), np.asarray(sevens.convert("L")))
    assert "7s" in page.get_attribute("#grid", "alt")

    # Walk to the end of the latent path with the keyboard: the frame is seed 2's digit (the form's default).
    page.focus("#walk")
    page.keyboard.press("End")
    frame = page.evaluate("""() => Array.from(document.querySelector('#walk-frame').getContext('2d')
                                .getImageData(0, 0, 28, 28).data.filter((_, i) => i % 4 === 0))""")
    walk = httpx.get(f"{base_url}/api/interpolate?seed_a=1&seed_b=2&steps=16&format=json").json()["images"]
    np.testing.assert_array_equal(np.reshape(frame, (28, 28)), walk[-1])

    assert "test accuracy" in page.locator("#models").inner_text()
    page.screenshot(path=str(tmp_path / "app.png"), full_page=True)
    assert Image.open(tmp_path / "app.png").size[0] >= 1200
    assert page.problems == [], "\n".join(page.problems)

    # A seed the API refuses (the form would not submit it; choosing a digit sends it anyway): FastAPI's 422, a
    # list of errors, reads as a sentence on the page.
    page.fill("#seed", "-1")
    page.select_option("#digit", "3")
    page.wait_for_selector("#error:not([hidden])")
    assert page.locator("#error").inner_text() == (
        "Could not generate: 422: seed: Input should be greater than or equal to 0")
    assert [problem for problem in page.problems if "422" not in problem] == []  # Chromium logs the 422 itself
