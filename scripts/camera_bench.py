"""Readings a second of the page's live camera (issue #26): the real server (`mnistlab serve`) and Chromium on
this machine, Chromium's fake camera playing a clip of photographed numbers at about 0.5 MP.

    python scripts/camera_bench.py --cnn RUN [--seconds 20] [--numbers 4]

The clip holds each of `--numbers` photos of a 3-5 digit number (made by `mnistlab.photo.synth` from the
official test digits, 800x600) for one second of drifting frames, looping. The page reads one frame at a
time, the next taken when the last answer is back. Printed: readings a second over the whole run, the
page's own 3-second rate sampled each second (median and 10th-90th percentile), and the share of readings
whose number matches the photo shown at the time it was taken (the clip loops, so this is approximate).
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from mnistlab.photo.synth import make_photos, write_y4m

CHROMIUM = "/usr/bin/chromium"
FPS = 10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cnn", required=True, help="the CNN run to serve")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--numbers", type=int, default=4)
    args = parser.parse_args()
    photos = make_photos(args.numbers, seed=0, lengths=(3, 4, 5), size=(800, 600), digits="mnist", edge="none")
    frames = [np.roll(p.image, (k % 5, k % 7), axis=(0, 1)) for p in photos for k in range(FPS)]
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "mnistlab", "serve", "--cnn", args.cnn, "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        with tempfile.TemporaryDirectory() as scratch:
            clip = Path(scratch) / "numbers.y4m"
            write_y4m(clip, frames, FPS)
            measure(url, clip, args.seconds, [p.text for p in photos])
    finally:
        server.terminate()
        server.wait()


def measure(url: str, clip: Path, seconds: float, texts: list[str]) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={clip}"])
        page = browser.new_page(viewport={"width": 1200, "height": 1000})
        page.goto(url)
        page.wait_for_selector("#models dt")
        readings: list[tuple[float, int]] = []
        page.on("response", lambda r: r.url.endswith("/api/read") and readings.append((time.monotonic(), r.status)))
        page.click("#camera")
        page.wait_for_function("() => Number(document.querySelector('#camera-status').dataset.rate) > 0",
                               timeout=60000)
        start, rates, shown = time.monotonic(), [], []
        count_at_start = len(readings)
        while time.monotonic() - start < seconds:
            page.wait_for_timeout(1000)
            rates.append(float(page.locator("#camera-status").get_attribute("data-rate")))
            shown.append(page.locator("#prediction").inner_text())
        elapsed = time.monotonic() - start
        n = len(readings) - count_at_start
        browser.close()
    p10, p50, p90 = np.percentile(rates, [10, 50, 90])
    print(f"{n} readings in {elapsed:.1f} s: {n / elapsed:.2f} readings a second; the page's rate each second: "
          f"median {p50:.2f} (p10 {p10:.2f}, p90 {p90:.2f}); numbers on screen that are one of the clip's "
          f"{len(texts)}: {np.mean([s in texts for s in shown]):.2f}")


if __name__ == "__main__":
    main()
