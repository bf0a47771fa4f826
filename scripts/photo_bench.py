"""How well trained CNNs read photos of digits and numbers (issue #12): the photos are made by
`mnistlab.data.photos` from the mnist-sample test split, never trained on.

    python scripts/photo_bench.py --runs runs/cnn-best-... runs/cnn-seed-... --photos 400 --numbers 200

For each run: single-digit accuracy (through `Classifier.predict`, the page-to-ink stage included), number
exact-match and digit-level accuracy (through `reading.read_number`), each by condition; milliseconds per
1-megapixel photo (page to digits, and the whole read); and the model's accuracy on the clean test digits.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from difflib import SequenceMatcher

import numpy as np
import torch

from mnistlab.data.datasets import load_dataset
from mnistlab.data.photos import make_photos
from mnistlab.evaluate import classify
from mnistlab.ink import digit_pieces, find_ink
from mnistlab.inference import Classifier, load
from mnistlab.preprocess import to_grey
from mnistlab.reading import read_number


def probabilities(model: Classifier, images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) MNIST-framed digits -> (N, 10) probabilities, without preprocessing them again."""
    logits, _ = classify(model.model, torch.as_tensor(images, dtype=torch.float32), model.device, model.dtype)
    return torch.softmax(logits, 1).numpy()


def by_condition(photos, scores: list[float]) -> dict[str, float]:
    """Mean score per condition value, e.g. {"lines=ruled": 0.97, ...}."""
    groups: dict[str, list[float]] = defaultdict(list)
    for photo, score in zip(photos, scores):
        for key, value in photo.conditions.items():
            groups[f"{key}={value}"].append(score)
    return {name: float(np.mean(values)) for name, values in sorted(groups.items())}


def digit_accuracy(truth: str, read: str) -> float:
    """The share of the true digits read right, in order (aligned, so a missed digit costs one)."""
    matched = sum(block.size for block in SequenceMatcher(None, truth, read, autojunk=False).get_matching_blocks())
    return matched / max(len(truth), len(read))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", required=True, help="CNN run directories or checkpoints")
    parser.add_argument("--photos", type=int, default=400, help="single-digit photos")
    parser.add_argument("--numbers", type=int, default=200, help="photos of 2-5 digit numbers")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)

    start = time.perf_counter()
    singles = make_photos(args.photos, seed=args.seed)
    numbers = make_photos(args.numbers, seed=args.seed + 1, lengths=(2, 3, 4, 5))
    print(f"{len(singles) + len(numbers)} photos made in {time.perf_counter() - start:.1f} s", flush=True)
    test = load_dataset("mnist-sample", splits=("test",)).test

    start = time.perf_counter()
    for photo in singles:
        digit_pieces(find_ink(to_grey(photo.image)))
    page_ms = (time.perf_counter() - start) / len(singles) * 1000

    rows = []
    for run in args.runs:
        model = load(run, kind="cnn")
        clean = float((probabilities(model, test.images.numpy() / 255).argmax(1) == test.labels.numpy()).mean())
        predicted = [model.predict(photo.image)[0]["digit"] for photo in singles]
        single = [float(p == photo.labels[0]) for p, photo in zip(predicted, singles)]
        start = time.perf_counter()
        texts = []
        for photo in numbers:
            try:
                texts.append(read_number(photo.image, lambda x: probabilities(model, x)).text)
            except Exception as e:  # a photo read as no digit counts as wrong, and says so
                texts.append("")
                print(f"  {photo.text}: {e}")
        read_ms = (time.perf_counter() - start) / len(numbers) * 1000
        exact = [float(t == photo.text) for t, photo in zip(texts, numbers)]
        digits = [digit_accuracy(photo.text, t) for t, photo in zip(texts, numbers)]
        rows.append((run, clean, np.mean(single), np.mean(exact), np.mean(digits), read_ms))
        print(f"\n## {run}\nclean test digits {clean:.4f}; single-digit photos {np.mean(single):.4f}; "
              f"numbers exact {np.mean(exact):.4f}, digits {np.mean(digits):.4f}; "
              f"page to digits {page_ms:.1f} ms, whole read {read_ms:.1f} ms per photo")
        print("| condition | single digit | number exact | number digits |\n|---|---|---|---|")
        s, e, d = by_condition(singles, single), by_condition(numbers, exact), by_condition(numbers, digits)
        for name in sorted(set(s) | set(e)):
            cells = [f"{t[name]:.3f}" if name in t else "–" for t in (s, e, d)]
            print(f"| {name} | " + " | ".join(cells) + " |")

    print("\n| run | clean test | single-digit photos | numbers exact | number digits | ms/photo read |")
    print("|---|---|---|---|---|---|")
    for run, clean, single, exact, digits, ms in rows:
        print(f"| {run} | {clean:.4f} | {single:.4f} | {exact:.4f} | {digits:.4f} | {ms:.0f} |")
    print(f"page to digits: {page_ms:.1f} ms per {singles[0].image.shape[1]}x{singles[0].image.shape[0]} photo")


if __name__ == "__main__":
    main()
