"""Build a model from a preset name plus overrides: the public entry points `build_cnn` and `build_dcgan`."""

from __future__ import annotations

from typing import Any

from mnistlab.config import preset, with_overrides
from mnistlab.models.cnn import CNN
from mnistlab.models.dcgan import DCGAN


def build_cnn(preset_name: str = "seed", **overrides: Any) -> CNN:
    """A freshly initialised classifier.

    >>> import torch
    >>> model = build_cnn("seed", dilations=(1, 2, 1))
    >>> model(torch.zeros(1, 1, 28, 28)).shape
    torch.Size([1, 10])
    """
    config = with_overrides(preset("cnn", preset_name), {f"model.{k}": v for k, v in overrides.items()})
    return CNN(config.model)


def build_dcgan(preset_name: str = "default", **overrides: Any) -> DCGAN:
    """A freshly initialised generator + discriminator pair (`.netG`, `.netD`).

    >>> gan = build_dcgan("seed")
    >>> gan(gan.noise(4)).shape
    torch.Size([4, 1, 28, 28])
    """
    config = with_overrides(preset("gan", preset_name), {f"model.{k}": v for k, v in overrides.items()})
    return DCGAN(config.model)
