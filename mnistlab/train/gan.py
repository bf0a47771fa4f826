"""Training the DCGAN: its D and G steps, labelled by their objectives; `train.loop` does the rest.

Two update orders:
- simultaneous (the seed): one forward pass, both losses, both gradients taken at the same
  parameters, both optimisers step — what the notebook's single `sess.run([d_opt, g_opt])` did;
- alternating (default): the usual DCGAN order, D first, then G against the updated D.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from mnistlab import plots
from mnistlab.checkpoint import (
    BEST_NAME,
    CHECKPOINT_NAME,
    load_weights,
    read_checkpoint_header,
    save_checkpoint,
)
from mnistlab.config import GANConfig, to_dict
from mnistlab.data.datasets import Dataset, load_dataset
from mnistlab.device import autocast
from mnistlab.errors import MnistlabError
from mnistlab.evaluate import quality_judge
from mnistlab.files import atomic_write_bytes
from mnistlab.models.dcgan import DCGAN
from mnistlab.pixels import to_float, to_uint8
from mnistlab.train import loop
from mnistlab.train.augment import augment
from mnistlab.train.clusters import cluster_shares, find_clusters
from mnistlab.train.distributed import average_gradients
from mnistlab.train.optim import adam, load_optimizer
from mnistlab.train.rundir import environment

FIXED_SAMPLES = 80  # digits in each epoch's sample grid (8 rows of 10), drawn from the same noise every epoch


@dataclass
class GANRun:
    """What `train_gan` returns: the run directory, the trained pair and its metrics per epoch."""

    dir: Path
    config: GANConfig
    gan: DCGAN
    metrics: list[dict[str, Any]] = field(default_factory=list)
    dataset: str = ""

    def summary(self) -> str:
        last = self.metrics[-1] if self.metrics else {}
        quality = next((m for m in reversed(self.metrics) if m.get("fcd") is not None), None)
        headline = (f"FCD {quality['fcd']:.2f}, class entropy {quality['class_entropy']:.3f} "
                    f"({quality['n']} samples, epoch {quality['epoch']})" if quality else "no quality metrics")
        lines = [f"trained gan/{self.config.preset} on {self.dataset}: {len(self.metrics)} epochs, "
                 f"{sum(m['time_s'] for m in self.metrics):.0f}s of training; {headline}; "
                 f"D(x) {last.get('d_x', 0):.3f}, D(G(z)) {last.get('d_g_z', 0):.3f}"]
        lines += [f"  {name:<11}{self.dir / file}" for name, file in (
            ("checkpoint", CHECKPOINT_NAME), ("metrics", "metrics.jsonl"), ("config", "config.json"),
            ("samples", "samples/"), ("gif", "progress.gif"), ("curves", "curves.png"))]
        if (self.dir / BEST_NAME).is_file():
            best = read_checkpoint_header(self.dir / BEST_NAME).state
            lines.insert(2, f"  {'best':<11}{self.dir / BEST_NAME}  (FCD {best['fcd']:.2f}, epoch {best['epoch']})")
        return "\n".join(lines)

    def plot_curves(self):
        """Losses, D outputs and quality per epoch, as a matplotlib figure."""
        return plots.gan_curves(self.metrics)

    def samples(self, epoch: int | None = None):
        """The fixed-noise sample grid of an epoch (default: the last) as a PIL image."""
        from PIL import Image

        return Image.open(self.dir / "samples" / f"epoch_{epoch or len(self.metrics):03d}.png")


def gan_loss(out: torch.Tensor, real_target: float, kind: str) -> torch.Tensor:
    """The loss of discriminator outputs against a target probability of 'real'.

    seed-softmax: the seed's two tanh outputs taken as softmax logits, class 1 = real (floor ≈ 0.127).
    bce: one logit, binary cross-entropy (with real_target = 1 for G, this is the non-saturating loss).
    """
    out = out.float()
    if kind == "seed-softmax":
        target = torch.tensor([1.0 - real_target, float(real_target)], device=out.device).expand_as(out)
        return F.cross_entropy(out, target)
    target = torch.full((len(out),), float(real_target), device=out.device)
    return F.binary_cross_entropy_with_logits(out.view(-1), target)


def prob_real(out: torch.Tensor, kind: str) -> torch.Tensor:
    """Mean probability of 'real' the discriminator gives a batch: D(x) or D(G(z))."""
    out = out.float().detach()
    return (torch.softmax(out, 1)[:, 1] if kind == "seed-softmax" else torch.sigmoid(out.view(-1))).mean()


class GANReport:
    """What a GAN run shows of itself, apart from training: a sample grid each epoch, its quality judged by a
    CNN every `eval_every` epochs, best.safetensors whenever that beats the run's best, and at the end its
    curves and a GIF of the grids."""

    def __init__(self, start: loop.RunStart[GANConfig], classifier: str | Path | None):
        self.start, self.config, self.tc = start, start.config, start.config.train
        if start.group.is_main:
            (start.run_dir / "samples").mkdir(exist_ok=True)
        self.judge = None
        if self.tc.eval_every and start.group.is_main:
            try:
                self.judge = quality_judge(start.dataset, classifier, n_floor=self.tc.eval_samples,
                                           device=str(start.device))
            except MnistlabError as e:
                start.say(f"NOTE: no quality metrics during training: {e}")
        self.best_fcd = float("inf")  # the FCD of the generator kept in best.safetensors
        self.fixed_noise: torch.Tensor | None = None  # the grid's latents, the same every epoch

    def end_epoch(self, gan: DCGAN, sampler: torch.nn.Module, metrics: dict[str, Any], last: bool) -> Any:
        """The epoch's grid (written, and returned for TensorBoard) and, when due, its quality in `metrics`."""
        if not self.start.group.is_main:
            return None
        epoch, tc, device = metrics["epoch"], self.tc, self.start.device
        if self.fixed_noise is None:  # conditional: column d of the grid draws digit d
            self.fixed_noise = gan.noise(FIXED_SAMPLES, generator=torch.Generator().manual_seed(self.config.run.seed),
                                         digits=torch.arange(FIXED_SAMPLES) % max(gan.classes, 1)).to(device)
        grid = plots.grid_image(_generate(sampler, self.fixed_noise, tc.real_range), ncol=10, scale=2)
        atomic_write_bytes(self.start.run_dir / "samples" / f"epoch_{epoch:03d}.png", plots.png_bytes(grid))
        if self.judge is not None and (epoch % tc.eval_every == 0 or last):
            z = gan.noise(tc.eval_samples, generator=torch.Generator().manual_seed(self.config.run.seed + epoch))
            quality = self.judge(_generate(sampler, z.to(device), tc.real_range), asked=gan.asked_digits(z))
            keep = ("fcd", "inception_score", "class_entropy", "confident_fraction", "asked_digit_accuracy", "n")
            metrics.update({"fcd_real_floor": self.judge.floor} | {k: quality[k] for k in keep if k in quality})
            if quality["fcd"] < self.best_fcd:
                self.best_fcd = quality["fcd"]
                self.keep_best(sampler, metrics)
        return grid

    def keep_best(self, sampler: torch.nn.Module, metrics: dict[str, Any]) -> None:
        """Write best.safetensors, atomically: the weights that drew this epoch's samples and its metrics."""
        save_checkpoint(self.start.run_dir / BEST_NAME, "gan", {
            "config": to_dict(self.config), "generator": sampler.state_dict(), "epoch": metrics["epoch"],
            "fcd": metrics["fcd"], "metrics": [metrics], "dataset": self.start.dataset.provenance,
            "environment": environment(self.start.device, self.start.dtype, self.start.group)}, role="best")

    @staticmethod
    def describe(m: dict[str, Any]) -> str:
        line = (f"epoch {m['epoch']:3d}  loss D {m['loss_d']:.4f}  loss G {m['loss_g']:.4f}  D(x) {m['d_x']:.3f}  "
                f"D(G(z)) {m['d_g_z']:.3f}  {m['time_s']:.1f}s  {m['images_per_s']:.0f} img/s")
        if m.get("fcd") is not None:
            line += (f"  | FCD {m['fcd']:.2f} (floor {m['fcd_real_floor']:.2f})  IS {m['inception_score']:.2f}  "
                     f"entropy {m['class_entropy']:.3f}  confident {m['confident_fraction']:.2f}")
            if m.get("asked_digit_accuracy") is not None:
                line += f"  asked digit drawn {m['asked_digit_accuracy']:.2f}"
        return line

    def finish(self, history: list[dict[str, Any]], completed: bool) -> None:
        """However training ends, draw curves.png and progress.gif (every epoch's sample grid) from what it has."""
        if history:
            run_dir = self.start.run_dir
            plots.save(plots.gan_curves(history), run_dir / "curves.png")
            plots.save_gif([_open_copy(run_dir / "samples" / f"epoch_{e:03d}.png") for e in range(1, len(history) + 1)],
                           run_dir / "progress.gif")



