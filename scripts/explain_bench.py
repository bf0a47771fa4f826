"""Milliseconds to explain one digit (issue #26): `Classifier.explain` on official test digits, the answer's and
the runner-up's integrated-gradient maps, and how closely each answer map adds up to its logit's change from a
blank image (integrated gradients' completeness: the error falls as `mnistlab.explain.STEPS` grows).

    python scripts/explain_bench.py --run RUN [--digits 200]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mnistlab.data.datasets import load_dataset
from mnistlab.explain import STEPS
from mnistlab.inference import load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--digits", type=int, default=200)
    args = parser.parse_args()
    classifier = load(args.run)
    test = load_dataset("mnist", splits=("test",)).test
    images = test.images[: args.digits].numpy().astype(np.float32) / 255
    times, errors = [], []
    for image in images:
        start = time.perf_counter()
        why = classifier.explain(image, framed=True)
        times.append(time.perf_counter() - start)
        x = torch.as_tensor(image).reshape(1, 1, 28, 28)
        with torch.no_grad():
            change = (classifier.model(x) - classifier.model(torch.zeros_like(x)))[0, why["digit"]].item()
        errors.append(abs(np.sum(why["attribution"]) - change) / abs(change))
    ms = 1000 * np.array(times[5:])  # the first few warm up
    print(f"{args.run}: {torch.get_num_threads()} threads, {STEPS} steps, {len(ms)} digits: "
          f"{np.median(ms):.0f} ms a digit (p10 {np.percentile(ms, 10):.0f}, p90 {np.percentile(ms, 90):.0f}); "
          f"completeness error median {np.median(errors):.3f}, p90 {np.percentile(errors, 90):.3f}")


if __name__ == "__main__":
    main()
