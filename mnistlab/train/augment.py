"""Augmentation of a batch on its device, with no per-image Python: shifts, rotations, mirrors, erasing."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


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
