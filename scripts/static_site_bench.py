"""The page that needs no server, measured in Chromium (issue #26): `mnistlab export RUN --web` into a scratch
directory, the page opened from file:// offline, and every digit of the run's test split read in the page
with each reader the site holds (fp32, and INT8 when it held its accuracy at export).

    python scripts/static_site_bench.py RUN [--limit N]

Printed, per reader: its size, test accuracy in the browser, the accuracy onnxruntime measured at export,
how many digits the browser reads otherwise than `predict` (fp32 PyTorch), the largest probability gap to
`predict`, and ms per digit (one digit per inference, as the page reads a drawing; median of 5 runs of 200).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from playwright.sync_api import sync_playwright

from mnistlab.data.datasets import load_dataset
from mnistlab.inference import load

CHROMIUM = "/usr/bin/chromium"
CLASSIFY = ("async (images) => { const out = []; "  # one at a time, as the page reads
            "for (const x of images) out.push(await window.mnistlab.classify(x)); return out; }")
CHUNK = 500  # digits per call into the page


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a CNN run (or ensemble)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N test digits")
    args = parser.parse_args()
    classifier = load(args.run, precision="fp32")
    test = load_dataset(classifier.dataset, splits=("test",)).test
    images, labels = test.images.numpy()[:args.limit], test.labels.numpy()[:args.limit]
    expected = classifier.probabilities(images)
    with tempfile.TemporaryDirectory() as scratch:
        site = Path(scratch) / "site"
        subprocess.run([sys.executable, "-m", "mnistlab", "export", args.run, "--web", str(site)], check=True)
        described = json.loads((site / "site.js").read_text().removeprefix("window.MNISTLAB_SITE = ").rstrip()[:-1])
        pixels = (images.reshape(len(images), -1) / 255).round(6).tolist()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
                "--headless", "--no-sandbox", "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>"])
            page = browser.new_page()
            page.goto((site / "index.html").as_uri())
            page.wait_for_function("() => window.mnistlab", timeout=60000)
            page.evaluate("() => window.mnistlab.ready")
            print(f"{len(images)} test digits of {classifier.dataset}, read in Chromium from file:// "
                  f"(onnxruntime-web, 1 thread)")
            print(f"{'reader':8} {'KB':>6} {'browser acc':>12} {'export acc':>11} {'!= predict':>11} "
                  f"{'max |p - predict|':>18} {'ms/digit':>9}")
            for model in described["reader"]["models"]:
                page.evaluate("(name) => window.mnistlab.use(name)", model["name"])
                shown = np.concatenate([page.evaluate(CLASSIFY, pixels[i:i + CHUNK])
                                        for i in range(0, len(pixels), CHUNK)])
                times = []
                for _ in range(5):
                    start = time.perf_counter()
                    page.evaluate(CLASSIFY, pixels[:200])
                    times.append((time.perf_counter() - start) / 200 * 1000)
                read, exported = shown.argmax(1), model.get("test_acc", float("nan"))
                print(f"{model['name']:8} {model['bytes'] / 1024:6.0f} {(read == labels).mean():12.4f} "
                      f"{exported:11.4f} {(read != expected.argmax(1)).sum():11d} "
                      f"{np.abs(shown - expected).max():18.2e} {np.median(times):9.2f}")
            browser.close()


if __name__ == "__main__":
    main()
