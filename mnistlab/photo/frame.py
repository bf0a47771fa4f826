"""Turn a digit as a person makes it into the 28x28 image an MNIST model expects.

MNIST digits are light ink (1) on a black background (0); each was size-normalised to fit a 20x20 box
keeping its aspect ratio (anti-aliased, hence grey levels), then placed in a 28x28 field so that its
centre of mass sits at the centre. Measured on real MNIST digits with `scipy.ndimage.center_of_mass`,
that centre is (14, 14) in 0-based (row, col) index terms (mean 13.99, 14.00; spread ±0.5 from the
whole-pixel shift), not the geometric 13.5, so `to_mnist` shifts the centre of mass to
`round(14 - com)`. The result is in [0, 1]; any mean/std normalisation belongs to the model.

`to_mnist` accepts photos, scans and drawings: dark on light or light on dark, any size, off-centre,
PIL images in any mode (transparency composited over white paper), image paths, NumPy arrays and torch tensors.
A photo first goes through `mnistlab.photo.ink` (uneven light, shadows, ruled lines, specks), which finds the
digit's ink; a clean image's ink is what it always was, its darkness against the paper.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Iterable

import numpy as np
import torch
from PIL import Image, ImageOps
from scipy import ndimage

from mnistlab.errors import MnistlabError
from mnistlab.photo.ink import INK, digit_pieces, find_ink

__all__ = ["MAX_PIXELS", "frame_digit", "load_image", "to_grey", "to_mnist", "to_mnist_batch"]

MAX_PIXELS = 4096 * 4096  # larger images are refused before decoding: a digit never needs more
SIZE, BOX = 28, 20  # MNIST's field and the box the digit is fitted into
CENTRE = 14.0  # where MNIST's centre of mass lies, measured (see the module docstring)
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, the weights PIL's "L" uses


def load_image(path: str | os.PathLike) -> Image.Image:
    """Open and fully decode an image file; refuse anything unreadable or larger than MAX_PIXELS."""

    def fail(reason: str) -> MnistlabError:
        reason = " ".join(str(reason).split())  # keep the message on one line
        return MnistlabError(f"cannot read image {path}: {reason}; give a PNG or JPEG of one digit")

    try:
        # Pillow warns above ~89 Mpx and raises above twice that; make the warning an error too.
        # (catch_warnings is process-wide, but at worst another thread sees that one filter.)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                # Image.open reads only the header, so the size is known before any pixel is decoded.
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise fail(f"it is {width}x{height} pixels, more than the {MAX_PIXELS} allowed")
                image.load()
                # Phones store photos sideways with an EXIF "rotate me" tag: apply it.
                ImageOps.exif_transpose(image, in_place=True)
                return image
    except MnistlabError:
        raise
    except FileNotFoundError:
        raise fail("no such file") from None
    except IsADirectoryError:
        raise fail("it is a directory") from None
    except Image.UnidentifiedImageError:
        raise fail("not an image format Pillow recognises") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise fail(f"it has more than the {MAX_PIXELS} pixels allowed") from None
    except Exception as e:  # decoders raise OSError, SyntaxError, ValueError, EOFError... on bad data
        raise fail(f"{type(e).__name__}: {e}") from None


def _pil_to_array(image: Image.Image) -> np.ndarray:
    """A PIL image in any mode -> an array `to_grey` reads: (H, W) greyscale, deep modes kept deep."""
    mode = image.mode
    try:
        if mode == "LAB":  # Pillow cannot convert CIELAB to "L"; its L band is the lightness
            image = image.getchannel("L")
        elif mode == "La":  # premultiplied alpha: Pillow converts it to "LA" only
            image = image.convert("LA")
        if image.has_transparency_data:  # transparent background = paper, so composite over white
            white = Image.new("RGBA", image.size, "white")
            image = Image.alpha_composite(white, image.convert("RGBA"))
        # Deep greyscale (16-bit PNGs, "I", "F") would lose levels as "L": take it as an array.
        deep = image.mode in ("I", "F") or image.mode.startswith("I;16")
        return np.asarray(image if deep else image.convert("L"))
    except (ValueError, TypeError, OSError) as e:  # a mode, palette or transparency Pillow cannot convert
        reason = " ".join(str(e).split())
        raise MnistlabError(f"cannot read a mode {mode} image ({reason}); give an RGB or greyscale image") from None


def to_grey(image: Any) -> np.ndarray:
    """Any supported input -> float32 (H, W), nominally 0 (black) .. 1 (white)."""
    if isinstance(image, (str, os.PathLike)):
        image = load_image(image)
    if isinstance(image, Image.Image):
        image = _pil_to_array(image)
    if isinstance(image, torch.Tensor):
        array = image.detach().cpu()
        if array.is_floating_point():
            array = array.float()  # NumPy has no bfloat16
        if array.ndim == 3 and array.shape[0] in (1, 3, 4):  # torch is channels-first
            array = array.movedim(0, -1)
        image = array.numpy()
    if not isinstance(image, np.ndarray):
        raise MnistlabError(
            f"cannot preprocess input of type {type(image).__name__}; give a PIL image, an image path, "
            "a NumPy array or a torch tensor"
        )
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (3, 4))) or 0 in image.shape:
        raise MnistlabError(
            f"cannot preprocess an array of shape {image.shape}; give (H, W), (H, W, 3) or (H, W, 4)"
        )
    # uint16 is 0..65535, other integers 0..255 (pixels); floats and booleans are 0..1.
    if np.issubdtype(image.dtype, np.integer):
        scale = 65535 if image.dtype.itemsize == 2 else 255
    else:
        scale = 1
    array = np.nan_to_num(image.astype(np.float32) / scale)
    if array.ndim == 3:
        if array.shape[-1] == 4:  # composite over white: transparent = paper
            alpha = np.clip(array[..., 3:], 0, 1)
            array = array[..., :3] * alpha + (1 - alpha)
        array = array @ _LUMA
    return array


def to_mnist(image: Any) -> np.ndarray:
    """One digit image -> float32 (28, 28) in [0, 1], light ink on black, framed as MNIST frames it.

    A blank image (no ink at all) gives all zeros rather than an error: the web app calls this on a
    cleared canvas.
    """
    ink = find_ink(to_grey(image))
    pieces = digit_pieces(ink)
    if not pieces:
        return np.zeros((SIZE, SIZE), np.float32)
    return frame_digit(ink.crop(pieces))


def frame_digit(ink: np.ndarray) -> np.ndarray:
    """An image of one digit's ink (float (h, w), 0 = paper) -> the 28x28 MNIST framing of it."""
    # Stretch so the strongest ink is 1; faint noise (JPEG ringing, blur) becomes background. Stronger ink
    # keeps its grey level, as MNIST's strokes do.
    peak = float(ink.max()) if ink.size else 0.0
    if peak <= 0:
        return np.zeros((SIZE, SIZE), np.float32)
    ink = ink / np.float32(peak)
    ink[ink < INK.noise] = 0

    # Crop to the ink's bounding box.
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]

    # Fit the longer side to 20 px, keeping the aspect ratio; LANCZOS anti-aliases when shrinking
    # and stays smooth when enlarging; its slight ringing is clipped away.
    height, width = ink.shape
    scale = BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = Image.fromarray(np.ascontiguousarray(ink, dtype=np.float32))  # mode "F": no 8-bit rounding
    small = np.clip(np.asarray(small.resize(size, Image.Resampling.LANCZOS)), 0, 1)

    # Paste into the middle of the 28x28 field.
    out = np.zeros((SIZE, SIZE), np.float32)
    top, left = (SIZE - small.shape[0]) // 2, (SIZE - small.shape[1]) // 2
    out[top : top + small.shape[0], left : left + small.shape[1]] = small

    # Move the centre of mass to MNIST's centre by a whole-pixel shift, as MNIST did
    # (order=0 with an integer shift moves pixels exactly, without resampling).
    if not out.any():  # specks so sparse that resizing averaged them away: no mass to centre
        return out
    offset = np.round(CENTRE - np.array(ndimage.center_of_mass(out)))
    out = ndimage.shift(out, offset, order=0, mode="constant", cval=0.0)
    return np.clip(out, 0, 1).astype(np.float32, copy=False)


def to_mnist_batch(images: Iterable[Any]) -> torch.Tensor:
    """A list of images (anything `to_mnist` takes) -> float32 tensor (N, 28, 28)."""
    if isinstance(images, (str, os.PathLike, Image.Image)):  # one image, not a list of them
        images = [images]
    arrays = [to_mnist(image) for image in images]
    if not arrays:
        return torch.zeros((0, SIZE, SIZE), dtype=torch.float32)
    return torch.from_numpy(np.stack(arrays))
