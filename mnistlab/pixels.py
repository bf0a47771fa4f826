"""Pixels as people store them (uint8, 0 = background, 255 = ink) and as the networks read them (float).

One mapping each way, so the classifier, the GAN, evaluation and the datasets agree to the last bit.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

ValueRange = Literal["0,1", "-1,1"]


def to_float(images: torch.Tensor, value_range: ValueRange = "0,1",
             memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """uint8 (N, 28, 28) → float (N, 1, 28, 28) in [0, 1] (what the CNN reads) or [−1, 1] (a tanh generator's
    range); float input is taken as already in that range."""
    x = images.float()
    if images.dtype == torch.uint8:
        x = x.div_(255) if value_range == "0,1" else x.mul_(2 / 255).add_(-1.0)
    return x.view(-1, 1, *x.shape[-2:]).contiguous(memory_format=memory_format)


def to_uint8(x: torch.Tensor, value_range: ValueRange) -> np.ndarray:
    """Generator output → uint8 pixels, mapping the range the discriminator saw real images in to 0..255."""
    x = x.clamp(0, 1) if value_range == "0,1" else (x.clamp(-1, 1) + 1) / 2
    return (x * 255).round().to(torch.uint8).numpy()
