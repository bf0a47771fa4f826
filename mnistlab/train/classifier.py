"""Training the CNN: its step, its state and its end-of-epoch evaluation; `train.loop` does the rest.

There is no DataLoader: the uint8 images sit on the device once, each step gathers a batch by index,
scales it to [0, 1] and runs it `channels_last` under bf16 autocast where that is faster. With a
network this small, per-step Python overhead is what limits speed, so the step does little else.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from mnistlab.checkpoint import (
    CHECKPOINT_NAME,
    CheckpointHeader,
    load_checkpoint,
    load_weights,
    read_checkpoint_header,
    resolve_checkpoint,
)
from mnistlab.config import CNN_PRESETS, ClassifierConfig, TrainConfig, from_dict, with_overrides
from mnistlab.data.datasets import Dataset, Split, load_dataset
from mnistlab.device import autocast
from mnistlab.errors import MnistlabError
from mnistlab.evaluate import classification_report, fit_answers
from mnistlab.files import atomic_write_text
from mnistlab.inference import classify
from mnistlab.models.cnn import CNN
from mnistlab.pixels import to_float
from mnistlab.runs import GROUP_FILE
from mnistlab.train import loop
from mnistlab.train.augment import augment, erase, photo_noise
from mnistlab.train.distributed import Dist
from mnistlab.train.optim import adam, load_optimizer


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


class CNNTrainer:
    """The classifier's part of the loop: cross-entropy steps on augmented batches, accuracy at epoch ends."""

    stat_names = ("train_loss",)
    finite_stats = 1

    def __init__(self, start: loop.RunStart[ClassifierConfig]):
        self.start, self.config = start, start.config
        self.train_x = start.dataset.train.images.to(start.device)
        self.train_y = start.dataset.train.labels.to(start.device)
        self.model = CNN(self.config.model).to(start.device, memory_format=start.memory_format)
        self.replay: Dataset | None = None  # fine-tuning: the source run's own digits, replayed alongside
        if self.config.run.init_from and start.state is None:  # fine-tuning; a resumed run has its own weights
            self.replay = self._start_from(self.config.run.init_from)
        self.replay_x = self.replay.train.images.to(start.device) if self.replay else None
        self.replay_y = self.replay.train.labels.to(start.device) if self.replay else None
        head_only = self.config.train.tune == "head"
        trained = self.model.logits.parameters() if head_only else self.model.parameters()
        self.optimizer = adam(trained, start.device, lr=self.config.train.lr,
                              betas=(self.config.train.beta1, self.config.train.beta2),
                              eps=1e-8, weight_decay=self.config.train.weight_decay)
        self.net = self.model
        self.temperature: float | None = None  # fitted on the validation split after the last epoch
        self.digitness: dict[str, Any] | None = None  # and the digitness scale (`mnistlab.ood`)
        self.fits_digitness = True  # a speedrun that keeps no run skips it: the scale costs a pass over the data
        if start.group.world_size > 1:
            device_ids = [start.device.index] if start.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)

    def _start_from(self, run: str) -> Dataset | None:
        """Load a CNN run's weights into the model; return its training and validation data for replay (None
        without replay)."""
        source = load_checkpoint(run, kind="cnn")
        load_weights(self.model, source["model"], run, source)
        if not self.config.train.replay:
            return None
        for _ in range(64):  # a run fine-tuned with replay replays what its source did (MNIST, not a handful)
            config = source["config"]
            if not (config.get("run", {}).get("init_from") and config.get("train", {}).get("replay")):
                break
            run = config["run"]["init_from"]
            source = read_checkpoint_header(resolve_checkpoint(run)).state
        return load_dataset(source["dataset"]["name"], self.config.run.data_root,
                            val_size=config.get("train", {}).get("val_size"),
                            framing=source["dataset"].get("framing", "digit"))

    def train(self) -> None:
        self.model.train(self.config.train.tune == "all")  # head only: the rest keeps its BatchNorm statistics

    def step(self, idx: torch.Tensor, step: int, total_steps: int) -> torch.Tensor:
        tc, start = self.config.train, self.start
        x, y = self.train_x[idx], self.train_y[idx]
        if tc.replay and self.replay_x is not None:  # the source's own data alongside, so it keeps other writers
            extra = torch.randint(len(self.replay_x), (round(len(idx) * tc.replay / (1 - tc.replay)),),
                                  device=self.replay_x.device)
            x, y = torch.cat([x, self.replay_x[extra]]), torch.cat([y, self.replay_y[extra]])
        x = to_float(x, "0,1", start.memory_format)
        if tc.augment_shift or tc.augment_rotate or tc.augment_flip or tc.augment_shear or tc.augment_elastic:
            x = augment(x, tc.augment_shift, tc.augment_rotate, tc.augment_flip, tc.augment_shear, tc.augment_elastic)
        if tc.augment_stroke or tc.augment_blur or tc.augment_noise:
            x = photo_noise(x, tc.augment_stroke, tc.augment_blur, tc.augment_noise)
        if tc.augment_erase:
            x = erase(x, tc.augment_erase)
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(tc, step, total_steps)

        self.optimizer.zero_grad(set_to_none=True)
        with autocast(start.device, start.dtype):
            logits = self.net(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=tc.label_smoothing)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "classes": self.start.dataset.classes,
                **({"temperature": self.temperature} if self.temperature is not None else {}),
                **({"digitness": self.digitness} if self.digitness is not None else {})}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_weights(self.model, state["model"], self.start.run_dir, state)
        load_optimizer(self.optimizer, state["optimizer"])
        self.temperature = state.get("temperature")
        self.digitness = state.get("digitness")

    def end_epoch(self, metrics: dict[str, Any], last: bool) -> None:
        start = self.start
        metrics["val_acc"] = _accuracy(self.model, start.dataset.val, start.device, start.dtype, start.group)
        metrics["test_acc"] = _accuracy(self.model, start.dataset.test, start.device, start.dtype, start.group)
        metrics["lr"] = self.optimizer.param_groups[0]["lr"]
        if last:  # every consumer of the checkpoint reads calibrated probabilities, and knows a non-digit
            self.temperature, self.digitness = fit_answers(self.model, self._answers_data(), start.device,
                                                           start.dtype, self.fits_digitness)

    def _answers_data(self) -> Dataset:
        """What the temperature and the digitness scale are fitted on: the run's own splits, and, when it was
        fine-tuned with replay, the source's too, since it reads both (a handful of a person's digits is too
        few to calibrate on, and everyone else's digits are still digits)."""
        own = self.start.dataset
        if self.replay is None:
            return own
        joined = {part: [s for s in (getattr(own, part), getattr(self.replay, part)) if s is not None and len(s)]
                  for part in ("train", "val")}
        train, val = (Split(torch.cat([s.images for s in splits]), torch.cat([s.labels for s in splits]))
                      for splits in joined.values())
        return dataclasses.replace(own, train=train, val=val)

    def describe(self, m: dict[str, Any]) -> str:
        val = f"{m['val_acc']:.4f}" if m["val_acc"] is not None else "-"
        return (f"epoch {m['epoch']:3d}  train loss {m['train_loss']:.4f}  val acc {val}  "
                f"test acc {m['test_acc']:.4f}  {m['time_s']:.1f}s  {m['images_per_s']:.0f} img/s")

    def finish(self, history: list[dict[str, Any]], completed: bool) -> None:
        if completed:
            write_report(self.model, self.start.dataset, self.start.run_dir, self.start.device, self.start.dtype)


