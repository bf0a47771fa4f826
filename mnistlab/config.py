"""Typed configuration: one dataclass per concern, named presets, and overrides from TOML or the CLI.

A run is described by a `ClassifierConfig` (model + train + run) or a `GANConfig` (model + train + run).
Presets are plain named instances; `--config FILE.toml` and `--set key=value` only override their fields.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from mnistlab.errors import MnistlabError


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise MnistlabError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


# ----------------------------------------------------------------------------------------------
# The CNN


@dataclass(frozen=True)
class CNNConfig:
    """A stack of convolutions (TensorFlow `SAME` padding), one hidden dense layer, ten logits."""

    filters: tuple[int, ...] = (4, 8, 12)  # output channels of each conv layer
    kernels: tuple[int, ...] = (5, 4, 4)  # square kernel size of each conv layer
    strides: tuple[int, ...] = (1, 2, 2)  # stride of each conv layer; the seed downsamples by stride, not pooling
    dilations: tuple[int, ...] = (1, 1, 1)  # dilation of each conv layer (a seed "future improvement")
    fc: int = 200  # width of the hidden fully connected layer; 0 = straight to the logits
    dropout: float = 0.0  # drop probability before the last layer (Görner used keep 0.75 → 0.25)
    batch_norm: bool = False  # batch norm after each conv and the hidden dense layer
    global_pool: bool = False  # average-pool the last feature map instead of flattening it
    weight_init: str = "truncated-normal"  # "truncated-normal" (TF, std 0.1, cut at 2 std) or "torch" (Kaiming-uniform)
    bias_init: str = "zeros"  # "zeros", "truncated-normal" (same as weights) or "constant"
    bias_constant: float = 0.1  # the bias value when bias_init = "constant" (Görner used 0.1 with ReLU)

    def __post_init__(self) -> None:
        n = len(self.filters)
        if not (len(self.kernels) == len(self.strides) == len(self.dilations) == n) or n == 0:
            raise MnistlabError(
                f"filters, kernels, strides and dilations need one entry per conv layer; got "
                f"{len(self.filters)}, {len(self.kernels)}, {len(self.strides)}, {len(self.dilations)}"
            )
        _choice("weight_init", self.weight_init, ("truncated-normal", "torch"))
        _choice("bias_init", self.bias_init, ("zeros", "truncated-normal", "constant"))
        if not 0.0 <= self.dropout < 1.0:
            raise MnistlabError(f"dropout must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class TrainConfig:
    """How a classifier is optimised."""

    epochs: int = 5  # passes over the training split
    batch_size: int = 100  # images per optimiser step
    lr: float = 1e-3  # peak learning rate (Adam; TF1's default is 0.001)
    lr_schedule: str = "constant"  # "constant", "exp-decay" (Görner: lr_min + lr·e^(−step/decay_steps)) or "onecycle"
    lr_min: float = 0.0  # floor of the exp-decay schedule (Görner: 0.0001)
    decay_steps: int = 2000  # e-folding steps of the exp-decay schedule
    weight_decay: float = 0.0  # decoupled weight decay (AdamW) per step, relative to lr
    label_smoothing: float = 0.0  # cross-entropy label smoothing
    augment_shift: int = 0  # random translation, in pixels, up to this many in each direction
    augment_rotate: float = 0.0  # random rotation, in degrees, up to this many either way
    augment_flip: bool = False  # random left-right mirror of half of each batch (not for digits; hurt Fashion-MNIST)
    augment_erase: float = 0.0  # chance of blanking a random rectangle of each image (random erasing)
    val_size: int | None = None  # images carved from the start of train for validation; None = 1/12 (seed: 5,000)

    def __post_init__(self) -> None:
        if not 0.0 <= self.augment_erase <= 1.0:
            raise MnistlabError(f"augment_erase is a probability in [0, 1], got {self.augment_erase}")


# ----------------------------------------------------------------------------------------------
# The DCGAN


@dataclass(frozen=True)
class DCGANConfig:
    """Generator and discriminator. `arch` picks the layer list; the rest are its knobs."""

    arch: str = "default"  # "seed" (the notebook's layer list) or "default" (BN generator: 7→14→28, 3x3 out)
    nz: int = 100  # length of the noise vector fed to the generator
    noise: str = "uniform"  # "uniform" on [−1, 1] (the seed) or "normal"
    g_width: int = 64  # generator channels at 7x7 (halved at 14x14, quartered at 28x28)
    d_width: int = 64  # discriminator channels at 14x14 (doubled at 7x7)
    d_norm: str = "batch"  # discriminator normalisation: "batch", "spectral" or "none" (default arch only)
    d_dropout: float = 0.0  # dropout after each discriminator conv (default arch only)
    d_hidden: int = 0  # width of a hidden dense layer before D's logit; 0 = none (default arch only)
    init: str = "glorot"  # "glorot" (TF layers' default, the seed) or "dcgan" (N(0, 0.02), the DCGAN paper)
    conditional: bool = False  # latent = noise ⊕ one-hot digit; D judges (image, digit) by projection (default arch)

    def __post_init__(self) -> None:
        _choice("arch", self.arch, ("seed", "default"))
        if self.conditional and self.arch == "seed":
            raise MnistlabError("conditional needs arch = default: the seed's networks take no digit")
        _choice("noise", self.noise, ("uniform", "normal"))
        _choice("init", self.init, ("glorot", "dcgan"))
        _choice("d_norm", self.d_norm, ("batch", "spectral", "none"))


@dataclass(frozen=True)
class GANTrainConfig:
    """How the two networks are optimised against each other."""

    epochs: int = 15  # passes over the training split (ignored when time_budget is set)
    time_budget: float | None = None  # seconds of training; stops at the first epoch end past it
    batch_size: int = 16  # real images per step (the seed: 16)
    lr_d: float = 2e-4  # discriminator Adam learning rate
    beta1_d: float = 0.4  # discriminator Adam β1
    lr_g: float = 3.3e-4  # generator Adam learning rate
    beta1_g: float = 0.55  # generator Adam β1
    loss: str = "seed-softmax"  # "seed-softmax" (tanh outputs as 2 logits) or "bce" (non-saturating, 1 logit)
    simultaneous: bool = True  # both updates from one forward pass, as the seed's single sess.run did
    real_range: str = "0,1"  # real images fed in "0,1" (the seed's mismatch with tanh) or "-1,1"
    label_smoothing: float = 0.0  # one-sided: real target = 1 − this
    ema: float = 0.0  # decay of the moving average of G's weights that draws the samples; 0 = sample G itself
    augment_shift: int = 0  # DiffAugment: shift real and generated images by up to this many px before D
    eval_every: int = 1  # epochs between quality metrics during training; 0 = never
    eval_samples: int = 1000  # samples for the in-training quality metrics (cheap; reports use 10,000)

    def __post_init__(self) -> None:
        _choice("loss", self.loss, ("seed-softmax", "bce"))
        _choice("real_range", self.real_range, ("0,1", "-1,1"))


# ----------------------------------------------------------------------------------------------
# What every run shares


@dataclass(frozen=True)
class RunConfig:
    """Where a run reads and writes, and how it computes."""

    dataset: str = "auto"  # "auto", "mnist", "fashion-mnist", "mnist-sample" or "idx:PATH"
    data_root: str | None = None  # dataset cache; None = $MNISTLAB_DATA or ~/.cache/mnistlab
    seed: int = 0  # seeds the weights, the data order, augmentation and noise
    device: str = "auto"  # "auto", "cpu", "cuda" or "mps"
    precision: str = "auto"  # "auto" (bf16 on CPUs with AVX-512-BF16/AMX and bf16 GPUs), "fp32", "bf16"
    channels_last: bool = True  # NHWC activations: faster convolutions for most of our nets (see `bench`)
    deterministic: bool = False  # deterministic kernels, so a seed reproduces bit for bit on one device type
    checkpoint_every: int = 0  # optimiser steps between mid-epoch checkpoints; 0 = at epoch ends only
    out: str | None = None  # run directory; None = runs/<kind>-<preset>-<timestamp>
    tensorboard: bool = False  # also log scalars (and GAN sample grids) to <run>/tensorboard

    def __post_init__(self) -> None:
        _choice("device", self.device, ("auto", "cpu", "cuda", "mps"))
        _choice("precision", self.precision, ("auto", "fp32", "bf16"))


@dataclass(frozen=True)
class ClassifierConfig:
    preset: str  # the preset these settings started from
    model: CNNConfig = field(default_factory=CNNConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run: RunConfig = field(default_factory=RunConfig)


@dataclass(frozen=True)
class GANConfig:
    preset: str  # the preset these settings started from
    model: DCGANConfig = field(default_factory=DCGANConfig)
    train: GANTrainConfig = field(default_factory=GANTrainConfig)
    run: RunConfig = field(default_factory=RunConfig)


# ----------------------------------------------------------------------------------------------
# Presets

CNN_PRESETS: dict[str, ClassifierConfig] = {
    # The seed notebook's final network and recipe, exactly.
    "seed": ClassifierConfig("seed"),
    # Martin Görner's mnist_3.1_convolutional_bigger_dropout, which the seed's CNN was based on.
    "gorner": ClassifierConfig(
        "gorner",
        model=CNNConfig(
            filters=(6, 12, 24), kernels=(6, 5, 4), strides=(1, 2, 2), dilations=(1, 1, 1),
            fc=200, dropout=0.25, bias_init="constant", bias_constant=0.1,
        ),
        train=TrainConfig(epochs=10, lr=0.003, lr_schedule="exp-decay", lr_min=0.0001, decay_steps=2000),
    ),
    # Ours: five 3x3 convs with batch norm, a wide dense layer over the 7x7 map (global pooling lost
    # 0.7 points on Fashion-MNIST), shift augmentation, one-cycle schedule; 0.946 on Fashion-MNIST in 446 s.
    "best": ClassifierConfig(
        "best",
        model=CNNConfig(
            filters=(32, 32, 64, 64, 128), kernels=(3, 3, 3, 3, 3), strides=(1, 2, 1, 2, 1),
            dilations=(1, 1, 1, 1, 1), fc=256, dropout=0.3, batch_norm=True, weight_init="torch",
        ),
        train=TrainConfig(
            epochs=20, batch_size=128, lr=4e-3, lr_schedule="onecycle", weight_decay=5e-4,
            label_smoothing=0.1, augment_shift=2,
        ),
    ),
}

GAN_PRESETS: dict[str, GANConfig] = {
    # The seed notebook's DCGAN and its training recipe, quirks included.
    "seed": GANConfig("seed", model=DCGANConfig(arch="seed")),
    # Ours: reliable and fast on a CPU.
    "default": GANConfig(
        "default",
        model=DCGANConfig(arch="default", nz=64, noise="normal", g_width=128, d_width=64, init="dcgan",
                          conditional=True),
        train=GANTrainConfig(
            epochs=30, batch_size=64, lr_d=2e-4, beta1_d=0.5, lr_g=2e-4, beta1_g=0.5, loss="bce",
            simultaneous=False, real_range="-1,1", label_smoothing=0.1, eval_every=5,
        ),
    ),
}


def preset(kind: str, name: str) -> ClassifierConfig | GANConfig:
    """The named preset of a run kind ("cnn" or "gan")."""
    table = CNN_PRESETS if kind == "cnn" else GAN_PRESETS
    if name not in table:
        raise MnistlabError(f"unknown {kind} preset {name!r}; choose one of: {', '.join(table)}")
    return table[name]


# ----------------------------------------------------------------------------------------------
# Overrides


def with_overrides(config: Any, overrides: dict[str, Any]) -> Any:
    """A copy of `config` with dotted-key overrides applied, e.g. {"model.filters": [8, 16, 32]}.

    A bare key ("epochs") is looked up in whichever section has it. Values are coerced to the field's type.
    """
    by_section: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        section, name = _locate(config, key)
        by_section.setdefault(section, {})[name] = _coerce(getattr(config, section), name, value, key)
    # One replace per section, so that related fields (filters and kernels) are validated together.
    return replace(config, **{s: replace(getattr(config, s), **kv) for s, kv in by_section.items()})


def load_toml(path: str | Path) -> dict[str, Any]:
    """Flatten a TOML file's tables into dotted overrides: [model] filters = [...] → {"model.filters": [...]}."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise MnistlabError(f"cannot read config {path}: {e}") from None
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def parse_assignment(text: str) -> tuple[str, Any]:
    """`key=value` from the command line; the value is read as TOML ("[8,16]", "true", "0.1", or a bare word)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise MnistlabError(f"--set expects key=value, got {text!r}")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip(), value


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def from_dict(kind: str, data: dict[str, Any]) -> ClassifierConfig | GANConfig:
    """Rebuild a config saved by `to_dict` (the run directory's config.json, or a checkpoint's metadata)."""
    base = preset(kind, data["preset"])
    flat = {f"{section}.{k}": v for section in ("model", "train", "run") for k, v in data.get(section, {}).items()}
    return with_overrides(base, flat)


def to_json(config: Any) -> str:
    return json.dumps(to_dict(config), indent=2)


def _locate(config: Any, key: str) -> tuple[str, str]:
    sections = [f.name for f in fields(config) if dataclasses.is_dataclass(getattr(config, f.name))]
    if "." in key:
        section, name = key.split(".", 1)
        if section in sections and name in {f.name for f in fields(getattr(config, section))}:
            return section, name
    else:
        owners = [s for s in sections if key in {f.name for f in fields(getattr(config, s))}]
        if len(owners) == 1:
            return owners[0], key
    known = ", ".join(f"{s}.{f.name}" for s in sections for f in fields(getattr(config, s)))
    raise MnistlabError(f"unknown setting {key!r}; known settings: {known}")


def _coerce(section: Any, name: str, value: Any, key: str) -> Any:
    hint = typing.get_type_hints(type(section))[name]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    try:
        if value is None or (isinstance(value, str) and value.lower() == "none" and type(None) in args):
            if type(None) in args:
                return None
            raise ValueError("this setting cannot be none")
        if origin is tuple:
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(args[0](v) for v in items)
        target = next((a for a in args if a is not type(None)), hint) if args else hint
        if target is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(f"{value!r} is not true or false")
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        return target(value)
    except (TypeError, ValueError) as e:
        raise MnistlabError(f"bad value for {key}: {value!r} ({e})") from None
