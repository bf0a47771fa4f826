"""Training the CNN: an explicit loop over whole-dataset tensors that live on the device.

There is no DataLoader: the uint8 images sit on the device once, each step gathers a batch by index,
scales it to [0, 1] and runs it `channels_last` under bf16 autocast where that is faster. With a
network this small, per-step Python overhead is what limits speed, so the loop does little else.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from mnistlab.checkpoint import CHECKPOINT_NAME, atomic_write_text, load_weights, save_checkpoint
from mnistlab.config import ClassifierConfig, TrainConfig, to_dict
from mnistlab.data.datasets import Dataset, load_dataset
from mnistlab.errors import MnistlabError
from mnistlab.evaluate import classification_report, classify
from mnistlab.models.cnn import CNN
from mnistlab.train import common
from mnistlab.train.common import Dist, Interrupted


@dataclass
class ClassifierRun:
    """What `train_classifier` returns: the run directory, the trained model and its metrics per epoch."""

    dir: Path
    config: ClassifierConfig
    model: CNN
    metrics: list[dict[str, Any]] = field(default_factory=list)
    dataset: str = ""

    def summary(self) -> str:
        """What the run measured and where it wrote it, for the terminal."""
        last = self.metrics[-1] if self.metrics else {}
        lines = [f"trained cnn/{self.config.preset} on {self.dataset}: test accuracy {last.get('test_acc', 0):.4f} "
                 f"after {len(self.metrics)} epochs ({sum(m['time_s'] for m in self.metrics):.0f}s of training)"]
        lines += [f"  {name:<11}{self.dir / file}" for name, file in (
            ("checkpoint", CHECKPOINT_NAME), ("metrics", "metrics.jsonl"), ("config", "config.json"),
            ("curves", "curves.png"), ("confusion", "confusion.png"), ("mistakes", "mistakes.png"))]
        return "\n".join(lines)

    def plot_curves(self):
        """Loss and accuracy per epoch, as a matplotlib figure (renders inline in a notebook)."""
        from mnistlab import plots

        return plots.classifier_curves(self.metrics)

    def plot_confusion(self):
        """The test confusion matrix as a matplotlib figure: `run.plot_confusion()` in a notebook cell."""
        from mnistlab import plots

        return plots.confusion_matrix(_load_report(self.dir))

    def plot_mistakes(self):
        """Misclassified test digits titled true→predicted, as a matplotlib figure."""
        from mnistlab import plots

        return plots.mistakes_grid(self.dir / "mistakes.npz")


def lr_at(train: TrainConfig, step: int, total_steps: int) -> float:
    """The learning rate at optimiser step `step`: a pure function, so resume needs no scheduler state."""
    if train.lr_schedule == "exp-decay":  # Görner: 0.0001 + 0.003 · e^(−step/2000)
        return train.lr_min + train.lr * math.exp(-step / train.decay_steps)
    if train.lr_schedule == "onecycle":  # linear warm-up over 20%, then cosine down to ~0
        warm = max(1, int(0.2 * total_steps))
        if step < warm:
            return train.lr * (0.04 + 0.96 * step / warm)
        progress = (step - warm) / max(1, total_steps - warm)
        return train.lr * (0.001 + 0.999 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))
    return train.lr


def to_input(images: torch.Tensor, memory_format: torch.memory_format) -> torch.Tensor:
    """uint8 (N, 28, 28) → float (N, 1, 28, 28) in [0, 1]: what the CNN reads."""
    return images.unsqueeze(1).float().div_(255).contiguous(memory_format=memory_format)


def augment(x: torch.Tensor, shift: int, rotate: float, flip: bool = False) -> torch.Tensor:
    """Random translation (± `shift` px), rotation (± `rotate` degrees) and, with `flip`, a left-right mirror
    of half the batch, in one resampling."""
    n = x.shape[0]
    angle = (torch.rand(n, device=x.device) * 2 - 1) * math.radians(rotate)
    offset = (torch.rand(n, 2, device=x.device) * 2 - 1) * (2 * shift / x.shape[-1])
    mirror = torch.where(torch.rand(n, device=x.device) < 0.5, -1.0, 1.0) if flip else 1.0
    cos, sin = angle.cos(), angle.sin()
    theta = torch.stack([torch.stack([cos * mirror, -sin, offset[:, 0]], 1),
                         torch.stack([sin * mirror, cos, offset[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")


def erase(x: torch.Tensor, p: float) -> torch.Tensor:
    """Random erasing (Zhong et al. 2017): with probability `p`, blank a rectangle of 2–33 % of the image,
    aspect ratio 0.3–3.3, at a random place — the whole batch at once, no per-image Python."""
    n, _, h, w = x.shape
    area = (0.02 + 0.31 * torch.rand(n, device=x.device)) * h * w
    aspect = torch.exp(torch.empty(n, device=x.device).uniform_(math.log(0.3), math.log(3.3)))
    eh, ew = (area * aspect).sqrt().clamp(max=h), (area / aspect).sqrt().clamp(max=w)
    top, left = torch.rand(n, device=x.device) * (h - eh), torch.rand(n, device=x.device) * (w - ew)
    rows, cols = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    inside = ((rows >= top[:, None]) & (rows < (top + eh)[:, None]))[:, :, None] & \
             ((cols >= left[:, None]) & (cols < (left + ew)[:, None]))[:, None, :]  # (n, h, w)
    chosen = (torch.rand(n, device=x.device) < p)[:, None, None]
    return x.masked_fill((inside & chosen)[:, None], 0.0)


@common.restores_torch_settings()
def train_classifier(
    config: ClassifierConfig | str = "seed",
    dataset: Dataset | str | None = None,
    *,
    resume: str | Path | None = None,
    callback: Callable[[dict[str, Any]], None] | None = None,
    progress: bool = True,
    **overrides: Any,
) -> ClassifierRun:
    """Train a CNN and write its run directory (config, metrics, checkpoint, plots).

    `config` is a `ClassifierConfig` or a preset name; `dataset` a loaded `Dataset` or a dataset name
    (`"fashion-mnist"`); `overrides` set any field by name (`epochs=2`, `lr=3e-3`, `filters=(8, 16, 32)`).
    `resume` continues the run in that directory from its checkpoint, with the run's own config.
    `callback` gets each epoch's metrics dict.

    >>> run = train_classifier("seed", epochs=1, dataset="mnist-sample")
    >>> run.metrics[-1]["test_acc"]
    0.93...
    """
    start = common.start_run("cnn", config, overrides, resume, dataset, progress, lambda c: load_dataset(
        c.run.dataset, c.run.data_root, val_size=c.train.val_size))
    config, state, run_dir, device, world = start.config, start.state, start.run_dir, start.device, start.world
    dtype, memory_format, dataset, say = start.dtype, start.memory_format, start.dataset, start.say

    train_x, train_y = dataset.train.images.to(device), dataset.train.labels.to(device)
    model = CNN(config.model).to(device, memory_format=memory_format)
    optimizer = common.adam(model.parameters(), device, lr=config.train.lr, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=config.train.weight_decay)
    history: list[dict[str, Any]] = []
    start_epoch, start_step, done_losses = 0, 0, torch.empty(0)
    if state is not None:
        load_weights(model, state["model"], run_dir, state)
        common.load_optimizer(optimizer, state["optimizer"])
        common.set_rng_state(state["rng"])
        start_epoch, start_step = state["epoch"], state["step_in_epoch"]
        history, done_losses = state["metrics"], state["epoch_losses"]
    common.decorrelate_ranks(world, config.run.seed, start_epoch * 10**6 + start_step)
    net = model
    if world.world > 1:
        device_ids = [device.index] if device.type == "cuda" else None
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    batch = config.train.batch_size
    steps_per_epoch = len(train_y) // batch  # whole batches only: BN and compiled shapes stay fixed
    if steps_per_epoch == 0:
        raise MnistlabError(f"batch size {batch} is larger than the {len(train_y)} training images")
    total_steps = steps_per_epoch * config.train.epochs
    env = common.environment(device, dtype, world)

    def checkpoint(epoch: int, step_in_epoch: int, losses: torch.Tensor) -> None:
        if world.is_main:
            save_checkpoint(run_dir / CHECKPOINT_NAME, "cnn", {
                "config": to_dict(config), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "rng": common.rng_state(), "epoch": epoch, "step_in_epoch": step_in_epoch,
                "epoch_losses": losses, "metrics": history, "classes": dataset.classes,
                "dataset": dataset.provenance, "environment": env,
            })

    board = common.TensorBoard(run_dir, config.run.tensorboard and world.is_main)
    with common.stop_on_signals() as stop:
        for epoch in range(start_epoch, config.train.epochs):
            model.train()
            t0 = time.perf_counter()
            order = common.epoch_order(len(train_y), config.run.seed, epoch, device)
            losses = torch.zeros(steps_per_epoch, device=device)
            first = start_step if epoch == start_epoch else 0
            if first:
                losses[:first] = done_losses.to(device)
            bar = tqdm(range(first, steps_per_epoch), desc=f"epoch {epoch + 1}/{config.train.epochs}",
                       disable=not (progress and world.is_main), leave=False, unit="step")
            for step in bar:
                idx = world.shard(order[step * batch : (step + 1) * batch])
                x, y = to_input(train_x[idx], memory_format), train_y[idx]
                if config.train.augment_shift or config.train.augment_rotate or config.train.augment_flip:
                    x = augment(x, config.train.augment_shift, config.train.augment_rotate, config.train.augment_flip)
                if config.train.augment_erase:
                    x = erase(x, config.train.augment_erase)
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(config.train, epoch * steps_per_epoch + step, total_steps)

                optimizer.zero_grad(set_to_none=True)
                with common.autocast(device, dtype):
                    logits = net(x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=config.train.label_smoothing)
                loss.backward()
                optimizer.step()
                losses[step] = loss.detach()

                if stop or (config.run.checkpoint_every and (step + 1) % config.run.checkpoint_every == 0):
                    common.check_finite(losses[: step + 1], epoch * steps_per_epoch)
                    checkpoint(epoch, step + 1, losses[: step + 1])
                    if stop:
                        raise Interrupted("cnn", run_dir, stop["signal"])
            common.check_finite(losses, epoch * steps_per_epoch)

            train_time = time.perf_counter() - t0
            metrics = {
                "epoch": epoch + 1,
                "train_loss": world.sum(losses.mean().clone()).item() / world.world,
                "val_acc": _accuracy(model, dataset.val, device, dtype, world),
                "test_acc": _accuracy(model, dataset.test, device, dtype, world),
                "lr": optimizer.param_groups[0]["lr"],
                "time_s": round(train_time, 3),
                "images_per_s": round((steps_per_epoch - first) * batch / train_time, 1),
            }
            history.append(metrics)
            checkpoint(epoch + 1, 0, torch.empty(0))
            if world.is_main:
                start.metrics_line(history)
                board.log(metrics)
            say(_epoch_line(metrics))
            if callback is not None:
                callback(metrics)

    if world.is_main:
        write_report(model, dataset, run_dir, device, dtype)
    common.finish_distributed(world)
    return ClassifierRun(run_dir, config, model, history, dataset.name)


def write_report(model: CNN, dataset: Dataset, run_dir: Path, device: torch.device, dtype) -> dict[str, Any]:
    """Final evaluation on the test split, with the plots: curves, confusion matrix, misclassified digits."""
    from mnistlab import plots

    logits, _ = classify(model, dataset.test.images, device, dtype)
    report = classification_report(logits, dataset.test.labels, dataset.classes)
    report["dataset"] = dataset.name
    atomic_write_text(run_dir / "report.json", json.dumps(report, indent=2))
    predicted = logits.argmax(1)
    wrong = (predicted != dataset.test.labels).nonzero().view(-1)
    np.savez_compressed(
        run_dir / "mistakes.npz", images=dataset.test.images[wrong].numpy(),
        true=dataset.test.labels[wrong].numpy(), predicted=predicted[wrong].numpy(),
        classes=np.array(dataset.classes),
    )
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    plots.save(plots.classifier_curves(history), run_dir / "curves.png")
    plots.save(plots.confusion_matrix(report), run_dir / "confusion.png")
    plots.save(plots.mistakes_grid(run_dir / "mistakes.npz"), run_dir / "mistakes.png")
    return report


def _accuracy(model: CNN, split, device, dtype, world: Dist) -> float | None:
    if split is None or len(split) == 0:
        return None
    shard = torch.arange(len(split))[world.rank :: world.world]
    logits, _ = classify(model, split.images[shard], device, dtype)
    counts = torch.tensor([(logits.argmax(1) == split.labels[shard]).sum().item(), len(shard)], dtype=torch.float64)
    correct, total = world.sum(counts.to(device)).tolist()
    return correct / total


def _load_report(run_dir: Path) -> dict[str, Any]:
    return json.loads((Path(run_dir) / "report.json").read_text())


def _epoch_line(m: dict[str, Any]) -> str:
    val = f"{m['val_acc']:.4f}" if m["val_acc"] is not None else "-"
    return (f"epoch {m['epoch']:3d}  train loss {m['train_loss']:.4f}  val acc {val}  test acc {m['test_acc']:.4f}"
            f"  {m['time_s']:.1f}s  {m['images_per_s']:.0f} img/s")
