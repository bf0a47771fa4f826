"""Writing a generator's digits to files: a PNG grid, a NumPy array, or one PNG per digit."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from mnistlab.errors import MnistlabError
from mnistlab.files import atomic_write_bytes, check_writable
from mnistlab.inference import load
from mnistlab.plots import grid_image, png_bytes


def write_samples(
    run_or_checkpoint: str | Path, n: int = 64, seed: int = 0, out: str | Path | None = None,
    out_dir: str | Path | None = None, interpolate: bool = False, digit: int | None = None,
    checkpoint: str | None = None,
) -> list[Path]:
    """Draw `n` digits (or, with `interpolate`, an `n`-step walk between two random points) and write them.

    `out` ending in .png: one grid (a strip for a walk); .npy: uint8 (n, 28, 28), 0 = background, 255 = ink.
    `out_dir`: one PNG per digit. `digit`: only that digit (a conditional GAN). `checkpoint`: "best", "last"
    or None, best when the run kept one (see `mnistlab.inference.load`). Returns the paths written.
    """
    if n < 1 or (interpolate and n < 2):
        raise MnistlabError(f"-n must be at least {2 if interpolate else 1}, got {n}")
    if interpolate and digit is not None:
        raise MnistlabError("--digit and --interpolate do not combine: a walk goes from one digit to another")
    if (out is None) == (out_dir is None):
        raise MnistlabError("give exactly one of --out FILE and --out-dir DIR")
    if out is not None and Path(out).suffix.lower() not in (".png", ".npy"):
        raise MnistlabError(f"--out must end in .png (a grid) or .npy (an array), got {out}")
    target = Path(out_dir) if out_dir is not None else Path(out).parent
    check_writable(target, need_bytes=n * 2048)  # before the work, so a bad path fails fast
    generator = load(run_or_checkpoint, kind="gan", checkpoint=checkpoint)
    images = generator.interpolate(seed, seed + 1, n) if interpolate else generator.generate(n, seed, digit)

    if out_dir is not None:
        paths = [Path(out_dir) / f"digit_{i:04d}.png" for i in range(n)]
        for path, image in zip(paths, images):
            atomic_write_bytes(path, png_bytes(grid_image(image[None], ncol=1, pad=0)))
        return paths
    out = Path(out)
    if out.suffix.lower() == ".npy":
        buf = io.BytesIO()
        np.save(buf, images)
        atomic_write_bytes(out, buf.getvalue())
    else:
        atomic_write_bytes(out, png_bytes(grid_image(images, ncol=n if interpolate else None, scale=2)))
    return [out]