def cnn_source(run: str | Path) -> CheckpointHeader:
    """The header of the run a fine-tuning starts from (its last checkpoint); a GAN run is refused."""
    source = read_checkpoint_header(resolve_checkpoint(run, "last"))
    if source.kind != "cnn":
        raise MnistlabError(f"--from {run}: a {source.kind} run; fine-tuning starts from a CNN run")
    return source


def check_source(config: ClassifierConfig, dataset: Dataset) -> None:
    """Fine-tuning (`run.init_from`) needs a CNN run of the same network and the same classes: checked before
    the run directory is made, so a refused run leaves nothing behind."""
    run = config.run.init_from
    if not run:
        return
    source = cnn_source(run)
    source_config = from_dict("cnn", source.state["config"])
    if source_config.model != config.model:
        raise MnistlabError(f"--from {run}: it is a {source_config.preset} network, not this run's "
                            f"{config.preset}; fine-tune it with --preset {source_config.preset}")
    if source.state["classes"] != dataset.classes:
        raise MnistlabError(f"--from {run}: it reads {', '.join(source.state['classes'])}, but {dataset.name} has "
                            f"the classes {', '.join(dataset.classes) or '(none)'}: fine-tune on data of its classes")


def load_data(config: ClassifierConfig) -> Dataset:
    """The splits a classifier trains, validates and is tested on."""
    return load_dataset(config.run.dataset, config.run.data_root, val_size=config.train.val_size,
                        framing=config.run.framing, test_dir=config.run.test_dir)


