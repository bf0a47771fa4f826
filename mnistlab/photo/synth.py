"""Photo-like test images of real MNIST digits: what a phone sees of a digit, or a number, on paper.

Each photo is a real digit (or 2–6 of them side by side) from a **test** split (`digits`), drawn as ink
on a page: paper of some colour, plain, ruled or squared; black or blue pen, or pencil; strokes thinner or
thicker than MNIST's; a small tilt; anywhere on the page at 20–70 % of its height; under uneven light and
a soft shadow, sometimes with the table showing at one edge; then the camera's blur, sensor noise and JPEG.
Every photo carries its labels, each digit's true box and the conditions it was made under, so a benchmark
can break its results down by condition. Never train on these photos: they are made from test digits.

`make_blank_pages` photographs the same pages with nothing written on them, and `make_non_digit_photos` with
what is not a digit written on them, as a pen writes digits (`mnistlab.photo.marks`: a letter, a symbol, a
shape, a scribble, a word or a texture): what a reader must answer "no digit" to, or a "not a digit" score flag.

>>> photo = make_photos(1, seed=0, lengths=(4,))[0]
>>> photo.image.shape, photo.text, photo.conditions["lines"]
((864, 1152, 3), '...', '...')
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from mnistlab.errors import MnistlabError
from mnistlab.photo.marks import draw_mark, draw_texture, draw_word

__all__ = ["CONDITIONS", "MARKS", "Box", "Photo", "make_blank_pages", "make_non_digit_photos", "make_photos",
           "write_y4m"]

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, x1 and y1 exclusive

PAPERS = {  # reflectance, RGB 0..1
    "white": (0.95, 0.95, 0.93), "cream": (0.95, 0.91, 0.80), "grey": (0.80, 0.80, 0.78),
    "yellow": (0.97, 0.92, 0.62), "blue": (0.84, 0.89, 0.96),
}
INKS = {  # reflectance where the ink covers the paper fully, and how fully it covers it
    "black": ((0.07, 0.07, 0.09), 1.0), "blue": ((0.10, 0.18, 0.58), 1.0), "pencil": ((0.30, 0.30, 0.32), 0.7),
}
STROKES = {"thin": -0.02, "normal": 0.0, "thick": 0.025}  # erode (<0) or dilate by this fraction of the height
# Every condition and its values; make_photos(..., lines="ruled") pins one, the rest are drawn at random.
CONDITIONS: dict[str, tuple[str, ...]] = {
    "paper": tuple(PAPERS),
    "lines": ("plain", "ruled", "squared"),
    "ink": tuple(INKS),
    "stroke": tuple(STROKES),
    "light": ("even", "gradient"),
    "shadow": ("none", "soft"),
    "edge": ("none", "table"),
    "camera": ("sharp", "blurred"),
    "spacing": ("apart", "touching"),  # numbers only: whether neighbouring digits' ink touches
    "broken": ("no", "yes"),  # a stroke broken by a small gap, as a dry pen leaves it
}
LINES_WEIGHTS = (0.5, 0.3, 0.2)  # half the pages are ruled or squared, as the photos were
# What make_non_digit_photos writes, each as often: one mark of mnistlab.photo.marks, a word of 2–4 letters, a texture
MARKS = ("letter", "symbol", "shape", "scribble", "word", "texture")


@dataclass(frozen=True)
class Photo:
    """One rendered photo: `image` uint8 (H, W, 3) RGB, and what is on it."""

    image: np.ndarray
    labels: tuple[int, ...]  # the digits, left to right (none on a blank page or a non-digit's)
    boxes: tuple[Box, ...]  # each digit's (a non-digit's: each mark's, each letter's) ink box in the image's pixels
    conditions: dict[str, str]  # one value of each CONDITIONS key; non-digit photos add "mark", one of MARKS

    @property
    def text(self) -> str:
        return "".join(map(str, self.labels))


def make_photos(
    count: int, *, seed: int = 0, lengths: Sequence[int] = (1,), size: tuple[int, int] = (1152, 864),
    digits: str = "mnist-sample", **fixed: str,
) -> list[Photo]:
    """`count` photos of `size` (width, height) pixels, each of a number whose length is drawn from `lengths`.

    The same seed gives the same photos. Conditions not pinned in `fixed` are drawn per photo. The digits
    are the test split of `digits`: "mnist" for models trained on full MNIST, since mnist-sample's 5,000
    digits (its test split too) all come from MNIST's official training set.
    """
    _check_conditions(fixed)
    if not lengths or min(lengths) < 1 or max(lengths) > 10:
        raise MnistlabError(f"number lengths must be 1..10 digits, got {list(lengths)}")
    from mnistlab.data.datasets import load_dataset

    test = load_dataset(digits, splits=("test",)).test
    images, labels = test.images.numpy(), test.labels.numpy()
    photos = []
    for index in range(count):
        rng = np.random.default_rng([seed, index])  # each photo from its own stream: photo i never depends on count
        length = int(rng.choice(lengths))
        picks = rng.integers(0, len(images), length)
        conditions = {key: fixed.get(key) or _draw(rng, key, length) for key in CONDITIONS}
        photos.append(_render(rng, images[picks], tuple(int(v) for v in labels[picks]), conditions, size))
    return photos


def make_blank_pages(count: int, *, seed: int = 0, size: tuple[int, int] = (1152, 864), **fixed: str) -> list[Photo]:
    """`count` photos of empty paper, as `make_photos` draws its pages (paper, lines, light, shadow, the table's
    edge, the camera) but with nothing written: what a reader must answer "no digit found" to.

    The same seed gives the same pages, none of them a page of `make_photos` with that seed.
    """
    _check_conditions(fixed)
    width, height = size
    centre: Box = (width // 4, height // 4, 3 * width // 4, 3 * height // 4)  # where the table leaves room
    pages = []
    for index in range(count):
        rng = np.random.default_rng([seed, index, 0])  # [seed, index] is make_photos' photo
        conditions = {key: fixed.get(key) or _draw(rng, key, 1) for key in CONDITIONS}
        image = _page(rng, width, height, conditions, [centre]) * _light(rng, width, height, conditions)[..., None]
        pages.append(Photo(_camera(rng, image, conditions), (), (), conditions))
    return pages


def make_non_digit_photos(
    count: int, *, seed: int = 0, size: tuple[int, int] = (1152, 864), **fixed: str,
) -> list[Photo]:
    """`count` photos of what is not a digit, written and photographed as `make_photos` writes and photographs
    digits: each one of MARKS, drawn at random unless pinned (`mark="word"`), as the other conditions are.

    `labels` are empty, `boxes` hold the ink's boxes (one per letter of a word) and `conditions["mark"]`
    names what is written. The same seed gives the same photos, none of them a photo of `make_photos` or a page
    of `make_blank_pages` with that seed.
    """
    if count < 0:
        raise MnistlabError(f"the number of photos must be 0 or more, got {count}")
    mark = fixed.pop("mark", None)
    if mark is not None and mark not in MARKS:
        raise MnistlabError(f"unknown mark {mark!r}; the marks are {', '.join(MARKS)}")
    _check_conditions(fixed)
    photos = []
    for index in range(count):
        rng = np.random.default_rng([seed, index, 1])  # [seed, index] is make_photos' photo, [.., 0] a blank page
        kind = mark or str(rng.choice(MARKS))
        if kind == "word":
            marks = draw_word(rng, int(rng.integers(2, 5)))
        else:
            marks = [draw_texture(rng) if kind == "texture" else draw_mark(rng, kind)]
        conditions = {key: fixed.get(key) or _draw(rng, key, len(marks)) for key in CONDITIONS} | {"mark": kind}
        photos.append(_render(rng, marks, (), conditions, size))
    return photos


def _check_conditions(fixed: dict[str, str]) -> None:
    for key, value in fixed.items():
        if key not in CONDITIONS or value not in CONDITIONS[key]:
            allowed = "; ".join(f"{k}: {', '.join(v)}" for k, v in CONDITIONS.items())
            raise MnistlabError(f"unknown photo condition {key}={value}; allowed are {allowed}")


def _draw(rng: np.random.Generator, key: str, length: int) -> str:
    values = CONDITIONS[key]
    if key == "lines":
        return str(rng.choice(values, p=LINES_WEIGHTS))
    if key == "spacing" and length == 1:
        return "apart"
    if key in ("edge", "broken"):  # the rarer conditions: a fifth of the photos
        return str(rng.choice(values, p=(0.8, 0.2)))
    return str(rng.choice(values))


def _render(
    rng: np.random.Generator, digits: Sequence[np.ndarray], labels: tuple[int, ...], conditions: dict[str, str],
    size: tuple[int, int],
) -> Photo:
    """`digits` written side by side on a page, photographed: uint8 images light on black as MNIST's, 28x28
    digits or any other marks (a texture is larger), each cropped to its ink and written the same height."""
    width, height = size
    # The digits' height: 20–70 % of the page, less where a long number must fit across it.
    alphas = [_crop(d) for d in digits]
    widest = sum(a.shape[1] / a.shape[0] for a in alphas) * 1.15 + 0.1
    top_fraction = min(0.7, 0.9 * width / height / widest)
    digit_height = int(height * rng.uniform(0.2, max(0.2, top_fraction)))
    alphas = [_ink_alpha(rng, a, int(digit_height * rng.uniform(0.92, 1.08)), conditions) for a in alphas]

    # Left to right along a baseline: touching digits overlap their boxes a little, apart ones leave a gap.
    gaps = [(rng.uniform(-0.06, 0.0) if conditions["spacing"] == "touching" else rng.uniform(0.08, 0.35))
            * digit_height for _ in alphas[1:]]
    total = sum(a.shape[1] for a in alphas) + sum(gaps)
    x = rng.uniform(0.04 * width, max(0.04 * width, 0.96 * width - total))
    baseline = rng.uniform(0.05 * height + digit_height, 0.95 * height)
    ink = np.zeros((height, width), np.float32)
    boxes = []
    for alpha, gap in zip(alphas, [0.0, *gaps]):
        x += gap
        h, w = alpha.shape
        y0 = int(np.clip(baseline - h + rng.normal(0, 0.02) * digit_height, 0, height - h))
        x0 = int(np.clip(x, 0, width - w))
        region = ink[y0 : y0 + h, x0 : x0 + w]
        np.maximum(region, alpha, out=region)  # overlapping strokes are still one layer of ink
        rows, cols = np.flatnonzero((alpha > 0.5).any(1)), np.flatnonzero((alpha > 0.5).any(0))
        boxes.append((x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1))
        x = x0 + w

    reflectance = _page(rng, width, height, conditions, boxes)
    colour, cover = INKS[conditions["ink"]]
    region = np.s_[max(0, min(b[1] for b in boxes) - height // 10) : max(b[3] for b in boxes) + height // 10]
    ink, paper = ink[region] * np.float32(cover), reflectance[region]  # the rows that hold ink, for speed
    if conditions["ink"] == "pencil":  # graphite leaves grain: ink coverage varies pixel to pixel
        ink *= rng.uniform(0.75, 1.0, ink.shape).astype(np.float32)
    paper += ink[..., None] * (np.float32(colour) - paper)
    image = reflectance * _light(rng, width, height, conditions)[..., None]
    return Photo(_camera(rng, image, conditions), labels, tuple(boxes), conditions)


def _crop(digit: np.ndarray) -> np.ndarray:
    """A 28x28 uint8 MNIST digit -> float32 0..1, cropped to its ink."""
    rows, cols = np.flatnonzero(digit.max(1) > 40), np.flatnonzero(digit.max(0) > 40)
    return digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.float32) / 255


def _ink_alpha(rng: np.random.Generator, digit: np.ndarray, height: int, conditions: dict[str, str]) -> np.ndarray:
    """A cropped digit -> the ink coverage (0..1) of it written `height` pixels tall, tilted, strokes adjusted."""
    scale = height / digit.shape[0]
    big = cv2.resize(digit, (max(2, round(digit.shape[1] * scale)), height), interpolation=cv2.INTER_CUBIC)
    pad = height // 6  # room for thicker strokes and the tilt
    big = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    alpha = np.clip((big - 0.3) / 0.3, 0, 1)  # MNIST's soft edges -> a pen's crisp stroke
    radius = round(abs(STROKES[conditions["stroke"]]) * height * rng.uniform(0.7, 1.3))
    if radius:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        op = cv2.dilate if STROKES[conditions["stroke"]] > 0 else cv2.erode
        alpha = op(alpha, kernel)
        if op is cv2.erode and alpha.max() < 0.5:  # a faint digit eroded away: keep its normal stroke
            alpha = np.clip((big - 0.3) / 0.3, 0, 1)
    if conditions["broken"] == "yes":  # a thin band across the digit where the pen skipped
        h, w = alpha.shape
        angle = rng.uniform(0, np.pi)
        yy, xx = np.mgrid[0:h, 0:w]
        distance = (xx - w * rng.uniform(0.35, 0.65)) * np.cos(angle) + (yy - h * rng.uniform(0.3, 0.7)) * np.sin(angle)
        alpha[np.abs(distance) < max(1.0, 0.02 * height)] = 0
    tilt = rng.uniform(-10, 10)
    h, w = alpha.shape
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), tilt, 1.0)
    alpha = cv2.warpAffine(alpha, turn, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    rows, cols = np.flatnonzero(alpha.max(1) > 0.02), np.flatnonzero(alpha.max(0) > 0.02)
    return np.ascontiguousarray(alpha[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])


def _page(
    rng: np.random.Generator, width: int, height: int, conditions: dict[str, str], boxes: list[Box]
) -> np.ndarray:
    """The paper's reflectance (H, W, 3): its colour, its printed lines, and the table beyond its edge."""
    paper = np.float32(PAPERS[conditions["paper"]]) * np.float32(rng.uniform(0.97, 1.0, 3))
    page = np.empty((height, width, 3), np.float32)
    page[:] = paper
    if conditions["lines"] != "plain":
        lines = np.zeros((height, width), np.uint8)
        slope = np.tan(np.radians(rng.uniform(-2, 2)))  # the phone held not quite square to the page
        thickness = int(rng.integers(1, 3))
        spacing = height * (rng.uniform(0.045, 0.08) if conditions["lines"] == "ruled" else rng.uniform(0.03, 0.05))
        for y in np.arange(rng.uniform(0, spacing), height + width * abs(slope), spacing):
            start, end = (0, int(y - width * abs(slope))), (width, int(y - width * abs(slope) + width * slope))
            cv2.line(lines, start, end, 255, thickness, cv2.LINE_AA)
        if conditions["lines"] == "squared":
            for x in np.arange(rng.uniform(0, spacing), width + height * abs(slope), spacing):
                start, end = (int(x - height * abs(slope)), 0), (int(x - height * abs(slope) - height * slope), height)
                cv2.line(lines, start, end, 255, thickness, cv2.LINE_AA)
        colour = np.float32((0.45, 0.62, 0.88) if rng.random() < 0.6 else (0.55, 0.55, 0.57))
        strength = np.float32(rng.uniform(0.4, 0.9) / 255)
        page += (lines.astype(np.float32) * strength)[..., None] * (colour - page)
    if conditions["edge"] == "table":  # the photo takes in a strip of dark table beyond the paper's edge
        side = int(rng.integers(4))
        x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
        x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
        room = (x0, width - x1, y0, height - y1)[side]  # the table stops short of the writing
        band = int(min(rng.uniform(0.03, 0.08) * (width if side < 2 else height), 0.7 * room))
        table = np.float32((0.25, 0.18, 0.12)) * np.float32(rng.uniform(0.6, 1.2))
        region = {0: np.s_[:, :band], 1: np.s_[:, width - band :], 2: np.s_[:band], 3: np.s_[height - band :]}[side]
        page[region] = table
    return page


