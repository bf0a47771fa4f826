"""The one training loop. A trainer supplies what is its own (its step, its state, its end-of-epoch
evaluation); the loop owns everything else, once for both:

- the run start and resume: config, device, precision, seeds, data, run directory, RNG state;
- sharding each batch over torchrun ranks;
- Ctrl-C / SIGTERM (checkpoint, then stop) and NaN checks;
- mid-epoch and end-of-epoch checkpoints;
- the time budget, checked after every step;
- the metrics lines, TensorBoard and the caller's callback.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generic, Iterator, Protocol, TypeVar

import torch
from tqdm import tqdm

from mnistlab.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from mnistlab.config import ClassifierConfig, GANConfig, from_dict, preset, to_dict, to_json, with_overrides
from mnistlab.data.datasets import Dataset
from mnistlab.device import autocast_dtype, memory_format, resolve_device
from mnistlab.errors import MnistlabError, TrainingDiverged
from mnistlab.files import atomic_write_text
from mnistlab.train.distributed import Dist, decorrelate_ranks, finish_distributed, init_distributed
from mnistlab.train.rundir import TensorBoard, check_same_data, environment, new_run_dir, remove_stale_temp_files

DRY_RUN_STEPS = 3  # optimiser steps of a --dry-run: enough to pass through every part of the pipeline


class Trainer(Protocol):
    """What a trainer supplies. Built from a `RunStart`, after which the loop drives it."""

    stat_names: tuple[str, ...]  # what each step reports; their epoch means become metrics of these names
    finite_stats: int  # the first this many stats are losses: NaN or inf there stops training

    def train(self) -> None:
        """Put the networks in training mode (the end-of-epoch evaluation leaves them in eval mode)."""

    def step(self, idx: torch.Tensor, step: int, total_steps: int) -> torch.Tensor:
        """One optimiser step on the training images `idx` (this rank's share of the batch), at global step
        `step` of `total_steps` (with a time budget, the steps it will fit at the pace so far); returns the
        step's stats, one value per name in `stat_names`."""

    def state_dict(self) -> dict[str, Any]:
        """The trainer's own part of a checkpoint: weights, optimisers, anything else it needs to resume."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore that part from a checkpoint being resumed."""

    def end_epoch(self, metrics: dict[str, Any], last: bool) -> Any:
        """Add the end-of-epoch evaluation to `metrics` (on every rank); return an image for TensorBoard or None."""

    def describe(self, metrics: dict[str, Any]) -> str:
        """The epoch's line for the terminal."""

    def finish(self, history: list[dict[str, Any]], completed: bool) -> None:
        """Write what a run ends with (reports, plots), whether it completed or stopped early."""


# ----------------------------------------------------------------------------------------------
# Seeds, random state and process-wide settings


def seed_everything(seed: int, deterministic: bool) -> None:
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=False)
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


@contextlib.contextmanager
def restores_torch_settings() -> Iterator[None]:
    """Put back the process-wide settings `seed_everything` may switch (deterministic algorithms, cuDNN
    autotuning) when the block ends, however it ends. Trainers wear it as a decorator, so a notebook's
    later work runs as fast as before."""
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.benchmark)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.benchmark = saved[2]


