"""Augmentation of a batch on its device, with no per-image Python: shifts, rotations, mirrors, erasing."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def augment(x: torch.Tensor, shift: int, rotate: float, flip: bool = False, shear: float = 0.0,
            elastic: float = 0.0) -> torch.Tensor:
    """Random translation (± `shift` px), rotation (± `rotate` degrees), shear (± `shear` degrees), an elastic
    warp of about `elastic` px and, with `flip`, a left-right mirror of half the batch, in one resampling."""
    n, size = x.shape[0], x.shape[-1]
    angle = (torch.rand(n, device=x.device) * 2 - 1) * math.radians(rotate)
    offset = (torch.rand(n, 2, device=x.device) * 2 - 1) * (2 * shift / size)
    mirror = torch.where(torch.rand(n, device=x.device) < 0.5, -1.0, 1.0) if flip else 1.0
    cos, sin = angle.cos(), angle.sin()
    theta = torch.stack([torch.stack([cos * mirror, -sin, offset[:, 0]], 1),
                         torch.stack([sin * mirror, cos, offset[:, 1]], 1)], 1)
    if shear:  # x' = x + tan(s)·y: slanted writing
        slant = torch.tan((torch.rand(n, device=x.device) * 2 - 1) * math.radians(shear))
        theta[:, 0, 1] += slant * theta[:, 1, 1]
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    if elastic:  # a smooth random field: 4x4 control displacements, upsampled (Simard et al. 2003, cheaply)
        field = torch.randn(n, 2, 4, 4, device=x.device) * (2 * elastic / size)
        grid = grid + F.interpolate(field, size=x.shape[-2:], mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
    return F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")


def photo_noise(x: torch.Tensor, stroke: float, blur: float, noise: float) -> torch.Tensor:
    """What reading a photo leaves that MNIST never had: strokes up to a pixel thicker or thinner (with
    probability `stroke`, half each), a slight blur (probability `blur`), and Gaussian noise of std `noise`."""
    n = x.shape[0]
    if stroke:
        choice, amount = torch.rand(2, n, 1, 1, 1, device=x.device)
        thick = torch.lerp(x, F.max_pool2d(x, 3, 1, 1), amount)  # towards a dilation: a marker
        thin = torch.lerp(x, -F.max_pool2d(-x, 3, 1, 1), amount * 0.6)  # towards an erosion: a fine pen
        x = torch.where(choice < stroke / 2, thick, torch.where(choice < stroke, thin, x))
    if blur:
        kernel = torch.tensor([0.25, 0.5, 0.25], device=x.device)
        kernel = (kernel[:, None] * kernel[None, :]).expand(x.shape[1], 1, 3, 3).to(x.dtype)
        blurred = F.conv2d(x, kernel, padding=1, groups=x.shape[1])
        x = torch.where(torch.rand(n, 1, 1, 1, device=x.device) < blur, blurred, x)
    if noise:
        x = (x + torch.randn_like(x) * noise).clamp_(0, 1)
    return x


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