def _light(rng: np.random.Generator, width: int, height: int, conditions: dict[str, str]) -> np.ndarray:
    """The illumination (H, W): exposure, a gradient across the page and a soft shadow."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) / np.float32(max(width, height))
    light = np.full((height, width), rng.uniform(0.8, 1.0), np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    along = xx * np.cos(angle) + yy * np.sin(angle)
    along = (along - along.min()) / (along.max() - along.min())
    drop = rng.uniform(0.25, 0.5) if conditions["light"] == "gradient" else rng.uniform(0.0, 0.08)
    light *= 1 - np.float32(drop) * along
    if conditions["shadow"] == "soft":  # a hand's or the phone's shadow: a half-plane with a soft edge
        angle = rng.uniform(0, 2 * np.pi)
        across = xx * np.cos(angle) + yy * np.sin(angle)
        edge = np.quantile(across, rng.uniform(0.5, 0.8))
        softness = rng.uniform(0.02, 0.1)
        light *= 1 - np.float32(rng.uniform(0.3, 0.55)) / (1 + np.exp(-(across - edge) / softness))
    return light


def _camera(rng: np.random.Generator, image: np.ndarray, conditions: dict[str, str]) -> np.ndarray:
    """What the phone makes of the light: blur, sensor noise, 8-bit pixels and JPEG."""
    sigma = rng.uniform(1.2, 2.2) if conditions["camera"] == "blurred" else rng.uniform(0.4, 1.0)
    image = cv2.GaussianBlur(image, (0, 0), sigma)
    noise = np.empty_like(image)
    cv2.setRNGSeed(int(rng.integers(2**31)))  # OpenCV's generator is 5x NumPy's speed; seeded from the photo's
    cv2.randn(noise, 0.5, rng.uniform(1.5, 6))  # sensor noise in 8-bit levels, +0.5 to round
    image *= 255
    image += noise
    pixels = np.clip(image, 0, 255, out=image).astype(np.uint8)
    quality = int(rng.integers(55, 92))
    ok, jpeg = cv2.imencode(".jpg", pixels[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])  # OpenCV is BGR
    return cv2.imdecode(jpeg, cv2.IMREAD_COLOR)[..., ::-1].copy()


def write_y4m(path: str | Path, frames: Sequence[np.ndarray], fps: int = 10) -> None:
    """RGB uint8 frames (H, W, 3), all one even size, as a YUV4MPEG2 clip: what Chromium's fake camera plays
    (`--use-file-for-fake-video-capture=PATH`), looping."""
    height, width = frames[0].shape[:2]
    if height % 2 or width % 2 or any(f.shape != frames[0].shape for f in frames):
        raise MnistlabError(f"a y4m clip needs frames of one even size, got {sorted({f.shape for f in frames})}")
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            out.write(b"FRAME\n" + cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2YUV_I420).tobytes())