def epoch_order(n: int, seed: int, epoch: int, device: torch.device) -> torch.Tensor:
    """The shuffled sample order of one epoch, a pure function of (seed, epoch): resume needs no state for it."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator).to(device)


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------------------------
# Interruption and divergence


class Interrupted(MnistlabError):
    """Training stopped on SIGINT/SIGTERM after writing a checkpoint; `exit_code` is 130 or 143."""

    def __init__(self, kind: str, run_dir: Path, signum: int):
        super().__init__(f"interrupted; checkpoint saved. Resume with: mnistlab train {kind} --resume {run_dir}")
        self.exit_code = 130 if signum == signal.SIGINT else 143


@contextlib.contextmanager
def stop_on_signals() -> Iterator[dict[str, int]]:
    """Turn Ctrl-C and SIGTERM into a flag the loop checks between steps, so it can checkpoint first. In a
    thread other than the main one (the web app's fine-tuning) signals stay with whoever owns them."""
    flag: dict[str, int] = {}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: Any) -> None:
        flag["signal"] = signum

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def check_finite(losses: torch.Tensor, first_step: int) -> None:
    """Raise TrainingDiverged naming the first step whose loss is NaN or infinite."""
    bad = (~torch.isfinite(losses)).nonzero()
    if len(bad):
        row = int(bad[0, 0])
        raise TrainingDiverged(
            f"loss became {losses[row].tolist()} at step {first_step + row}; training stopped and the last "
            "good checkpoint is kept (try a lower learning rate or --precision fp32)"
        )


# ----------------------------------------------------------------------------------------------
# Starting (or resuming) a run


Config = TypeVar("Config", ClassifierConfig, GANConfig)


@dataclass
class RunStart(Generic[Config]):
    """Everything a trainer needs before the loop: the config, where to write, how to compute, the data."""

    kind: str  # "cnn" or "gan"
    config: Config  # a ClassifierConfig for "cnn", a GANConfig for "gan"
    state: dict[str, Any] | None  # the checkpoint being resumed, if any
    run_dir: Path
    device: torch.device
    group: Dist  # this process in the torchrun group: rank, world_size (rank 0 of 1 without torchrun)
    dtype: torch.dtype | None  # autocast dtype, None for fp32
    memory_format: torch.memory_format
    dataset: Dataset
    progress: bool  # progress bars and epoch lines on the terminal
    say: Callable[[str], None]  # a line for the terminal (rank 0, when progress is on)


def start_run(
    kind: str, config: Config | str | None, overrides: dict[str, Any], resume: str | Path | None,
    dataset: Dataset | str | None, progress: bool, load_data: Callable[[Config], Dataset],
    check_data: Callable[[Config, Dataset], None] | None = None,
) -> RunStart[Config]:
    """Resolve the config (a preset name, a config, or the resumed run's own), set up device, precision,
    seeds and torchrun, load the data with `load_data(config)` unless given (a Dataset, or a dataset name
    taken as the `run.dataset` override), check it (`check_data(config, dataset)`: what the trainer needs
    of it), and only then create the run directory: a run refused for its data leaves nothing behind."""
    if isinstance(dataset, str):  # a dataset name, as in train_classifier(dataset="mnist-sample")
        overrides, dataset = {**overrides, "run.dataset": dataset}, None
    state = None
    if resume is not None:
        state = load_checkpoint(resume, kind=kind)
        remove_stale_temp_files(Path(resume))
        config = from_dict(kind, state["config"])
        # Resume on the data the run started on, whatever `auto` finds now; a dataset named here is checked.
        name = overrides.get("run.dataset") or (
            state["dataset"]["name"] if config.run.dataset == "auto" else config.run.dataset)
        config = with_overrides(config, {"run.dataset": name})
    else:
        config = with_overrides(preset(kind, config) if isinstance(config, str) else config, overrides)
    device = resolve_device(config.run.device)
    group = init_distributed(device)
    seed_everything(config.run.seed, config.run.deterministic)
    say = tqdm.write if progress and group.is_main else (lambda _msg: None)
    if dataset is None:
        dataset = load_data(config)
    if dataset.notice:
        say(f"NOTE: {dataset.notice}")
    if config.train.batch_size > len(dataset.train):  # whole batches only: BN and compiled shapes stay fixed
        raise MnistlabError(f"batch size {config.train.batch_size} is larger than the {len(dataset.train)} "
                            "training images")
    if check_data is not None:
        check_data(config, dataset)
    if resume is not None:
        check_same_data(resume, state["dataset"], dataset.provenance)
        run_dir = Path(resume)
        say(f"resuming {run_dir} at epoch {state['epoch'] + 1}, step {state['step_in_epoch']}")
    elif group.is_main:
        run_dir = new_run_dir(kind, config.preset, config.run.out)
    else:
        run_dir = Path(config.run.out or ".")
    if group.is_main:
        atomic_write_text(run_dir / "config.json", to_json(config))
    return RunStart(kind, config, state, run_dir, device, group, autocast_dtype(device, config.run.precision),
                    memory_format(config.run.channels_last), dataset, progress, say)


