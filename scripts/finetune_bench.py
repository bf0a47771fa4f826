"""Fine-tuning a reader to one hand (issue #27): accuracy on one writer's held-out digits, and on MNIST's
official test split, before and after `train cnn --from RUN` on 10, 20 and 50 of that writer's digits.

    python scripts/finetune_bench.py --run RUN [--seeds 0 1 2] [--tune all head]
    python scripts/finetune_bench.py --run RUN --lrs 3e-5 1e-4 3e-4 1e-3 [--samples 20]

A "writer" is one handwriting style made by augmentation and held fixed for all their digits: a slant and a
thick pen; narrow, leaning digits in a thin pen; or a wavy hand (one elastic field for every digit). Their
digits are MNIST's *validation* digits (never trained on by the run, and not the test split) in that
style, framed as `predict` frames an image. For each writer and size, `--seeds` draws of that many digits
(stratified, the same number of each class); the writer's held-out digits are 1,000 others. Fine-tuning is
the documented recipe (`docs/training.md`): the run's weights, a low learning rate, half of each batch
replayed from MNIST's training digits so the reader keeps other writers. `--tune` trains every layer
("all", the recipe), the last layer only ("head"), or each in turn, side by side on the same draws.

`--lrs` compares learning rates instead, where a choice may be made: on 1,000 more of each writer's digits
(neither held out nor drawn from) and on MNIST's validation split, never on the test digits.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch

from mnistlab.data.datasets import Dataset, Split, load_dataset
from mnistlab.inference import load
from mnistlab.photo.frame import frame_digit
from mnistlab.train.classifier import FINE_TUNE, fine_tune

SIZES = (10, 20, 50)
HELD_OUT = 1000


def writer_style(writer: int, digits: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) digits in one writer's style, framed as MNIST frames digits."""
    size = 56  # drawn at twice the size, so the pen and the warp are smooth
    big = [cv2.resize(d, (size, size), interpolation=cv2.INTER_CUBIC) for d in digits]
    centre = size / 2
    if writer == 0:  # a strong forward slant and a thick pen
        warp = np.float32([[1, -0.45, 0.45 * centre], [0, 1, 0]])
        styled = [cv2.dilate(cv2.warpAffine(d, warp, (size, size)), np.ones((3, 3), np.uint8)) for d in big]
    elif writer == 1:  # narrow, leaning back, a thin pen
        warp = cv2.getRotationMatrix2D((centre, centre), 18, 1.0) @ np.vstack(
            [np.float32([[0.6, 0, 0.4 * centre], [0, 1, 0]]), [0, 0, 1]])
        styled = [cv2.erode(cv2.warpAffine(d, warp.astype(np.float32), (size, size)), np.ones((2, 2), np.uint8))
                  for d in big]
    else:  # a wavy hand: the same elastic field for every digit
        rng = np.random.default_rng(writer)
        dx, dy = (cv2.GaussianBlur(rng.uniform(-1, 1, (size, size)).astype(np.float32), (0, 0), 6) * 120
                  for _ in range(2))
        grid_x, grid_y = np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32))
        styled = [cv2.remap(d, grid_x + dx, grid_y + dy, cv2.INTER_LINEAR) for d in big]
    return np.stack([np.round(frame_digit(d.astype(np.float32) / 255) * 255).astype(np.uint8) for d in styled])


def accuracy(run: str | Path, split: Split) -> float:
    classifier = load(run)
    return float((classifier.probabilities(split.images).argmax(1) == split.labels.numpy()).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="the CNN run to fine-tune (trained on full MNIST)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tune", nargs="+", choices=["all", "head"], default=["all"], help="layers trained")
    parser.add_argument("--lrs", type=float, nargs="+", help="compare these learning rates (validation digits only)")
    parser.add_argument("--samples", type=int, default=20, help="with --lrs: digits of the writer fine-tuned on")
    args = parser.parse_args()
    if args.samples % 10 or args.samples <= 0:
        parser.error("--samples: a multiple of 10, the same number of each digit")
    mnist = load_dataset("mnist")
    val_images, val_labels = mnist.val.images.numpy(), mnist.val.labels.numpy()
    # --lrs chooses, so it measures on validation digits; the tables of record measure on the test digits.
    mnist_check = mnist.val if args.lrs else mnist.test
    mnist_before = accuracy(args.run, mnist_check)
    settings = [(args.samples, "all", lr) for lr in args.lrs] if args.lrs else \
        [(size, tune, FINE_TUNE["lr"]) for size, tune in itertools.product(SIZES, args.tune)]
    varied, writer_split, mnist_split = ("learning rate", "validation", "validation") if args.lrs else \
        ("layers", "held-out", "test")
    print(f"{args.run}: MNIST {mnist_split} {mnist_before:.4f}; recipe {FINE_TUNE}; {torch.get_num_threads()} threads")
    print(f"| writer | samples | {varied} | n | writer's {writer_split} digits, before | after | "
          f"MNIST {mnist_split}, before | after |")
    print("|---|---|---|---|---|---|---|---|")
    for writer, name in enumerate(("slanted, thick pen", "narrow, leaning back, thin pen", "wavy")):
        order = np.random.default_rng([writer, 99]).permutation(len(val_images))
        # The first 1,000 are held out (the test of record), the next 1,000 validate (--lrs); the rest are drawn from.
        checked = order[HELD_OUT:2 * HELD_OUT] if args.lrs else order[:HELD_OUT]
        check = Split(torch.from_numpy(writer_style(writer, val_images[checked])),
                      torch.from_numpy(val_labels[checked]))
        before = accuracy(args.run, check)
        pool = order[2 * HELD_OUT:] if args.lrs else order[HELD_OUT:]
        for size, tune, lr in settings:
            after, mnist_after = [], []
            for seed in args.seeds:
                rng = np.random.default_rng([writer, size, seed])
                picks = np.concatenate([rng.choice(pool[val_labels[pool] == c], size // 10, replace=False)
                                        for c in range(10)])
                samples = Split(torch.from_numpy(writer_style(writer, val_images[picks])),
                                torch.from_numpy(val_labels[picks]))
                data = Dataset(f"writer-{writer}", samples, None, check, mnist.classes,
                               {"name": f"writer-{writer}", "files": {}}, None)
                with tempfile.TemporaryDirectory() as scratch:
                    run = fine_tune(args.run, data, seed=seed, tune=tune, lr=lr, out=f"{scratch}/run",
                                    progress=False)
                    after.append(accuracy(run.dir, check))
                    mnist_after.append(accuracy(run.dir, mnist_check))
            print(f"| {name} | {size} | {f'{lr:g}' if args.lrs else tune} | {len(args.seeds)} | {before:.3f} | "
                  f"{_spread(after)} | {mnist_before:.4f} | {_spread(mnist_after, 4)} |", flush=True)


def _spread(values: list[float], places: int = 3) -> str:
    sd = f" ± {statistics.stdev(values):.{places}f}" if len(values) > 1 else ""
    return f"{statistics.fmean(values):.{places}f}{sd}"


if __name__ == "__main__":
    main()
