"""What an ensemble buys and costs: each member's and the ensemble's test accuracy, ms per digit, ONNX size.

    python scripts/ensemble_bench.py RUN RUN RUN [--repeats 5]

Accuracy on the dataset's test split (the runs' own: MNIST's official 10,000 for full-MNIST runs); time per
digit as the median over --repeats of classifying the whole test split in batches (`Classifier.probabilities`,
as predict and read use it), and of one digit at a time (100 digits); ONNX size as `mnistlab export` writes it.
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
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    members = [load(run) for run in args.runs]
    test = load_dataset(members[0].dataset, splits=("test",)).test
    print(f"{torch.get_num_threads()} threads; test split of {members[0].dataset}: {len(test)} digits")
    print("| model | test accuracy | ms per digit, batched | ms per digit, one at a time | ONNX MB |")
    print("|---|---|---|---|---|")
    rows = [(Path(run).name, [run]) for run in args.runs] + [(f"ensemble of {len(args.runs)}", args.runs)]
    with tempfile.TemporaryDirectory() as scratch:
        for name, runs in rows:
            classifier = load(runs if len(runs) > 1 else runs[0])
            accuracy = (classifier.probabilities(test.images).argmax(1) == test.labels.numpy()).mean()
            batched = ms_per_digit(classifier, test.images, args.repeats, one_at_a_time=False)
            single = ms_per_digit(classifier, test.images[:100], args.repeats, one_at_a_time=True)
            onnx = Path(scratch, "model.onnx")
            export_onnx(runs if len(runs) > 1 else runs[0], onnx)
            print(f"| {name} | {accuracy:.4f} | {batched:.3f} | {single:.2f} | {onnx.stat().st_size / 1e6:.1f} |")


if __name__ == "__main__":
    main()