# ----------------------------------------------------------------------------------------------
# The loop


class Clock:
    """Seconds of training, across stops and resumes: `elapsed` counts up to `counted_to`; `spent` adds the
    time since. Evaluation, checkpoints and plots between epochs are not training, so they are not counted."""

    def __init__(self, elapsed: float, budget: float | None):
        self.elapsed, self.budget = elapsed, budget  # budget: None, or the seconds the run may train
        self.counted_to = time.perf_counter()

    def restart(self) -> float:
        """Count from now (an epoch starts); returns now."""
        self.counted_to = time.perf_counter()
        return self.counted_to

    def stop(self) -> float:
        """Count the time up to now into `elapsed` (a checkpoint, or the epoch's end); returns now."""
        now = time.perf_counter()
        self.elapsed, self.counted_to = self.elapsed + now - self.counted_to, now
        return now

    def spent(self) -> float:
        return self.elapsed + time.perf_counter() - self.counted_to

    def out_of_time(self) -> bool:
        return self.budget is not None and self.spent() >= self.budget

    def used_up(self) -> bool:
        """The budget was spent by the end of the last epoch."""
        return self.budget is not None and self.elapsed >= self.budget

    def planned_steps(self, step: int, total_steps: int) -> int:
        """All the run's steps: the config's, or those the time budget fits at the pace so far, so that a
        schedule over the run (one-cycle) spans the budget."""
        if self.budget is None:
            return total_steps
        so_far = self.spent()
        return max(step + 1, round(step * self.budget / so_far)) if so_far > 0 else step + 1


@dataclass(frozen=True)
class Plan:
    """How long the run trains: epochs of steps of batches, or as many as a time budget fits."""

    epochs: int
    steps_per_epoch: int
    batch: int
    budget: float | None

    @classmethod
    def of(cls, config: ClassifierConfig | GANConfig, n_train: int) -> Plan:
        batch, budget = config.train.batch_size, config.train.time_budget
        steps = n_train // batch  # at least one: start_run refused a batch larger than the data
        if config.run.dry_run:
            return cls(1, min(steps, DRY_RUN_STEPS), batch, None)
        return cls(10**6 if budget else config.train.epochs, steps, batch, budget)

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.epochs


