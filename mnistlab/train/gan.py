"""Training the DCGAN: an explicit loop with the discriminator and generator steps labelled by objective.

Two update orders:
- simultaneous (the seed): one forward pass, both losses, both gradients taken at the same
  parameters, both optimisers step — what the notebook's single `sess.run([d_opt, g_opt])` did;
- alternating (default): the usual DCGAN order, D first, then G against the updated D.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from mnistlab import plots
from mnistlab.checkpoint import CHECKPOINT_NAME, atomic_write_bytes, load_weights, save_checkpoint
from mnistlab.config import GANConfig, to_dict
from mnistlab.data.datasets import Dataset, load_dataset
from mnistlab.errors import MnistlabError
from mnistlab.inference import to_uint8
from mnistlab.models.dcgan import DCGAN
from mnistlab.train import common
from mnistlab.train.classifier import augment
from mnistlab.train.common import Interrupted

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


@common.restores_torch_settings()
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
    and a checkpoint with both networks, both optimisers and the RNG state.

    `classifier` is the CNN run that scores sample quality during training (default: the shipped
    evaluator). Overrides set any config field by name (`epochs=3`, `time_budget=120`, `batch_size=64`).

    >>> run = train_gan("default", time_budget=60, dataset="mnist-sample")
    >>> run.samples()  # the last epoch's grid
    """
    start = common.start_run("gan", config, overrides, resume, dataset, progress, lambda c: load_dataset(
        c.run.dataset, c.run.data_root, val_size=0, splits=("train", "test")))
    config, state, run_dir, device, world = start.config, start.state, start.run_dir, start.device, start.world
    dtype, memory_format, dataset, say = start.dtype, start.memory_format, start.dataset, start.say
    tc = config.train
    if world.is_main:
        (run_dir / "samples").mkdir(exist_ok=True)

    judge = None
    if tc.eval_every and world.is_main:
        from mnistlab.evaluate import quality_judge

        try:
            judge = quality_judge(dataset, classifier, n_floor=tc.eval_samples, device=str(device))
        except MnistlabError as e:
            say(f"NOTE: no quality metrics during training: {e}")

    train_x, train_y = dataset.train.images.to(device), dataset.train.labels.to(device)
    gan = DCGAN(config.model).to(device, memory_format=memory_format)
    netG, netD = gan.netG, gan.netD
    # weight_decay=0: plain Adam, as the seed (AdamW's fused kernel serves both)
    optD = common.adam(netD.parameters(), device, lr=tc.lr_d, betas=(tc.beta1_d, 0.999), eps=1e-8, weight_decay=0.0)
    optG = common.adam(netG.parameters(), device, lr=tc.lr_g, betas=(tc.beta1_g, 0.999), eps=1e-8, weight_decay=0.0)
    # An exponential moving average of G's weights draws smoother, better digits than G's latest step.
    ema = AveragedModel(netG, multi_avg_fn=get_ema_multi_avg_fn(tc.ema), use_buffers=True) if tc.ema else None
    sampler = ema.module if ema else netG
    fixed_noise = gan.noise(FIXED_SAMPLES, generator=torch.Generator().manual_seed(config.run.seed),
                            digits=torch.arange(FIXED_SAMPLES) % 10).to(device)  # conditional: column d draws d
    history: list[dict[str, Any]] = []
    start_epoch, start_step, done_stats, elapsed = 0, 0, torch.empty(0, 4), 0.0
    if state is not None:
        load_weights(gan, state["model"], run_dir, state)
        common.load_optimizer(optD, state["optimizer_d"])
        common.load_optimizer(optG, state["optimizer_g"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        common.set_rng_state(state["rng"])
        start_epoch, start_step = state["epoch"], state["step_in_epoch"]
        history, done_stats, elapsed = state["metrics"], state["epoch_stats"], state["elapsed_s"]

    common.decorrelate_ranks(world, config.run.seed, start_epoch * 10**6 + start_step)
    batch = tc.batch_size
    steps_per_epoch = len(train_x) // batch
    if steps_per_epoch == 0:
        raise MnistlabError(f"batch size {batch} is larger than the {len(train_x)} training images")
    max_epochs = 10**6 if tc.time_budget else tc.epochs
    env = common.environment(device, dtype, world)
    scale, shift = (1 / 255, 0.0) if tc.real_range == "0,1" else (2 / 255, -1.0)
    smooth = 1.0 - tc.label_smoothing

    def view(x: torch.Tensor) -> torch.Tensor:
        """What D sees: with DiffAugment, every image it judges, real or generated, randomly shifted."""
        return augment(x, tc.augment_shift, 0.0) if tc.augment_shift else x

    def checkpoint(epoch: int, step_in_epoch: int, stats: torch.Tensor) -> None:
        if world.is_main:
            save_checkpoint(run_dir / CHECKPOINT_NAME, "gan", {
                "config": to_dict(config), "model": gan.state_dict(), "optimizer_d": optD.state_dict(),
                "optimizer_g": optG.state_dict(), **({"ema": ema.state_dict()} if ema else {}),
                "rng": common.rng_state(), "epoch": epoch,
                "step_in_epoch": step_in_epoch, "epoch_stats": stats, "elapsed_s": elapsed, "metrics": history,
                "dataset": dataset.provenance, "environment": env,
            })

    board = common.TensorBoard(run_dir, config.run.tensorboard and world.is_main)
    with common.stop_on_signals() as stop, _drawn_when_done(run_dir, history, world.is_main):
        epoch = start_epoch
        while epoch < max_epochs and not (tc.time_budget and elapsed >= tc.time_budget):
            gan.train()
            epoch_t0 = counted_to = time.perf_counter()  # `elapsed` holds the time up to counted_to
            order = common.epoch_order(len(train_x), config.run.seed, epoch, device)
            stats = torch.zeros(steps_per_epoch, 4, device=device)  # loss_D, loss_G, D(x), D(G(z)) per step
            first = start_step if epoch == start_epoch else 0
            if first:
                stats[:first] = done_stats.to(device)
            bar = tqdm(range(first, steps_per_epoch), desc=f"epoch {epoch + 1}", leave=False, unit="step",
                       disable=not (progress and world.is_main))
            for step in bar:
                idx = world.shard(order[step * batch : (step + 1) * batch])
                real = (train_x[idx].unsqueeze(1).float() * scale + shift).contiguous(memory_format=memory_format)
                z = gan.noise(len(idx), device=device)
                real_digits, fake_digits = train_y[idx], gan.digits(z)  # used by a conditional D only

                if tc.simultaneous:
                    # (1)+(2) The seed's single sess.run: D minimises CE(D([x; G(z)]), [real; fake]) while G
                    # minimises CE(D(G(z)), real), both gradients taken from this one forward pass.
                    optD.zero_grad(set_to_none=True)
                    optG.zero_grad(set_to_none=True)
                    with common.autocast(device, dtype):
                        fake = netG(z)
                        out = gan.discriminate(view(torch.cat([real, fake])), _cat(real_digits, fake_digits))
                    out_real, out_fake = out[: len(real)], out[len(real):]
                    loss_D = (gan_loss(out_real, smooth, tc.loss) + gan_loss(out_fake, 0.0, tc.loss)) / 2
                    loss_G = gan_loss(out_fake, 1.0, tc.loss)
                    loss_D.backward(inputs=list(netD.parameters()), retain_graph=True)
                    loss_G.backward(inputs=list(netG.parameters()))
                    common.average_gradients(netD, world)
                    common.average_gradients(netG, world)
                    optD.step()
                    optG.step()
                    if ema is not None:
                        ema.update_parameters(netG)
                else:
                    # (1) Update D: maximise log D(x) + log(1 − D(G(z)))
                    optD.zero_grad(set_to_none=True)
                    with common.autocast(device, dtype):
                        fake = netG(z)
                        out_real = gan.discriminate(view(real), real_digits)
                        out_fake = gan.discriminate(view(fake.detach()), fake_digits)
                    loss_D = gan_loss(out_real, smooth, tc.loss) + gan_loss(out_fake, 0.0, tc.loss)
                    loss_D.backward()
                    common.average_gradients(netD, world)
                    optD.step()
                    # (2) Update G: maximise log D(G(z)), against the discriminator just updated
                    optG.zero_grad(set_to_none=True)
                    with common.autocast(device, dtype):
                        out_gen = gan.discriminate(view(fake), fake_digits)
                    loss_G = gan_loss(out_gen, 1.0, tc.loss)
                    loss_G.backward(inputs=list(netG.parameters()))
                    common.average_gradients(netG, world)
                    optG.step()
                    if ema is not None:
                        ema.update_parameters(netG)

                stats[step] = torch.stack([loss_D.detach(), loss_G.detach(), prob_real(out_real, tc.loss),
                                           prob_real(out_fake, tc.loss)])
                if stop or (config.run.checkpoint_every and (step + 1) % config.run.checkpoint_every == 0):
                    common.check_finite(stats[: step + 1, :2], epoch * steps_per_epoch, "GAN loss")
                    now = time.perf_counter()
                    elapsed, counted_to = elapsed + now - counted_to, now
                    checkpoint(epoch, step + 1, stats[: step + 1])
                    if stop:
                        raise Interrupted("gan", run_dir, stop["signal"])
            common.check_finite(stats[:, :2], epoch * steps_per_epoch, "GAN loss")
            now = time.perf_counter()
            train_time, elapsed = now - epoch_t0, elapsed + now - counted_to
            epoch += 1

            means = world.sum(stats.mean(0)) / world.world
            metrics = {
                "epoch": epoch, "loss_d": means[0].item(), "loss_g": means[1].item(), "d_x": means[2].item(),
                "d_g_z": means[3].item(), "time_s": round(train_time, 3), "elapsed_s": round(elapsed, 3),
                "images_per_s": round((steps_per_epoch - first) * batch / train_time, 1),
            }
            if world.is_main:
                grid = _sample_grid(sampler, fixed_noise, tc.real_range, run_dir, epoch)
                if judge is not None and (epoch % tc.eval_every == 0 or _last_epoch(tc, epoch, elapsed)):
                    metrics.update(_quality(sampler, gan, judge, tc, config.run.seed + epoch, device))
                history.append(metrics)
                checkpoint(epoch, 0, torch.empty(0, 4))
                start.metrics_line(history)
                board.log(metrics, grid)
            else:
                history.append(metrics)
            say(_epoch_line(metrics))
            if callback is not None:
                callback(metrics)
    common.finish_distributed(world)
    return GANRun(run_dir, config, gan, history, dataset.name)


def _cat(a: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor | None:
    return None if b is None else torch.cat([a, b])


def _last_epoch(tc, epoch: int, elapsed: float) -> bool:
    return (tc.time_budget is not None and elapsed >= tc.time_budget) or (tc.time_budget is None and epoch == tc.epochs)


@torch.no_grad()
def _generate(netG: torch.nn.Module, z: torch.Tensor, real_range: str) -> np.ndarray:
    was_training = netG.training
    netG.eval()
    images = to_uint8(netG(z).float().cpu()[:, 0], real_range)
    netG.train(was_training)
    return images


def _sample_grid(netG: torch.nn.Module, fixed_noise: torch.Tensor, real_range: str, run_dir: Path, epoch: int):
    grid = plots.grid_image(_generate(netG, fixed_noise, real_range), ncol=10, scale=2)
    atomic_write_bytes(run_dir / "samples" / f"epoch_{epoch:03d}.png", plots.png_bytes(grid))
    return grid


@contextlib.contextmanager
def _drawn_when_done(run_dir: Path, history: list[dict[str, Any]], is_main: bool) -> Iterator[None]:
    """However training ends, draw curves.png and progress.gif (every epoch's sample grid) from what it has."""
    try:
        yield
    finally:
        if is_main and history:
            plots.save(plots.gan_curves(history), run_dir / "curves.png")
            plots.save_gif([_open_copy(run_dir / "samples" / f"epoch_{e:03d}.png") for e in range(1, len(history) + 1)],
                           run_dir / "progress.gif")


def _open_copy(path: Path):
    from PIL import Image

    with Image.open(path) as image:
        return image.copy()


def _quality(netG: torch.nn.Module, gan: DCGAN, judge, tc, seed: int, device: torch.device) -> dict[str, Any]:
    z = gan.noise(tc.eval_samples, generator=torch.Generator().manual_seed(seed)).to(device)
    quality = judge(_generate(netG, z, tc.real_range), asked=gan.digits(z))
    keep = ("fcd", "inception_score", "class_entropy", "confident_fraction", "asked_digit_accuracy", "n")
    return {"fcd_real_floor": judge.floor} | {k: quality[k] for k in keep if k in quality}


def _epoch_line(m: dict[str, Any]) -> str:
    line = (f"epoch {m['epoch']:3d}  loss D {m['loss_d']:.4f}  loss G {m['loss_g']:.4f}  D(x) {m['d_x']:.3f}  "
            f"D(G(z)) {m['d_g_z']:.3f}  {m['time_s']:.1f}s  {m['images_per_s']:.0f} img/s")
    if m.get("fcd") is not None:
        line += (f"  | FCD {m['fcd']:.2f} (floor {m['fcd_real_floor']:.2f})  IS {m['inception_score']:.2f}  "
                 f"entropy {m['class_entropy']:.3f}  confident {m['confident_fraction']:.2f}")
        if m.get("asked_digit_accuracy") is not None:
            line += f"  asked digit drawn {m['asked_digit_accuracy']:.2f}"
    return line
