"""The README's CNN results table: every preset, several seeds, mean ± sd of the final test accuracy.

    python scripts/cnn_results.py --dataset mnist-sample --seeds 0 1 2
    python scripts/cnn_results.py --dataset fashion-mnist --presets best --seeds 0

Runs go under a temporary directory (or --out); the table is printed as Markdown.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
from pathlib import Path

import torch

import mnistlab
from mnistlab.config import CNN_PRESETS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist-sample")
    parser.add_argument("--presets", nargs="+", default=list(CNN_PRESETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", help="directory for the runs (default: a temporary one)")
    args = parser.parse_args()

    data = mnistlab.load_dataset(args.dataset)
    out = Path(args.out or tempfile.mkdtemp(prefix="mnistlab-results-"))
    rows = []
    for name in args.presets:
        accs, times = [], []
        for seed in args.seeds:
            run = mnistlab.train_classifier(name, data, seed=seed, out=str(out / f"{name}-{seed}"), progress=False)
            accs.append(run.metrics[-1]["test_acc"])
            times.append(sum(m["time_s"] for m in run.metrics))
            print(f"{name} seed {seed}: test acc {accs[-1]:.4f} in {times[-1]:.0f}s", flush=True)
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        rows.append(f"| {name} | {len(run.metrics)} | {statistics.mean(accs):.4f} ± {sd:.4f} | "
                    f"{min(accs):.4f}–{max(accs):.4f} | {statistics.median(times):.0f} s |")
    print(f"\n{data.name}: {len(data.train.images)} train / {len(data.test.images)} test; seeds {args.seeds}; "
          f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    print("| preset | epochs | test accuracy (mean ± sd) | min–max | training time (median) |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
