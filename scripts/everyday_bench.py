"""The everyday run, each timed as a whole process (issue #24, part 4): `mnistlab train cnn --preset seed
--dataset fashion-mnist --epochs 3` against the same network trained the PyTorch example's way, run
alternately, each a fresh Python process from start to exit, and the profile of ours by phase.

    python scripts/everyday_bench.py [--runs 3] [--epochs 3]

- ours: the command above, as a new user types it (a run directory with its checkpoint, metrics, plots,
  calibration and digitness);
- the PyTorch example's way (`--reference`, this file run as a script): the seed preset's network
  (`mnistlab.build_cnn("seed")`), Fashion-MNIST's IDX files decoded with NumPy, a DataLoader over a
  TensorDataset of per-sample float tensors (batch 100, shuffled), Adam at the preset's 1e-3, fp32, the
  same 55,000 training images and 3 epochs, then the test accuracy printed; nothing written.

Printed: each process's seconds and test accuracy, their medians and spreads, the ratio of medians, and
where ours spends its time (cProfile of one more run: imports, data, training steps, the per-epoch
evaluation, checkpoints, calibration and digitness, the final report and its plots).
"""

from __future__ import annotations

import argparse
import gzip
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FASHION = Path("/usr/share/datasets/fashion-mnist")
PHASES = {  # where ours spends its time: (module path suffix, function), cumulative seconds in cProfile
    "data (decode, split)": ("mnistlab/data/datasets.py", "load_dataset"),
    "training steps": ("mnistlab/train/classifier.py", "step"),
    "per-epoch evaluation": ("mnistlab/train/classifier.py", "end_epoch"),
    "checkpoints": ("mnistlab/checkpoint.py", "save_checkpoint"),
    "calibration and digitness": ("mnistlab/evaluate.py", "fit_answers"),
    "final report and plots": ("mnistlab/train/classifier.py", "write_report"),
    "optimiser set-up": ("mnistlab/train/optim.py", "adam"),
}


def reference(epochs: int) -> None:
    """The same network trained the PyTorch example's way; prints the test accuracy."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from mnistlab import build_cnn

    def idx(name: str) -> np.ndarray:
        data = gzip.decompress((FASHION / name).read_bytes())
        return np.frombuffer(data, np.uint8, offset=16 if "images" in name else 8)

    x = torch.tensor(idx("train-images-idx3-ubyte.gz").reshape(-1, 1, 28, 28)[5000:], dtype=torch.float32) / 255
    y = torch.tensor(idx("train-labels-idx1-ubyte.gz")[5000:], dtype=torch.long)
    test_x = torch.tensor(idx("t10k-images-idx3-ubyte.gz").reshape(-1, 1, 28, 28), dtype=torch.float32) / 255
    test_y = torch.tensor(idx("t10k-labels-idx1-ubyte.gz"), dtype=torch.long)
    torch.manual_seed(0)
    model = build_cnn("seed")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=100, shuffle=True)
    for _ in range(epochs):
        model.train()
        for images, labels in loader:
            optimizer.zero_grad()
            F.cross_entropy(model(images), labels).backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        correct = sum((model(test_x[i:i + 1000]).argmax(1) == test_y[i:i + 1000]).sum().item()
                      for i in range(0, len(test_x), 1000))
    print(f"test accuracy {correct / len(test_x):.4f}")


def ours(epochs: int, out: Path, profile: Path | None = None) -> list[str]:
    command = [sys.executable] + (["-m", "cProfile", "-o", str(profile)] if profile else []) + [
        "-m", "mnistlab", "train", "cnn", "--preset", "seed", "--dataset", "fashion-mnist", "--epochs", str(epochs),
        "--out", str(out), "--no-progress"]
    return command


def timed(command: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, done.stdout


def accuracy(output: str) -> float:
    return float(output.split("test accuracy ")[1].split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--reference", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference:
        return reference(args.epochs)
    times: dict[str, list[float]] = {"ours": [], "example's way": []}
    with tempfile.TemporaryDirectory() as scratch:
        for k in range(args.runs):
            for name in times:
                command = (ours(args.epochs, Path(scratch) / f"run-{k}") if name == "ours" else
                           [sys.executable, __file__, "--reference", "--epochs", str(args.epochs)])
                seconds, output = timed(command)
                times[name].append(seconds)
                print(f"round {k}: {name:14} {seconds:6.2f} s  test accuracy {accuracy(output):.4f}", flush=True)
        ratio = statistics.median(times["example's way"]) / statistics.median(times["ours"])
        profile = Path(scratch) / "ours.prof"
        total, _ = timed(ours(args.epochs, Path(scratch) / "profiled", profile))
        stats = pstats.Stats(str(profile)).stats
    print("| process | n | whole process, median | min–max |")
    print("|---|---|---|---|")
    for name, values in times.items():
        print(f"| {name} | {len(values)} | {statistics.median(values):.2f} s | {min(values):.2f}–{max(values):.2f} s |")
    print(f"| example's way / ours | | **{ratio:.2f}×** | |")
    print()
    print(f"| where ours spends its time (cProfile, one run: {total:.2f} s in all) | seconds |")
    print("|---|---|")
    for phase, (where, function) in PHASES.items():
        seconds = sum(ct for (file, _, func), (*_, ct, _) in stats.items() if file.endswith(where) and func == function)
        print(f"| {phase} | {seconds:.2f} |")
    imports = sum(ct for (_, _, func), (*_, ct, _) in stats.items() if func == "_find_and_load")
    print(f"| imports, all (torch's too; some inside the rows above) | {imports:.2f} |")

if __name__ == "__main__":
    main()
