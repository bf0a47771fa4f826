"""The page that needs no server, measured in Chromium (issue #26): `mnistlab export RUN --web` into a scratch
directory, the page opened from file:// offline, and every digit of the run's test split read in the page
with each reader the site holds (fp32, and INT8 when it held its accuracy at export).

    python scripts/static_site_bench.py RUN... [--limit N]

Printed, a Markdown row per run and reader: its size, test accuracy in the browser, the accuracy onnxruntime
measured at export, how many digits the browser reads otherwise than `predict` (fp32 PyTorch), how many it
answers otherwise (a digit, "unsure: a or b" or "not a digit", as the page shows it), the largest
probability gap to `predict`, and ms per digit (one digit per inference, as the page reads a drawing;
median of 5 runs of 200). All the run's test digits (n = 10,000 for MNIST) unless `--limit`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from playwright.sync_api import sync_playwright

from mnistlab import ood
from mnistlab.data.datasets import load_dataset
from mnistlab.inference import load
from mnistlab.static_site import export_web

CHROMIUM = "/usr/bin/chromium"
ASSESS = ("async (images) => { const out = []; "  # one at a time, as the page reads
          "for (const x of images) { const a = await mnistlab.assess(x); out.push([a, mnistlab.answer(a)]); } "
          "return out; }")
CHUNK = 500  # digits per call into the page


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="CNN runs (or ensembles), each measured in turn")
    parser.add_argument("--limit", type=int, default=None, help="only the first N test digits")
    args = parser.parse_args()
    print("| run | reader | KB | browser accuracy | onnxruntime at export | read otherwise than predict | "
          "answered otherwise | max abs p - predict | ms a digit |")
    print("|---|---|---|---|---|---|---|---|---|")
    for run in args.runs:
        for row in measure(run, args.limit):
            print("| " + " | ".join(row) + " |", flush=True)


def measure(run: str, limit: int | None) -> list[list[str]]:
    """One row per reader of `run`'s static site."""
    classifier = load(run, precision="fp32")
    test = load_dataset(classifier.dataset, splits=("test",)).test
    images, labels = test.images.numpy()[:limit], test.labels.numpy()[:limit]
    expected, digitness = classifier.assess(images)
    answers = [ood.answer(d, p, classifier.classes) for p, d in zip(expected, digitness)]
    answers = [(None if digit is None else classifier.classes[digit], reason) for digit, reason in answers]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        site = Path(scratch) / "site"
        described = export_web(run, site)  # as `mnistlab export RUN --web DIR` writes it
        pixels = (images.reshape(len(images), -1) / 255).round(6).tolist()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
                "--headless", "--no-sandbox", "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>"])
            page = browser.new_page()
            page.goto((site / "index.html").as_uri())
            page.wait_for_function("() => window.mnistlab", timeout=60000)
            page.evaluate("() => window.mnistlab.ready")
            for model in described["reader"]["models"]:
                page.evaluate("(name) => window.mnistlab.use(name)", model["name"])
                assessed = [a for i in range(0, len(pixels), CHUNK) for a in page.evaluate(ASSESS, pixels[i:i + CHUNK])]
                shown = np.array([a["probabilities"] for a, _ in assessed])
                answered = sum((said["label"], said["reason"]) != expected_answer
                               for (_, said), expected_answer in zip(assessed, answers))
                times = []
                for _ in range(5):
                    start = time.perf_counter()
                    page.evaluate(ASSESS, pixels[:200])
                    times.append((time.perf_counter() - start) / 200 * 1000)
                read = shown.argmax(1)
                rows.append([Path(run).name, model["name"], f"{model['bytes'] / 1024:,.0f}",
                             f"{(read == labels).mean():.4f}", f"{model.get('test_acc', float('nan')):.4f}",
                             str((read != expected.argmax(1)).sum()), str(answered),
                             f"{np.abs(shown - expected).max():.2e}", f"{np.median(times):.1f}"])
            browser.close()
    return rows

if __name__ == "__main__":
    main()
