"""Trained models, ready for use: `load(run_or_checkpoint)` gives a `Classifier` or a `Generator`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from mnistlab.checkpoint import load_checkpoint, load_weights, resolve_checkpoint
from mnistlab.config import from_dict
from mnistlab.device import autocast, autocast_dtype, resolve_device
from mnistlab.errors import MnistlabError
from mnistlab.models.cnn import CNN
from mnistlab.models.dcgan import DCGAN
from mnistlab.ood import Digitness, answer
from mnistlab.photo.frame import to_mnist_batch
from mnistlab.photo.read import read_number
from mnistlab.pixels import to_float, to_uint8
from mnistlab.runs import group_members


@torch.no_grad()
def classify(
    model: torch.nn.Module, images: torch.Tensor, device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None, batch_size: int = 2000,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, penultimate features) of a CNN, both float32 on the CPU.

    `images` are uint8 (N, 28, 28) in 0..255 or float (N, 28, 28) / (N, 1, 28, 28) in [0, 1].
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    logits, features = [], []
    for start in range(0, len(images), batch_size):
        x = to_float(images[start : start + batch_size].to(device), "0,1", torch.channels_last)
        with autocast(device, dtype):
            f = model.embed(x)
            out = model.logits(f)
        logits.append(out.float().cpu())
        features.append(f.float().cpu())
    model.train(was_training)
    if not logits:
        return torch.empty(0, 10), torch.empty(0, getattr(model, "embedding_dim", 0))
    return torch.cat(logits), torch.cat(features)


@dataclass
class Classifier:
    """A trained CNN. `predict` takes what a person has: files, PIL images, arrays or tensors."""

    model: CNN
    classes: list[str]
    path: Path
    dataset: str
    summary: dict[str, Any]
    device: torch.device
    dtype: torch.dtype | None
    temperature: float = 1.0  # logits are divided by it: fitted on validation (`mnistlab.calibration`)
    digitness: Digitness | None = None  # how digit-like an input is (`mnistlab.ood`); None for runs made before it
    members: list[Classifier] = field(default_factory=list)  # an ensemble's other runs: probabilities averaged

    def predict(self, images: Sequence[Any] | Any, abstain: bool = True) -> list[dict[str, Any]]:
        """One dict per image, one digit each: `digit` (the class index), `label`, `probabilities` (10 floats),
        `digitness` (the share of validation digits less digit-like than it; None for a run without the
        scale), and `image`, the 28x28 float array the model saw: the photo's ink, framed as MNIST frames
        digits (see `mnistlab.photo.frame`). When the input is not digit-like, or the two likeliest digits
        are close, `digit` and `label` are None and `reason` says why ("not a digit", "unsure: 4 or 9");
        `abstain=False` always names the likeliest digit.

        >>> load("runs/cnn-seed").predict(["seven.png"])[0]["label"]
        '7'
        """
        if not isinstance(images, (list, tuple)):
            images = [images]
        batch = to_mnist_batch(images)
        probs, digitness = self.assess(batch)
        results = []
        for p, likeness, img in zip(probs, digitness, batch):
            digit, reason = answer(likeness, p, self.classes, abstain)
            results.append({"digit": digit, "label": None if reason else self.classes[digit],
                            "probabilities": [round(float(v), 6) for v in p], "digitness": _shown(likeness),
                            **({"reason": reason} if reason else {}), "image": img.numpy()})
        return results

    def probabilities(self, digits: np.ndarray | torch.Tensor) -> np.ndarray:
        """(N, 10) class probabilities of digits already framed as MNIST's: (N, 28, 28), uint8 or floats in [0, 1]."""
        return self._assessed(torch.as_tensor(np.asarray(digits)), with_digitness=False)[0]

    def assess(self, digits: np.ndarray | torch.Tensor) -> tuple[np.ndarray, list[float | None]]:
        """`probabilities(digits)`, and each digit's digitness (None without the scale), unrounded: the
        verdicts are made on these, and only what is shown is rounded."""
        probabilities, digitness = self._assessed(torch.as_tensor(np.asarray(digits)))
        if digitness is None:
            return probabilities, [None] * len(probabilities)
        return probabilities, [float(v) for v in digitness]

    def _assessed(self, digits: torch.Tensor, with_digitness: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        logits, features = classify(self.model, digits, self.device, self.dtype)
        probabilities = torch.softmax(logits / self.temperature, 1).numpy()
        digitness = self.digitness.digitness(logits, features) if self.digitness and with_digitness else None
        if digitness is not None:  # a blank (a cleared canvas, a photo of nothing) holds no digit
            digitness[digits.flatten(1).amax(1).numpy() == 0] = 0.0
        if self.members:  # an ensemble: its members' calibrated probabilities averaged, and their digitness
            assessed = [(probabilities, digitness), *(m._assessed(digits, with_digitness) for m in self.members)]
            probabilities = np.mean([p for p, _ in assessed], axis=0)
            scales = [d for _, d in assessed]
            digitness = None if any(d is None for d in scales) else np.mean(scales, axis=0)
        return probabilities, digitness

    def explain(self, image: Any, framed: bool = False) -> dict[str, Any]:
        """Why it answered for one image, framed as `predict` frames it (`framed=True`: already framed, a
        float (28, 28) in [0, 1] such as `predict`'s `image`): `digit` and `runner_up` (class
        indices, with their `label`s), `attribution` (28 x 28: how much each pixel of `image`, the framed
        digit, pushed the answer's logit up or down) and `toward_runner_up` (where ink would have argued for
        the runner-up instead), by integrated gradients (`mnistlab.explain`; needs the `explain` extra).

        >>> why = load("runs/cnn-seed").explain("seven.png")
        >>> why["label"], np.shape(why["attribution"])
        ('7', (28, 28))
        """
        from mnistlab.explain import explain

        digit = torch.as_tensor(np.asarray(image, np.float32))[None] if framed else to_mnist_batch([image])
        probabilities, digitness = self.assess(digit)
        models = [member.model for member in (self, *self.members)]
        return {**explain(models, digit[0].numpy(), probabilities[0], self.classes),
                "probabilities": [round(float(v), 6) for v in probabilities[0]], "digitness": _shown(digitness[0]),
                "image": digit[0].numpy()}

    def read(self, images: Sequence[Any] | Any, names: Sequence[str] | None = None,
             abstain: bool = True) -> list[dict[str, Any]]:
        """The number written in each image (1 to 10 digits on a line), read left to right: one dict per
        image with `file`, `text` and `digits`, a list of `{digit, probabilities, digitness, box}` with `box`
        (x0, y0, x1, y1) in the image's own pixels; an image that cannot be read has `error` instead, and the
        others are still read. A mark that is not digit-like, or not clearly one digit, has `digit` None and
        a `reason` (see `predict`), and "?" in `text` ("4?2" for "4A2"); `abstain=False` reads every mark.

        >>> reading = load("runs/cnn-seed").read(["number.jpg"])[0]
        >>> sorted(reading), len(reading["digits"]), sorted(reading["digits"][0])
        (['digits', 'file', 'text'], 4, ['box', 'digit', 'digitness', 'probabilities'])
        """
        if not isinstance(images, (list, tuple)):
            images = [images]
        names = list(names) if names is not None else [
            str(x) if isinstance(x, (str, os.PathLike)) else f"image {i + 1}" for i, x in enumerate(images)]
        results = []
        for image, name in zip(images, names):
            try:
                reading = self.read_one(image, name, abstain)
            except MnistlabError as e:
                results.append({"file": name, "error": str(e)})
                continue
            digits = [{k: v for k, v in d.items() if k != "image"} for d in reading["digits"]]
            results.append({"file": name, "text": reading["text"], "digits": digits})
        return results

    def read_one(self, image: Any, name: str = "the image", abstain: bool = True) -> dict[str, Any]:
        """`read` of one image, raising MnistlabError when it holds no digit; each digit also has `image`,
        the 28x28 float array the model saw."""
        reading = read_number(image, self.probabilities, name=name)
        _, digitness = self.assess(np.stack([d.image for d in reading.digits]))
        digits = []
        for read, likeness in zip(reading.digits, digitness):
            _, reason = answer(likeness, np.asarray(read.probabilities), self.classes, abstain)
            digits.append({**read.to_dict(), "digit": None if reason else read.digit, "digitness": _shown(likeness),
                           "image": read.image,
                           **({"reason": reason} if reason else {})})
        return {"text": "".join("?" if d["digit"] is None else str(d["digit"]) for d in digits), "digits": digits}


@dataclass
class Generator:
    """A trained DCGAN generator: `generate` draws digits, `interpolate` walks between two of them."""

    gan: DCGAN
    real_range: str
    path: Path
    dataset: str
    summary: dict[str, Any]  # the metrics of the epoch whose weights these are
    device: torch.device
    checkpoint: str = "last"  # which of its run's checkpoints: "best" (best.safetensors) or "last"

    @torch.no_grad()
    def images(self, z: torch.Tensor) -> np.ndarray:
        """Latent vectors (N, latent_dim) → uint8 (N, 28, 28), 0 = background, 255 = ink."""
        self.gan.eval()
        x = self.gan(z.to(self.device)).float().cpu()[:, 0]
        return to_uint8(x, self.real_range)

    @property
    def conditional(self) -> bool:
        """Whether you can ask for a digit: `generate(n, digit=7)` (not of clusters found without labels)."""
        return self.gan.config.conditional and not self.gan.config.clusters

    def generate(self, n: int, seed: int | None = None, digit: int | None = None) -> np.ndarray:
        """`n` new digits as uint8 (n, 28, 28); the same seed gives the same digits.
        A conditional generator draws `digit` (0–9) when given, else digits drawn uniformly.

        >>> load("runs/gan-default").generate(16, seed=1).shape
        (16, 28, 28)
        """
        return self.images(self.latents(n, seed, digit))

    def latents(self, n: int, seed: int | None = None, digit: int | None = None) -> torch.Tensor:
        """The (n, latent_dim) latent vectors `generate(n, seed, digit)` draws from."""
        if n < 1:
            raise MnistlabError(f"the number of images must be at least 1, got {n}")
        digits = None
        if digit is not None:
            if self.gan.config.clusters:
                raise MnistlabError("this generator was conditioned on clusters it found in its images, not on "
                                    "digits: it cannot be asked for a digit (the default preset can)")
            if not self.conditional:
                raise MnistlabError("this generator was trained unconditional: it cannot be asked for a digit "
                                    "(train with --set conditional=true, as the default preset does)")
            if not 0 <= digit <= 9:
                raise MnistlabError(f"the digit must be 0..9, got {digit}")
            digits = torch.full((n,), digit)
        g = torch.Generator().manual_seed(seed if seed is not None else int(torch.seed() % 2**31))
        return self.gan.noise(n, generator=g, digits=digits)

    def interpolate(self, seed_a: int, seed_b: int, steps: int = 8) -> np.ndarray:
        """uint8 (steps, 28, 28): a straight walk through latent space from seed_a's digit to seed_b's.

        >>> load("runs/gan-default").interpolate(1, 2, steps=8).shape
        (8, 28, 28)
        """
        if steps < 2:
            raise MnistlabError(f"an interpolation needs at least 2 steps, got {steps}")
        za = self.gan.noise(1, generator=torch.Generator().manual_seed(seed_a))
        zb = self.gan.noise(1, generator=torch.Generator().manual_seed(seed_b))
        t = torch.linspace(0, 1, steps).unsqueeze(1)
        return self.images(za + t * (zb - za))


def load(
    run_or_checkpoint: str | Path, device: str = "cpu", kind: str | None = None, precision: str = "auto",
    checkpoint: str | None = None,
) -> Classifier | Generator:
    """Load a run directory or checkpoint file for inference: a `Classifier` (CNN) or a `Generator` (GAN).

    Several CNN runs (a list, one string of paths joined by commas, or a group directory that `train cnn
    --seeds` wrote) load as one ensemble: a `Classifier` whose probabilities are the average of its members'
    calibrated probabilities.
    `kind` ("cnn" or "gan") refuses a checkpoint of the other kind; `precision` is "auto", "fp32" or "bf16".
    `checkpoint` picks a run directory's file: "best" (best.safetensors, the generator with the best FCD of
    a GAN run's evaluations), "last" (checkpoint.safetensors), or None (default): best when the run kept
    one, else last. `.path` says which file was loaded, and a `Generator`'s `.checkpoint` which role.

    >>> model = load("runs/cnn-seed")
    >>> model.predict("seven.png")[0]["digit"]
    7
    """
    if isinstance(run_or_checkpoint, (list, tuple)) or "," in str(run_or_checkpoint):
        return _ensemble(run_or_checkpoint, device, kind, precision)
    members = group_members(run_or_checkpoint)
    if members is not None:  # a group trained together (train cnn --seeds): its runs as one ensemble
        return _ensemble(members, device, kind, precision)
    path = resolve_checkpoint(run_or_checkpoint, checkpoint)
    state = load_checkpoint(path, kind=kind, which=checkpoint)
    config = from_dict(state["kind"], state["config"])
    dev = resolve_device(device)
    summary = state["metrics"][-1] if state.get("metrics") else {}
    if state["kind"] == "cnn":
        model = CNN(config.model)
        load_weights(model, state["model"], path, state)
        model.to(dev, memory_format=torch.channels_last).eval()
        temperature = state.get("temperature", 1.0)
        digitness = Digitness.from_state(state["digitness"], temperature) if "digitness" in state else None
        return Classifier(model, state["classes"], path, state["dataset"]["name"], summary, dev,
                          autocast_dtype(dev, precision), temperature, digitness)
    gan = DCGAN(config.model)
    if state["role"] == "best":  # the generator alone: the weights that drew its best samples
        load_weights(gan.netG, state["generator"], path, state)
    else:
        load_weights(gan, state["model"], path, state)
    if "ema" in state:  # the moving average of G's weights is what draws the digits
        ema = {k.removeprefix("module."): v for k, v in state["ema"].items() if k.startswith("module.")}
        load_weights(gan.netG, ema, path, state)
    gan.to(dev).eval()
    return Generator(gan, config.train.real_range, path, state["dataset"]["name"], summary, dev, state["role"])


def _ensemble(runs: Sequence[str | Path] | str, device: str, kind: str | None, precision: str) -> Classifier:
    """CNN runs of one input format and one set of classes, loaded as one `Classifier` (the first, with the
    others as its `members`)."""
    paths = [p for p in (runs.split(",") if isinstance(runs, str) else runs) if str(p).strip()]
    if not paths:
        raise MnistlabError("an ensemble needs at least one run")
    if kind not in (None, "cnn"):
        raise MnistlabError("an ensemble is of CNN runs: several generators cannot be averaged")
    models = [load(str(p).strip(), device=device, kind="cnn", precision=precision) for p in paths]
    first = models[0]
    for other in models[1:]:
        if other.classes != first.classes:
            raise MnistlabError(f"{other.path} reads {', '.join(other.classes)} but {first.path} reads "
                                f"{', '.join(first.classes)}: an ensemble's runs must share their classes")
    first.members = models[1:]
    return first


def _shown(digitness: float | None) -> float | None:
    """A digitness as the answers show it: to 4 places (the verdict was made on the whole value)."""
    return None if digitness is None else round(digitness, 4)