class GANTrainer:
    """The DCGAN's part of the loop: a D step and a G step per batch, and its state; `GANReport` shows it."""

    stat_names = ("loss_d", "loss_g", "d_x", "d_g_z")
    finite_stats = 2  # the two losses; D's outputs are probabilities

    def __init__(self, start: loop.RunStart[GANConfig], classifier: str | Path | None):
        self.start, self.config = start, start.config
        tc = self.tc = self.config.train
        self.report = GANReport(start, classifier)  # before the networks: its judge's CNN draws from the seeded stream

        self.train_x = start.dataset.train.images.to(start.device)
        self.gan = DCGAN(self.config.model).to(start.device, memory_format=start.memory_format)
        k = self.config.model.clusters
        if k:  # self-conditioned: told clusters of the images, never their labels
            clusters = find_clusters(start.dataset.train.images, k, self.config.run.seed)
            self.gan.cluster_shares.copy_(cluster_shares(clusters, k))
            self.train_y = clusters.to(start.device)
        else:
            labels = start.dataset.train.labels  # None for data without labels (images:DIR)
            self.train_y = labels.to(start.device) if labels is not None else None
        self.netG, self.netD = self.gan.netG, self.gan.netD
        # weight_decay=0: plain Adam, as the seed (AdamW's fused kernel serves both)
        self.optD = adam(self.netD.parameters(), start.device, lr=tc.lr_d, betas=(tc.beta1_d, 0.999), eps=1e-8,
                         weight_decay=0.0)
        self.optG = adam(self.netG.parameters(), start.device, lr=tc.lr_g, betas=(tc.beta1_g, 0.999), eps=1e-8,
                         weight_decay=0.0)
        # An exponential moving average of G's weights draws smoother, better digits than G's latest step.
        self.ema = (AveragedModel(self.netG, multi_avg_fn=get_ema_multi_avg_fn(tc.ema), use_buffers=True)
                    if tc.ema else None)
        self.sampler = self.ema.module if self.ema else self.netG  # what draws the run's digits
        self.smooth = 1.0 - tc.label_smoothing

    def train(self) -> None:
        self.gan.train()

    def view(self, x: torch.Tensor) -> torch.Tensor:
        """What D sees: with DiffAugment, every image it judges, real or generated, randomly shifted."""
        return augment(x, self.tc.augment_shift, 0.0) if self.tc.augment_shift else x

    def step(self, idx: torch.Tensor, step: int, total_steps: int) -> torch.Tensor:
        tc, gan, netG, netD, optD, optG = self.tc, self.gan, self.netG, self.netD, self.optD, self.optG
        device, dtype, group, smooth = self.start.device, self.start.dtype, self.start.group, self.smooth
        real = to_float(self.train_x[idx], tc.real_range, self.start.memory_format)
        z = gan.noise(len(idx), device=device)
        real_digits = self.train_y[idx] if self.train_y is not None else None  # used by a conditional D only
        fake_digits = gan.digits(z)

        if tc.simultaneous:
            # (1)+(2) The seed's single sess.run: D minimises CE(D([x; G(z)]), [real; fake]) while G
            # minimises CE(D(G(z)), real), both gradients taken from this one forward pass.
            optD.zero_grad(set_to_none=True)
            optG.zero_grad(set_to_none=True)
            with autocast(device, dtype):
                fake = netG(z)
                out = gan.discriminate(self.view(torch.cat([real, fake])), _cat(real_digits, fake_digits))
            out_real, out_fake = out[: len(real)], out[len(real):]
            loss_D = (gan_loss(out_real, smooth, tc.loss) + gan_loss(out_fake, 0.0, tc.loss)) / 2
            loss_G = gan_loss(out_fake, 1.0, tc.loss)
            loss_D.backward(inputs=list(netD.parameters()), retain_graph=True)
            loss_G.backward(inputs=list(netG.parameters()))
            average_gradients(netD, group)
            average_gradients(netG, group)
            optD.step()
            optG.step()
        else:
            # (1) Update D: maximise log D(x) + log(1 − D(G(z)))
            optD.zero_grad(set_to_none=True)
            with autocast(device, dtype):
                fake = netG(z)
                out_real = gan.discriminate(self.view(real), real_digits)
                out_fake = gan.discriminate(self.view(fake.detach()), fake_digits)
            loss_D = gan_loss(out_real, smooth, tc.loss) + gan_loss(out_fake, 0.0, tc.loss)
            loss_D.backward()
            average_gradients(netD, group)
            optD.step()
            # (2) Update G: maximise log D(G(z)), against the discriminator just updated
            optG.zero_grad(set_to_none=True)
            with autocast(device, dtype):
                out_gen = gan.discriminate(self.view(fake), fake_digits)
            loss_G = gan_loss(out_gen, 1.0, tc.loss)
            loss_G.backward(inputs=list(netG.parameters()))
            average_gradients(netG, group)
            optG.step()
        if self.ema is not None:
            self.ema.update_parameters(netG)
        return torch.stack([loss_D.detach(), loss_G.detach(), prob_real(out_real, tc.loss),
                            prob_real(out_fake, tc.loss)])

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.gan.state_dict(), "optimizer_d": self.optD.state_dict(),
                "optimizer_g": self.optG.state_dict(), **({"ema": self.ema.state_dict()} if self.ema else {}),
                **({"best_fcd": self.report.best_fcd} if self.report.best_fcd < float("inf") else {})}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_weights(self.gan, state["model"], self.start.run_dir, state)
        load_optimizer(self.optD, state["optimizer_d"])
        load_optimizer(self.optG, state["optimizer_g"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.report.best_fcd = state.get("best_fcd", float("inf"))  # resumed, a worse generator never replaces the best

    def end_epoch(self, metrics: dict[str, Any], last: bool) -> Any:
        return self.report.end_epoch(self.gan, self.sampler, metrics, last)

    def describe(self, metrics: dict[str, Any]) -> str:
        return self.report.describe(metrics)

    def finish(self, history: list[dict[str, Any]], completed: bool) -> None:
        self.report.finish(history, completed)

def load_data(config: GANConfig) -> Dataset:
    """The splits a GAN trains on (train) and is judged against (test); no validation split; labels only
    when a conditional GAN needs them."""
    return load_dataset(config.run.dataset, config.run.data_root, val_size=0, splits=("train", "test"),
                        framing=config.run.framing, need_labels=False)


def check_data(config: GANConfig, data: Dataset) -> None:
    """A conditional GAN draws the digit asked for, so it learns from labels; a self-conditioned one needs
    at least an image per cluster. Refuse data without them."""
    if config.model.conditional and not config.model.clusters and data.train.labels is None:
        raise MnistlabError(f"{data.name} has no labels, but gan/{config.preset} is conditional (it learns to draw "
                            "the digit asked for from labels): use --preset unconditional, or --set conditional=false")
    if len(data.train) < config.model.clusters:
        raise MnistlabError(f"{len(data.train)} training images cannot form model.clusters = {config.model.clusters} "
                            f"clusters; use --set clusters=N with N at most {len(data.train)}")


@loop.restores_torch_settings()
def train_gan(
    config: GANConfig | str = "default",
    dataset: Dataset | str | None = None,
    *,
    resume: str | Path | None = None,
    classifier: str | Path | None = None,
    callback: Callable[[dict[str, Any]], None] | None = None,
    progress: bool = True,
    **overrides: Any,
) -> GANRun:
    """Train a DCGAN and write its run directory: config, metrics, a sample grid per epoch, a GIF, curves,
    and a checkpoint with both networks, both optimisers and the RNG state; at each quality evaluation whose
    FCD beats the run's best so far, best.safetensors: the generator that drew those samples (its EMA when
    `ema` > 0), which `load`, `generate`, `evaluate gan`, `export` and `serve` read by default.

    `classifier` is the CNN run that scores sample quality during training (default: the shipped
    evaluator). Overrides set any config field by name (`epochs=3`, `time_budget=120`, `batch_size=64`).

    >>> run = train_gan("default", dataset="mnist-sample", dry_run=True, eval_every=0, out="doc-runs/gan",
    ...                 progress=False)
    >>> run.samples().size  # the last epoch's grid: 10 columns by 8 rows of 28x28 digits, scaled 2x
    (604, 484)
    """
    start = loop.start_run("gan", config, overrides, resume, dataset, progress, load_data, check_data)
    trainer = GANTrainer(start, classifier)
    history = loop.fit(start, trainer, callback)
    return GANRun(start.run_dir, start.config, trainer.gan, history, start.dataset.name)


def _cat(a: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor | None:
    return None if b is None else torch.cat([a, b])


@torch.no_grad()
def _generate(netG: torch.nn.Module, z: torch.Tensor, real_range: str) -> np.ndarray:
    was_training = netG.training
    netG.eval()
    images = to_uint8(netG(z).float().cpu()[:, 0], real_range)
    netG.train(was_training)
    return images


def _open_copy(path: Path):
    from PIL import Image

    with Image.open(path) as image:
        return image.copy()


