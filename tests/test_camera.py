"""The page's live camera in a real Chromium whose fake camera plays a clip of a photographed number: it reads
the frames one at a time, draws the boxes and the number over the video, keeps a frame on Freeze, and says in
one line when there is no camera."""

import io

import numpy as np
import pytest
from PIL import Image
from test_browser import CHROMIUM, RecordingReads, answer_to, sent_file
from test_serve_start import serving

from mnistlab.photo.synth import make_photos, write_y4m

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (`make browser` gets it)"),
]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """One second of a camera held over a 3-digit number: 800x600 frames (0.48 MP), the page drifting a little."""
    photo = make_photos(1, seed=1, lengths=(3,), size=(800, 600), spacing="apart", edge="none")[0]
    frames = [np.roll(photo.image, (k % 5, k % 7), axis=(0, 1)) for k in range(10)]
    path = tmp_path_factory.mktemp("camera") / "number.y4m"
    write_y4m(path, frames)
    return path, photo


@pytest.fixture(scope="module")
def app(cnn_run):
    from mnistlab.serve.app import create_app

    return RecordingReads(create_app(cnn_run.dir, None))


def launch(playwright, *camera_args):
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=[
        "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", *camera_args])


def test_the_camera_reads_live_one_frame_at_a_time_and_freeze_keeps_one(app, clip):
    from playwright.sync_api import sync_playwright

    path, photo = clip
    with serving(app) as url, sync_playwright() as playwright:
        browser = launch(playwright, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                         f"--use-file-for-fake-video-capture={path}")
        page = browser.new_page(viewport={"width": 1200, "height": 1000})
        problems, in_flight, most = [], [0], [0]
        page.on("pageerror", lambda error: problems.append(str(error)))

        def started(request):
            if request.url.endswith("/api/read"):
                in_flight[0] += 1
                most[0] = max(most[0], in_flight[0])

        def ended(request):
            if request.url.endswith("/api/read"):
                in_flight[0] -= 1

        page.on("request", started)
        page.on("requestfinished", ended)
        page.on("requestfailed", ended)
        page.goto(url)
        page.wait_for_selector("#models dt")
        page.click("#camera")
        page.wait_for_function("() => document.querySelectorAll('#boxes .box').length === 3"
                               " && Number(document.querySelector('#camera-status').dataset.rate) > 0", timeout=30000)
        assert page.locator("#camera-video").is_visible() and page.locator("#photo-image").is_hidden()
        assert most[0] == 1  # one reading in flight at a time: the camera never queues up work
        sent = Image.open(io.BytesIO(sent_file(app.bodies[-1])))
        assert sent.format == "JPEG" and sent.size == (800, 600)  # 0.48 MP, as the camera gave it

        page.click("#freeze")
        page.wait_for_selector("#photo-image:not([hidden])")
        kept = len(app.bodies)
        page.wait_for_timeout(500)
        assert len(app.bodies) == kept  # frozen: nothing more is sent
        # The frame on display is the newest answered: the last sent, or the one before if that was in flight.
        answers = [answer_to(body, url)["text"] for body in app.bodies[-2:]]
        assert page.locator("#prediction").inner_text() in answers and all(len(text) == 3 for text in answers)
        assert page.locator("#boxes .box").count() == 3 and page.locator("#camera-video").is_hidden()
        assert page.locator("#camera").is_visible() and page.locator("#freeze").is_hidden()
        assert problems == []
        browser.close()


def test_without_a_camera_the_page_says_so_in_one_line(app):
    from playwright.sync_api import sync_playwright

    with serving(app) as url, sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page()
        page.add_init_script("Object.defineProperty(navigator, 'mediaDevices', {value: undefined})")  # none here
        page.goto(url)
        page.wait_for_selector("#models dt")
        page.click("#camera")
        status = page.locator("#camera-status")
        page.wait_for_function("() => document.querySelector('#camera-status').textContent !== ''")
        assert status.inner_text().startswith("No camera here") and "Upload a photo instead." in status.inner_text()
        assert page.locator("#upload").is_enabled() and page.locator("#camera-video").is_hidden()
        browser.close()


def test_black_or_blank_frames_are_no_digit_and_no_error(app, tmp_path):
    from playwright.sync_api import sync_playwright

    path = tmp_path / "dark.y4m"
    black, paper = np.zeros((600, 800, 3), np.uint8), np.full((600, 800, 3), 235, np.uint8)
    write_y4m(path, [black] * 5 + [paper] * 5)  # a covered lens, then empty paper
    with serving(app) as url, sync_playwright() as playwright:
        browser = launch(playwright, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                         f"--use-file-for-fake-video-capture={path}")
        page = browser.new_page()
        problems = []
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto(url)
        page.wait_for_selector("#models dt")
        page.click("#camera")
        page.wait_for_function("() => Number(document.querySelector('#camera-status').dataset.rate) > 0", timeout=30000)
        assert page.locator("#verdict").inner_text().startswith("No digit in view")
        assert page.locator("#error").is_hidden() and page.locator("#boxes .box").count() == 0 and problems == []
        assert page.locator("#freeze").is_visible()  # still reading, waiting for a digit
        browser.close()