@loop.restores_torch_settings()
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

    >>> run = train_classifier("seed", epochs=1, dataset="mnist-sample", out="doc-runs/cnn", progress=False)
    >>> 0.6 < run.metrics[-1]["test_acc"] < 1  # one epoch of the seed CNN on 3,667 digits
    True
    """
    start = loop.start_run("cnn", config, overrides, resume, dataset, progress, load_data, check_source)
    trainer = CNNTrainer(start)
    history = loop.fit(start, trainer, callback)
    return ClassifierRun(start.run_dir, start.config, trainer.model, history, start.dataset.name)


# Measured on generated one-writer sets (docs/results.md#learning-one-hand): all layers, Adam at 3e-4 held
# constant (chosen on validation digits over 3e-5, 1e-4 and 1e-3), 30 epochs, batches of at most 16 of the
# person's digits with as many of the source's replayed.
FINE_TUNE = {"epochs": 30, "batch_size": 16, "lr": 3e-4, "lr_schedule": "constant", "replay": 0.5}


def fine_tune(run: str | Path, dataset: Dataset | str, *, callback: Callable[[dict[str, Any]], None] | None = None,
              progress: bool = True, **overrides: Any) -> ClassifierRun:
    """Teach a trained CNN run one person's hand: a new run that starts from `run`'s weights and config and
    trains FINE_TUNE's recipe on `dataset` (their labelled digits: `"images:DIR"` with folders 0-9, or a
    `Dataset`), replaying the source's own digits so it keeps the writers it learned from. `overrides`
    change any setting; the new run records where it came from (`mnistlab runs` shows it).

    >>> tuned = fine_tune("runs/cnn-seed", "images:my-hand", out="runs/cnn-seed-my-hand", progress=False)
    >>> tuned.config.run.init_from, tuned.config.train.lr
    ('runs/cnn-seed', 0.0003)
    """
    source = from_dict("cnn", cnn_source(run).state["config"])
    # The source's network, augmentation and precision; not how long, where or on what it trained.
    fresh = dataclasses.replace(
        source, train=dataclasses.replace(source.train, val_size=None, time_budget=None, tune="all"),
        run=dataclasses.replace(source.run, out=None, test_dir=None, dry_run=False,
                                checkpoint_every=0, tensorboard=False, deterministic=False))
    named = {"run.dataset": dataset} if isinstance(dataset, str) else {}
    config = with_overrides(fresh, {**FINE_TUNE, **named, "run.init_from": str(run), **overrides})
    data = dataset if isinstance(dataset, Dataset) else load_data(config)
    batch = min(config.train.batch_size, len(data.train))  # a handful of digits: one batch of them all
    return train_classifier(with_overrides(config, {"batch_size": batch}), data, callback=callback, progress=progress)


def train_group(config: ClassifierConfig | str, seeds: list[int], out: str | Path | None = None,
                progress: bool = True, **overrides: Any) -> list[ClassifierRun]:
    """One run per seed, the members of an ensemble: `out/seed-S` each, and `out/group.json` naming them,
    so that `load(out)` (and every command that takes a run) reads the group as one ensemble. A member
    already trained (a group interrupted and started again) is kept, not trained again:
    `train_group("best", [0, 1, 2, 3, 4], out="runs/best-x5")`, then `load("runs/best-x5")`.
    """
    config = with_overrides(CNN_PRESETS[config] if isinstance(config, str) else config, overrides)
    if not seeds or len(set(seeds)) != len(seeds):
        raise MnistlabError(f"a group needs distinct seeds, got {seeds}")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    group = Path(out or config.run.out or f"runs/cnn-{config.preset}-seeds-{seeds[0]}-{seeds[-1]}-{stamp}")
    runs = []
    for seed in seeds:
        member = group / f"seed-{seed}"
        if (member / CHECKPOINT_NAME).exists():
            state = load_checkpoint(member, kind="cnn")
            kept = from_dict("cnn", state["config"])
            model = CNN(kept.model)
            load_weights(model, state["model"], member, state)
            runs.append(ClassifierRun(member, kept, model, state["metrics"], state["dataset"]["name"]))
            continue
        member_config = with_overrides(config, {"run.seed": seed, "run.out": str(member)})
        runs.append(train_classifier(member_config, progress=progress))
        atomic_write_text(group / GROUP_FILE, json.dumps({"members": [r.dir.name for r in runs]}) + "\n")
    return runs


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


def _accuracy(model: CNN, split, device, dtype, group: Dist) -> float | None:
    if split is None or len(split) == 0:
        return None
    shard = torch.arange(len(split))[group.rank :: group.world_size]
    logits, _ = classify(model, split.images[shard], device, dtype)
    counts = torch.tensor([(logits.argmax(1) == split.labels[shard]).sum().item(), len(shard)], dtype=torch.float64)
    correct, total = group.sum(counts.to(device)).tolist()
    return correct / total


def _load_report(run_dir: Path) -> dict[str, Any]:
    return json.loads((Path(run_dir) / "report.json").read_text())
