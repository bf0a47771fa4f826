"""Time to 99 % on MNIST's official test split, three recipes side by side, run alternately in one invocation.

    python scripts/speedrun_bench.py --runs 10 --example-runs 3

- ours: `mnistlab speedrun` (the `speedrun` preset through mnistlab's loop, bf16 + channels_last where the
  CPU has them);
- the fast GPU recipe, written here from its description: conv 5×5 1→24, max-pool, ReLU, conv 3×3 24→32,
  max-pool, ReLU, dense 800→256→10; one epoch of batch 256, the whole dataset as one tensor, Adam lr 1e-2
  with β (0.7, 0.9) and OneCycle, no augmentation; torch's defaults (fp32, NCHW);
- the PyTorch example (examples/mnist): two 3×3 convs (32, 64), max-pool, dropout, dense 9216→128→10,
  Adadelta lr 1 with StepLR γ 0.7, batch 64, a DataLoader over per-sample tensors, trained epoch by epoch
  until it reaches 99 % (its own recipe runs 14 epochs).

All three train on the same 55,000 digits (the first 5,000 held out, as mnistlab does) and are tested on
the 10,000 official test digits. Training time runs from the first optimiser step to the last, the data
already in memory; the example's time stops at the end of the first epoch that tests ≥ 99 %. Round k runs
each recipe once with seed k, in turn, so that a busy machine slows all three alike. Prints mean ± sd,
median and min–max, and the ratios of medians.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from mnistlab import load_dataset
from mnistlab.speedrun import speedrun


def fast_gpu_recipe(data, seed: int) -> tuple[float, float]:
    """(training seconds, test accuracy) of the fast GPU recipe, as described, with torch's defaults."""
    torch.manual_seed(seed)
    x = data.train.images.float().div(255).unsqueeze(1)
    x = (x - 0.1307) / 0.3081
    y = data.train.labels
    model = nn.Sequential(
        nn.Conv2d(1, 24, 5), nn.MaxPool2d(2), nn.ReLU(),  # 24 x 12 x 12
        nn.Conv2d(24, 32, 3), nn.MaxPool2d(2), nn.ReLU(),  # 32 x 5 x 5
        nn.Flatten(), nn.Linear(800, 256), nn.ReLU(), nn.Linear(256, 10),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.7, 0.9))
    batch = 256
    steps = len(x) // batch
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-2, total_steps=steps)
    order = torch.randperm(len(x))
    t0 = time.perf_counter()
    for step in range(steps):
        idx = order[step * batch : (step + 1) * batch]
        optimizer.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        optimizer.step()
        schedule.step()
    train_s = time.perf_counter() - t0
    with torch.no_grad():
        test = (data.test.images.float().div(255).unsqueeze(1) - 0.1307) / 0.3081
        accuracy = (model(test).argmax(1) == data.test.labels).float().mean().item()
    return train_s, accuracy


class ExampleNet(nn.Module):
    """pytorch/examples mnist/main.py's Net."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 32, 3, 1), nn.Conv2d(32, 64, 3, 1)
        self.dropout1, self.dropout2 = nn.Dropout(0.25), nn.Dropout(0.5)
        self.fc1, self.fc2 = nn.Linear(9216, 128), nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
        x = torch.flatten(self.dropout1(x), 1)
        return self.fc2(self.dropout2(F.relu(self.fc1(x))))


def pytorch_example(data, seed: int, max_epochs: int = 14) -> tuple[float, float, int]:
    """(training seconds to the first epoch that tests ≥ 99 %, that accuracy, epochs) of the PyTorch example."""
    torch.manual_seed(seed)
    normalise = lambda images: (images.float().div(255).unsqueeze(1) - 0.1307) / 0.3081  # noqa: E731
    train = torch.utils.data.TensorDataset(normalise(data.train.images), data.train.labels)
    loader = torch.utils.data.DataLoader(train, batch_size=64, shuffle=True)
    test = normalise(data.test.images)
    model = ExampleNet()
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    train_s, accuracy = 0.0, 0.0
    for epoch in range(1, max_epochs + 1):
        model.train()
        t0 = time.perf_counter()
        for x, y in loader:
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
        schedule.step()
        train_s += time.perf_counter() - t0
        model.eval()
        with torch.no_grad():
            accuracy = sum((model(test[i : i + 2000]).argmax(1) == data.test.labels[i : i + 2000]).sum().item()
                           for i in range(0, len(test), 2000)) / len(test)
        if accuracy >= 0.99:
            return train_s, accuracy, epoch
    return train_s, accuracy, max_epochs


def _summary(name: str, times: list[float], accs: list[float]) -> str:
    sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0  # noqa: E731
    return (f"| {name} | {len(times)} | {statistics.fmean(times):.2f} ± {sd(times):.2f} "
            f"| {statistics.median(times):.2f} | {min(times):.2f}–{max(times):.2f} "
            f"| {statistics.fmean(accs):.4f} ± {sd(accs):.4f} "
            f"| {min(accs):.4f}–{max(accs):.4f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="runs of ours and of the fast GPU recipe")
    parser.add_argument("--example-runs", type=int, default=3, help="runs of the PyTorch example (minutes each)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset("mnist")
    results: dict[str, tuple[list[float], list[float]]] = {"ours": ([], []), "fast GPU recipe": ([], []),
                                                           "PyTorch example": ([], [])}
    for k in range(max(args.runs, args.example_runs)):
        if k < args.runs:
            run = speedrun(data, seed=k, started=time.time())
            results["ours"][0].append(run["train_s"])
            results["ours"][1].append(run["test_acc"])
            train_s, acc = fast_gpu_recipe(data, k)
            results["fast GPU recipe"][0].append(train_s)
            results["fast GPU recipe"][1].append(acc)
            print(f"round {k}: ours {run['train_s']:.2f} s {run['test_acc']:.4f}; "
                  f"fast GPU recipe {train_s:.2f} s {acc:.4f}", flush=True)
        if k < args.example_runs:
            train_s, acc, epochs = pytorch_example(data, k)
            results["PyTorch example"][0].append(train_s)
            results["PyTorch example"][1].append(acc)
            print(f"round {k}: PyTorch example {train_s:.1f} s to {acc:.4f} in {epochs} epochs", flush=True)
    print(f"\n{torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"cpu {torch.backends.cpu.get_cpu_capability()}; training on 55,000 digits, tested on the official 10,000")
    print("| recipe | n | training s, mean ± sd | median | min–max | test accuracy, mean ± sd | min–max |")
    print("|---|---|---|---|---|---|---|")
    for name, (times, accs) in results.items():
        if times:
            print(_summary(name, times, accs))
    ours = statistics.median(results["ours"][0])
    for name in ("fast GPU recipe", "PyTorch example"):
        if results[name][0]:
            print(f"median training time, {name} / ours: {statistics.median(results[name][0]) / ours:.2f}x")


if __name__ == "__main__":
    main()
