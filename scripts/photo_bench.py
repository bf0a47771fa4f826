"""How well trained CNNs read photos of digits and numbers (issue #12): the photos are made by
`mnistlab.photo.synth` from the official MNIST test split (--digits), never trained on.

    python scripts/photo_bench.py --runs runs/cnn-best-... runs/cnn-seed-... --photos 400 --numbers 200 --seed 0

Everything goes through what users run: `mnistlab.inference.load(RUN)`, `.predict` for single digits and
`.read` for numbers. For each run: single-digit accuracy, number exact-match and digit-level accuracy, each by
condition and by length (2–5 digits is the issue's target; 6 is reported on its own), how many blank pages
(empty paper: plain, ruled or squared, under the same light, shadow, table edge and camera) are read as a
number instead of "no digit found", milliseconds per 1-megapixel photo (page to digits, and the whole read:
median and 10th–90th percentile over the photos), and the same model's accuracy on the clean test digits.
Seed S draws single digits from stream 2S and numbers and blank pages from 2S+1, so two seeds never share a
photo: develop on --seed 1, report --seed 0.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from difflib import SequenceMatcher
from typing import Callable

import numpy as np
import torch

from mnistlab.data.datasets import load_dataset
from mnistlab.inference import load
from mnistlab.photo.frame import to_grey
from mnistlab.photo.ink import digit_pieces, find_ink
from mnistlab.photo.synth import Photo, make_blank_pages, make_photos


def by_condition(photos: list[Photo], scores: list[float]) -> dict[str, float]:
    """Mean score per condition value and per length, e.g. {"lines=ruled": 0.97, "length=4": 0.9, ...}."""
    groups: dict[str, list[float]] = defaultdict(list)
    for photo, score in zip(photos, scores):
        for key, value in [*photo.conditions.items(), ("length", str(len(photo.labels)))]:
            groups[f"{key}={value}"].append(score)
    return {name: float(np.mean(values)) for name, values in sorted(groups.items())}


def digit_accuracy(truth: str, read: str) -> float:
    """The share of the true digits read right, in order (aligned, so a missed digit costs one)."""
    matched = sum(block.size for block in SequenceMatcher(None, truth, read, autojunk=False).get_matching_blocks())
    return matched / max(len(truth), len(read))


def timed(function: Callable[[Photo], object], photos: list[Photo]) -> tuple[list[object], np.ndarray]:
    """Each photo's result and milliseconds."""
    results, times = [], []
    for photo in photos:
        start = time.perf_counter()
        results.append(function(photo))
        times.append((time.perf_counter() - start) * 1000)
    return results, np.array(times)


def spread(ms: np.ndarray) -> str:
    return f"{np.median(ms):.0f} ms ({np.percentile(ms, 10):.0f}–{np.percentile(ms, 90):.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", required=True, help="CNN run directories or checkpoints")
    parser.add_argument("--photos", type=int, default=400, help="single-digit photos")
    parser.add_argument("--numbers", type=int, default=200, help="photos of 2-6 digit numbers")
    parser.add_argument("--blanks", type=int, default=80, help="photos of empty paper, which must read as no digit")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--digits", default="mnist", help="whose test split the photos are made of: mnist (the "
                        "official test digits) or mnist-sample (its 1,000 test digits are MNIST training digits)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    start = time.perf_counter()
    singles = make_photos(args.photos, seed=2 * args.seed, digits=args.digits)
    numbers = make_photos(args.numbers, seed=2 * args.seed + 1, lengths=(2, 3, 4, 5, 6), digits=args.digits)
    blanks = make_blank_pages(args.blanks, seed=2 * args.seed + 1)
    print(f"{len(singles) + len(numbers) + len(blanks)} photos made in {time.perf_counter() - start:.1f} s "
          f"(seed {args.seed}); {sum(len(p.labels) < 6 for p in numbers)} numbers of 2-5 digits, "
          f"{sum(len(p.labels) == 6 for p in numbers)} of 6, {len(blanks)} blank pages", flush=True)
    test = load_dataset(args.digits, splits=("test",)).test
    _, page_ms = timed(lambda p: digit_pieces(find_ink(to_grey(p.image))), singles + numbers)
    megapixels = singles[0].image.shape[0] * singles[0].image.shape[1] / 1e6

    rows = []
    for run in args.runs:
        model = load(run, kind="cnn")
        clean = float((model.probabilities(test.images.numpy()).argmax(1) == test.labels.numpy()).mean())
        # The likeliest digit, never "not a digit": how well it reads (scripts/ood_bench.py measures refusals)
        predicted = [d["digit"] for d in model.predict([photo.image for photo in singles], abstain=False)]
        single = [float(p == photo.labels[0]) for p, photo in zip(predicted, singles)]
        reads, read_ms = timed(lambda p: model.read(p.image, names=[p.text], abstain=False)[0], numbers)
        for read in reads:
            if "error" in read:  # a photo read as no digit counts as wrong, and says so
                print(f"  {read['file']}: {read['error']}")
        texts = [read.get("text", "") for read in reads]
        exact = [float(t == photo.text) for t, photo in zip(texts, numbers)]
        digits = [digit_accuracy(photo.text, t) for t, photo in zip(texts, numbers)]
        false_digits = sum("error" not in read for read in model.read([p.image for p in blanks], abstain=False))
        target = [len(photo.labels) < 6 for photo in numbers]
        rows.append((run, clean, np.mean(single), np.mean(np.compress(target, exact)),
                     np.mean(np.compress(target, digits)), np.mean(np.compress(np.logical_not(target), exact)),
                     false_digits, spread(read_ms)))
        print(f"\n## {run}\nclean test digits {clean:.4f}; single-digit photos {np.mean(single):.4f}; 2-5 digit "
              f"numbers exact {rows[-1][3]:.4f}, digits {rows[-1][4]:.4f}; 6 digits exact {rows[-1][5]:.4f}; "
              f"blank pages read as a number {false_digits} of {len(blanks)}; whole read {spread(read_ms)} per photo")
        print("| condition | single digit | number exact | number digits |\n|---|---|---|---|")
        s, e, d = by_condition(singles, single), by_condition(numbers, exact), by_condition(numbers, digits)
        for name in sorted(set(s) | set(e)):
            cells = [f"{t[name]:.3f}" if name in t else "–" for t in (s, e, d)]
            print(f"| {name} | " + " | ".join(cells) + " |")

    print("\n| run | clean test | single-digit photos | 2–5 digit numbers exact | their digits | 6 digits exact "
          "| blank pages read as a number | whole read per photo, median (p10–p90) |")
    print("|---|---|---|---|---|---|---|---|")
    for run, clean, single, exact, digits, six, false_digits, ms in rows:
        print(f"| {run} | {clean:.4f} | {single:.4f} | {exact:.4f} | {digits:.4f} | {six:.4f} | "
              f"{false_digits} of {len(blanks)} | {ms} |")
    print(f"page to digits: {spread(page_ms)} per {megapixels:.2f}-MP photo ({singles[0].image.shape[1]}x"
          f"{singles[0].image.shape[0]}), over all {len(page_ms)} photos")


if __name__ == "__main__":
    main()
