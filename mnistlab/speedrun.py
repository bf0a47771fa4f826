"""The CPU speedrun: train from scratch to ≥ 99 % on MNIST's official test split as fast as this CPU allows.

    mnistlab speedrun --runs 10 --json

The recipe, top to bottom (the network and optimiser are the `speedrun` preset in `mnistlab/config.py`):
1. the 60,000 training digits as one uint8 tensor, in memory: no DataLoader, a batch is an index gather;
2. the first 5,000 held out for validation, as everywhere in mnistlab, so 55,000 are trained on;
3. a small net: conv 5×5/16/stride 2 → conv 3×3/32/stride 2, batch norm, ReLU → dense 128 → 10; strided
   convolutions instead of stride 1 and max-pooling cost a quarter of the conv positions;
4. bf16 autocast and channels_last where the CPU has AVX-512-BF16 or AMX: the convs and GEMMs in bf16;
5. one epoch of batch 256, Adam (β 0.7, 0.9) at 1e-2 with a one-cycle schedule, label smoothing 0.1;
6. a warm-up of a few steps on a throwaway copy before the clock starts, so oneDNN's kernels are built
   outside the training time (they count in the whole time);
7. the test split classified once, at the end.

Timing: `train_s` runs from the first optimiser step to the last (the loop's own clock, data in memory);
`total_s` from the process starting (run 1) or the run starting (later runs) to the accuracy printed:
imports, data loading, warm-up and evaluation included.

Result: see docs/results.md (`python scripts/speedrun_bench.py`, which runs this beside the fast GPU recipe
and the PyTorch example, alternately in one invocation).
"""

from __future__ import annotations

import copy
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch.nn.functional as F

from mnistlab.config import CNN_PRESETS, ClassifierConfig, with_overrides
from mnistlab.data.datasets import Dataset, load_dataset
from mnistlab.device import autocast
from mnistlab.errors import MnistlabError
from mnistlab.inference import classify
from mnistlab.pixels import to_float
from mnistlab.train import loop
from mnistlab.train.classifier import CNNTrainer, write_report
from mnistlab.train.optim import adam

PRESET = "speedrun"
WARMUP_STEPS = 3  # enough for oneDNN to build the forward and backward kernels of every layer


def process_start() -> float:
    """When this process started, on time.time()'s clock (Linux's /proc; elsewhere: now, at import)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.time()


_STARTED = process_start()


class SpeedrunTrainer(CNNTrainer):
    """The CNN trainer, warmed up before the clock starts, writing its report only when asked to keep the run."""

    def __init__(self, start: loop.RunStart[ClassifierConfig], keep: bool):
        super().__init__(start)
        self.keep = keep
        self.fits_digitness = keep  # a run not kept answers nothing after its accuracy
        self._warm_up()

    def _warm_up(self) -> None:
        model, tc = copy.deepcopy(self.model), self.config.train
        optimizer = adam(model.parameters(), self.start.device, lr=tc.lr, betas=(tc.beta1, tc.beta2))
        x = to_float(self.train_x[: tc.batch_size], "0,1", self.start.memory_format)
        for _ in range(WARMUP_STEPS):
            optimizer.zero_grad(set_to_none=True)
            with autocast(self.start.device, self.start.dtype):
                loss = F.cross_entropy(model(x).float(), self.train_y[: tc.batch_size])
            loss.backward()
            optimizer.step()
        classify(model, self.start.dataset.test.images[:2000], self.start.device, self.start.dtype)

    def end_epoch(self, metrics: dict[str, Any], last: bool) -> None:
        if last:  # validation and test once, at the end: they are not part of the recipe's training
            super().end_epoch(metrics, last)
        else:
            metrics.update(val_acc=None, test_acc=None, lr=self.optimizer.param_groups[0]["lr"])

    def finish(self, history: list[dict[str, Any]], completed: bool) -> None:
        if completed and self.keep:
            write_report(self.model, self.start.dataset, self.start.run_dir, self.start.device, self.start.dtype)


def speedrun(dataset: str | Dataset = "auto", data_root: str | None = None, seed: int = 0,
             out: str | Path | None = None, started: float | None = None, **overrides: Any) -> dict[str, Any]:
    """One speedrun: {"seed", "train_s", "total_s", "test_acc", "val_acc", "dataset", "run_dir"}.

    `out` keeps the run directory (checkpoint, config, metrics, report) for predict, serve and export;
    without it the run is written to a temporary directory and removed. `started` is when the clock for
    `total_s` started (default: this process's start). `overrides` change the preset's fields by name.
    """
    started = _STARTED if started is None else started
    with tempfile.TemporaryDirectory(prefix="mnistlab-speedrun-") as scratch:
        config = with_overrides(CNN_PRESETS[PRESET], {
            **overrides, "run.seed": seed, "run.out": str(out or Path(scratch) / "run"),
            "run.data_root": data_root, **({"run.dataset": dataset} if isinstance(dataset, str) else {})})
        start = loop.start_run("cnn", config, {}, None, None if isinstance(dataset, str) else dataset, False,
                               lambda c: load_dataset(c.run.dataset, c.run.data_root, val_size=c.train.val_size))
        trainer = SpeedrunTrainer(start, keep=out is not None)
        history = loop.fit(start, trainer, None)
        last = history[-1]
        return {"seed": seed, "train_s": round(sum(m["time_s"] for m in history), 3),
                "total_s": round(time.time() - started, 3), "test_acc": last["test_acc"],
                "val_acc": last["val_acc"], "dataset": start.dataset.name,
                "run_dir": str(start.run_dir) if out is not None else None}


def speedruns(runs: int = 1, seed: int = 0, out: str | Path | None = None, **kwargs: Any):
    """`runs` speedruns with seeds seed, seed + 1, …; yields each result as it is done. With several runs,
    `out` is a directory holding one run directory per seed (`seed-N`)."""
    if runs < 1:
        raise MnistlabError(f"--runs must be at least 1, got {runs}")
    for k in range(runs):
        where = None if out is None else Path(out) if runs == 1 else Path(out) / f"seed-{seed + k}"
        yield speedrun(seed=seed + k, out=where, started=None if k == 0 else time.time(), **kwargs)


def describe(result: dict[str, Any]) -> str:
    """One run as a line for the terminal."""
    return (f"seed {result['seed']}: test accuracy {result['test_acc']:.4f} on {result['dataset']}, "
            f"{result['train_s']:.2f} s of training, {result['total_s']:.2f} s in all"
            + (f"  ({result['run_dir']})" if result["run_dir"] else ""))
