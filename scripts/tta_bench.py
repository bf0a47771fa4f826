"""Does averaging shifted copies of each digit help (test-time augmentation, issue #24)? For each CNN run: accuracy
on the validation split, where the choice is made, and on the test split, reported only; each with the
calibrated probabilities of the digit alone and averaged with it moved 1 px up, down, left and right.

    python scripts/tta_bench.py RUN... > results/tta-val-test.txt
"""

from __future__ import annotations

import argparse

import torch

from mnistlab.data.datasets import load_dataset
from mnistlab.inference import classify, load

SHIFTS = [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)]  # flips are not valid for digits; one pixel is MNIST's jitter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+")
    args = parser.parse_args()
    mnist = load_dataset("mnist")
    print("| run | val | val, 5 shifts | test | test, 5 shifts |")
    print("|---|---|---|---|---|")
    for run in args.runs:
        classifier = load(run)
        cells = []
        for split in (mnist.val, mnist.test):
            views = [torch.softmax(classify(classifier.model, torch.roll(split.images, shift, (1, 2)),
                                            classifier.device, classifier.dtype)[0] / classifier.temperature, 1)
                     for shift in SHIFTS]
            cells += [(views[0].argmax(1) == split.labels).float().mean().item(),
                      (sum(views).argmax(1) == split.labels).float().mean().item()]
        print(f"| {run} | " + " | ".join(f"{v:.4f}" for v in cells) + " |")


if __name__ == "__main__":
    main()
