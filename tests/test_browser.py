"""The page in a real Chromium, against a real uvicorn server on loopback, on the real tiny runs.

Draws a digit with mouse strokes and checks that what the page shows is what the API answers for what the page
sent; uploads a real digit; generates; walks the latent space from the keyboard; shows a refusal readably.
"""

import io
import json
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from mnistlab.inference import load

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (`make browser` gets it)"),
]


@pytest.fixture(scope="module")
def base_url(cnn_run, gan_run):
    """A real uvicorn server on a free loopback port, in a background thread, serving the fixture runs."""
    import uvicorn

    from mnistlab.serve.app import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # bound here and handed over: no race for the port
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(create_app(cnn_run.dir, gan_run.dir), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield url
    server.should_exit = True
    thread.join(timeout=10)


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


def settle(page, predict_requests, quiet_s=0.4, timeout_s=10):
    """Wait until the page has sent no prediction request for `quiet_s` and has none in flight."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        count = len(predict_requests)
        page.wait_for_timeout(quiet_s * 1000)
        if len(predict_requests) == count and all(r.response() for r in predict_requests):
            return
    raise AssertionError("the page kept sending predictions")


def test_draw_upload_generate_and_walk(page, base_url, cnn_run, tiny_data, tmp_path):
    requests = []
    page.on("request", lambda r: r.url.endswith("/api/predict/pixels") and requests.append(r))

    # Draw a "1": one stroke down the middle, as a person would with a mouse.
    box = page.locator("#canvas").bounding_box()
    x, top = box["x"] + box["width"] * 0.52, box["y"] + box["height"] * 0.15
    page.mouse.move(x, top)
    page.mouse.down()
    page.mouse.move(x - box["width"] * 0.06, box["y"] + box["height"] * 0.85, steps=25)
    page.mouse.up()
    settle(page, requests)
    assert len(requests) >= 2  # it predicted while drawing, not only at the end

    # What the page shows is the API's answer for what the page last sent.
    sent = json.loads(requests[-1].post_data)
    answer = httpx.post(f"{base_url}/api/predict/pixels", json=sent).json()
    assert page.locator("#prediction").inner_text() == answer["label"] == "1"
    bars = page.locator("#probabilities li")
    assert bars.count() == 10 and page.locator("#probabilities .bar").count() == 10
    assert bars.nth(answer["digit"]).get_attribute("class") == "top"
    shown = page.eval_on_selector_all("#probabilities .bar", """bars => bars.map(
        bar => bar.firstElementChild.getBoundingClientRect().width / bar.getBoundingClientRect().width)""")
    np.testing.assert_allclose(shown, answer["probabilities"], atol=0.01)  # as drawn, not only as styled
    seen = page.evaluate("""() => Array.from(document.querySelector('#seen').getContext('2d')
                               .getImageData(0, 0, 28, 28).data.filter((_, i) => i % 4 === 0))""")
    np.testing.assert_allclose(np.reshape(seen, (28, 28)), np.round(np.array(answer["image"]) * 255), atol=1)
    assert np.max(seen) == 255  # the 28x28 view is drawn, ink at full strength

    page.click("#clear")
    assert page.locator("#prediction").inner_text() == "–"

    # Upload a real test digit that the fixture model reads correctly.
    classifier = load(cnn_run.dir, kind="cnn", precision="fp32")
    digits, labels = tiny_data.test.images.numpy()[:20], tiny_data.test.labels.tolist()[:20]
    uploads = [Image.fromarray(255 - d).resize((112, 112)) for d in digits]  # dark on light, bigger: scanned
    results = classifier.predict(uploads)
    i = next(i for i, r in enumerate(results) if r["digit"] == labels[i] and labels[i] != 1)
    uploads[i].save(tmp_path / "digit.png")
    page.set_input_files("#upload", str(tmp_path / "digit.png"))
    page.wait_for_function("() => document.querySelector('#source').textContent === 'Read from digit.png.'")
    assert page.locator("#prediction").inner_text() == str(labels[i])

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
