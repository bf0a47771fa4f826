"""What an ensemble buys and costs: each member's and each ensemble's accuracy, ms per digit, ONNX size.

    python scripts/ensemble_bench.py RUN RUN RUN RUN RUN --ensembles 3 5 [--repeats 5]

The ensembles are of the first K runs, for each K of --ensembles (default: all of them). Accuracy on the
validation split, where choices are made, and on the test split (the runs' own: MNIST's official 10,000
for full-MNIST runs). Time per digit: the median over --repeats of classifying the whole test split in
batches (`Classifier.probabilities`, as predict and read use it), and of 100 digits one at a time. ONNX
size: as `mnistlab export` writes it.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from mnistlab import export_onnx, load, load_dataset


def ms_per_digit(classifier, digits: torch.Tensor, repeats: int, one_at_a_time: bool) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        if one_at_a_time:
            for digit in digits:
                classifier.probabilities(digit[None])
        else:
            classifier.probabilities(digits)
        times.append((time.perf_counter() - t0) / len(digits) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--ensembles", type=int, nargs="+", metavar="K", help="ensembles of the first K runs")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sizes = args.ensembles or [len(args.runs)]
    if not all(2 <= k <= len(args.runs) for k in sizes):
        parser.error(f"--ensembles: each K from 2 to the {len(args.runs)} runs given")
    dataset = load(args.runs[0]).dataset
    data = load_dataset(dataset, splits=("val", "test"))
    print(f"{torch.get_num_threads()} threads; {dataset}: validation {len(data.val)} digits, test {len(data.test)}")
    print("| model | val accuracy | test accuracy | ms per digit, batched | ms per digit, one at a time | ONNX MB |")
    print("|---|---|---|---|---|---|")
    names = [Path(run).name for run in args.runs]
    rows = [(name, [run]) for name, run in zip(names, args.runs)]
    rows += [(f"ensemble of {' + '.join(names[:k])}", args.runs[:k]) for k in sizes]
    with tempfile.TemporaryDirectory() as scratch:
        for name, runs in rows:
            model = runs if len(runs) > 1 else runs[0]
            classifier = load(model)
            val, test = (float((classifier.probabilities(split.images).argmax(1) == split.labels.numpy()).mean())
                         for split in (data.val, data.test))
            batched = ms_per_digit(classifier, data.test.images, args.repeats, one_at_a_time=False)
            single = ms_per_digit(classifier, data.test.images[:100], args.repeats, one_at_a_time=True)
            onnx = Path(scratch, "model.onnx")
            export_onnx(model, onnx)
            size = onnx.stat().st_size / 1e6
            print(f"| {name} | {val:.4f} | {test:.4f} | {batched:.3f} | {single:.2f} | {size:.1f} |", flush=True)


if __name__ == "__main__":
    main()