def fit(start: RunStart, trainer: Trainer, callback: Callable[[dict[str, Any]], None] | None) -> list[dict[str, Any]]:
    """Train until the config's epochs or its time budget are spent; returns the metrics per epoch."""
    config, group, run_dir = start.config, start.group, start.run_dir
    plan = Plan.of(config, len(start.dataset.train))
    width = len(trainer.stat_names)
    history: list[dict[str, Any]] = []
    first_epoch, first_step, done_stats, elapsed = 0, 0, torch.empty(0, width), 0.0
    if start.state is not None:
        state = start.state
        trainer.load_state_dict(state)
        set_rng_state(state["rng"])
        first_epoch, first_step, history = state["epoch"], state["step_in_epoch"], state["metrics"]
        done_stats = state.get("epoch_stats", state.get("epoch_losses")).reshape(-1, width)  # (older CNN runs)
        elapsed = state.get("elapsed_s", 0.0)
    decorrelate_ranks(group, config.run.seed, first_epoch * 10**6 + first_step)
    clock = Clock(elapsed, plan.budget)
    env = environment(start.device, start.dtype, group)
    board = TensorBoard(run_dir, config.run.tensorboard and group.is_main)

    def checkpoint(epoch: int, step_in_epoch: int, stats: torch.Tensor) -> None:
        if group.is_main:
            save_checkpoint(run_dir / CHECKPOINT_NAME, start.kind, {
                "config": to_dict(config), **trainer.state_dict(), "rng": rng_state(), "epoch": epoch,
                "step_in_epoch": step_in_epoch, "epoch_stats": stats, "elapsed_s": clock.elapsed,
                "metrics": history, "dataset": start.dataset.provenance, "environment": env,
            })

    completed = False
    try:
        with stop_on_signals() as stop:
            epoch = first_epoch
            while epoch < plan.epochs and not clock.used_up():
                first = first_step if epoch == first_epoch else 0
                resumed = done_stats if first else None  # resumed mid-epoch: the steps taken keep their stats
                stats, train_time = train_epoch(start, trainer, plan, epoch, first, resumed, clock, stop, checkpoint)
                epoch += 1
                means = group.sum(stats.mean(0)) / group.world_size
                metrics = {"epoch": epoch, **{name: means[i].item() for i, name in enumerate(trainer.stat_names)},
                           "time_s": round(train_time, 3), "elapsed_s": round(clock.elapsed, 3),
                           "images_per_s": round((len(stats) - first) * plan.batch / train_time, 1)}
                image = trainer.end_epoch(metrics, last=epoch == plan.epochs or clock.used_up())
                history.append(metrics)
                checkpoint(epoch, 0, torch.empty(0, width))
                if group.is_main:
                    atomic_write_text(run_dir / "metrics.jsonl", "".join(json.dumps(m) + "\n" for m in history))
                    board.log(metrics, image)
                start.say(trainer.describe(metrics))
                if callback is not None:
                    callback(metrics)
        completed = True
    finally:
        if group.is_main:
            trainer.finish(history, completed)
    finish_distributed(group)
    return history


def train_epoch(start: RunStart, trainer: Trainer, plan: Plan, epoch: int, first: int, resumed: torch.Tensor | None,
                clock: Clock, stop: dict[str, int], checkpoint: Callable[[int, int, torch.Tensor], None],
                ) -> tuple[torch.Tensor, float]:
    """One epoch's steps from step `first` (a resumed epoch's), until its end or the budget's; checkpoints
    every `run.checkpoint_every` steps and on a signal (then raises Interrupted). Returns each step's stats
    and the seconds it trained."""
    config, group, device = start.config, start.group, start.device
    trainer.train()
    epoch_t0 = clock.restart()
    order = epoch_order(len(start.dataset.train), config.run.seed, epoch, device)
    stats = torch.zeros(plan.steps_per_epoch, len(trainer.stat_names), device=device)
    if resumed is not None:
        stats[:first] = resumed.to(device)
    end = plan.steps_per_epoch
    bar = tqdm(range(first, plan.steps_per_epoch), leave=False, unit="step",
               desc=f"epoch {epoch + 1}" + ("" if plan.budget else f"/{plan.epochs}"),
               disable=True if not (start.progress and group.is_main) else None)  # None: off in logs
    for step in bar:
        idx = group.shard(order[step * plan.batch : (step + 1) * plan.batch])
        at = epoch * plan.steps_per_epoch + step
        stats[step] = trainer.step(idx, at, clock.planned_steps(at, plan.total_steps))
        if stop or (config.run.checkpoint_every and (step + 1) % config.run.checkpoint_every == 0):
            check_finite(stats[: step + 1, : trainer.finite_stats], epoch * plan.steps_per_epoch)
            clock.stop()
            checkpoint(epoch, step + 1, stats[: step + 1])
            if stop:
                raise Interrupted(start.kind, start.run_dir, stop["signal"])
        if clock.out_of_time():
            end = step + 1
            break
    stats = stats[:end]
    check_finite(stats[:, : trainer.finite_stats], epoch * plan.steps_per_epoch)
    return stats, clock.stop() - epoch_t0
