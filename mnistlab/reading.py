"""Read a written number: the ink of a photo, cut into digits left to right, each classified.

`read_number(image, classify)` finds the ink (`mnistlab.ink`), then

1. merges the pieces of one digit: pieces that overlap in x (a 5's separate top stroke, a 4 in two strokes);
2. ignores dots and dashes: pieces far smaller or flatter than the digits beside them;
3. splits digits that touch: a piece wider than a digit is tried at the low points of its column profile,
   and the split is kept when the classifier reads its parts more confidently, with a prior on how wide a
   digit is, than it reads the whole;
4. frames each digit as MNIST does (`preprocess.frame_digit`) and classifies them all.

`classify` maps float32 (N, 28, 28) MNIST-framed digits in [0, 1] to (N, 10) probabilities, e.g.
`lambda x: np.array([d["probabilities"] for d in classifier.predict(list(x))])`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from mnistlab.errors import MnistlabError
from mnistlab.ink import MIN_DIGIT, Ink, Piece, find_ink, union_box
from mnistlab.preprocess import frame_digit, to_grey

__all__ = ["DigitRead", "Reading", "read_number"]

Classify = Callable[[np.ndarray], np.ndarray]
Box = tuple[int, int, int, int]

OVERLAP = 0.4  # pieces whose x-ranges overlap by this fraction of the narrower belong to one digit
SMALL = 0.35  # a group shorter than this fraction of the tallest digit is a dot, a dash or a speck
WIDE = 1.1  # a group wider than this times the line's height may be digits that touch
DIGIT_ASPECT, ASPECT_SPREAD = 0.8, 0.25  # width / height of a digit: typical, and how far it strays
SPLIT_COST = 2.0  # log-odds against two digits touching, paid once per split


@dataclass
class DigitRead:
    """One digit read: its class, the 10 probabilities, its box in the photo's pixels, and the 28x28 image
    the classifier saw."""

    digit: int
    probabilities: list[float]
    box: Box
    image: np.ndarray = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"digit": self.digit, "probabilities": self.probabilities, "box": list(self.box)}


@dataclass
class Reading:
    """A number read from one image: `text` is its digits, left to right."""

    text: str
    digits: list[DigitRead]

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "digits": [d.to_dict() for d in self.digits]}


def read_number(image: Any, classify: Classify, name: str = "the image") -> Reading:
    """Read the number written in `image` (anything `preprocess.to_mnist` takes).

    Raises MnistlabError "no digit found in NAME" when there is no ink that looks like a digit.
    """
    ink = find_ink(to_grey(image))
    groups = _digit_groups(ink.pieces, ink.labels.shape)
    line_height = max((union_box(g)[3] - union_box(g)[1] for g in groups), default=0)
    segments = [part for g in groups for part in _split(ink, g, union_box(g), line_height, classify)]
    if not segments:
        raise MnistlabError(f"no digit found in {name}; give a photo or drawing of digits, dark on light "
                            "or light on dark")
    images = np.stack([frame_digit(ink.crop(pieces, box)) for pieces, box in segments])
    probabilities = np.asarray(classify(images), dtype=np.float64)
    digits = [
        DigitRead(int(p.argmax()), [round(float(v), 6) for v in p], ink.photo_box(_ink_box(ink, pieces, box)), x)
        for (pieces, box), p, x in zip(segments, probabilities, images)
    ]
    return Reading("".join(str(d.digit) for d in digits), digits)


def _digit_groups(pieces: list[Piece], shape: tuple[int, int]) -> list[list[Piece]]:
    """Pieces -> the pieces of each digit, left to right, without dots and dashes."""
    groups: list[list[Piece]] = []
    for piece in sorted(pieces, key=lambda p: p.box[0]):
        for group in groups:
            x0, _, x1, _ = union_box(group)
            overlap = min(x1, piece.box[2]) - max(x0, piece.box[0])
            if overlap >= OVERLAP * min(x1 - x0, piece.width):
                group.append(piece)
                break
        else:
            groups.append([piece])
    if not groups:
        return []
    heights = [union_box(g)[3] - union_box(g)[1] for g in groups]
    masses = [sum(p.mass for p in g) for g in groups]
    tallest, heaviest = max(heights), max(masses)
    if tallest < MIN_DIGIT * min(shape):
        return []  # only specks: what is left of lines, dust
    return [g for g, h, m in zip(groups, heights, masses) if h >= SMALL * tallest and m >= 0.05 * heaviest]


def _log_prior(width: int, height: int) -> float:
    """How plausible a digit of this width is, given the line's height (log, 0 at best)."""
    excess = max(0.0, width / height - DIGIT_ASPECT)
    return -((excess / ASPECT_SPREAD) ** 2)


def _split(
    ink: Ink, group: list[Piece], box: Box, line_height: int, classify: Classify
) -> list[tuple[list[Piece], Box]]:
    """The ink of `group` inside `box` -> one or more digits, as (pieces, box) in working pixels: a wide
    one is tried at cuts, and each side of the cut kept is tried again (three digits may touch)."""
    box = _ink_box(ink, group, box)
    x0, y0, x1, y1 = box
    width, height = x1 - x0, max(y1 - y0, line_height)
    if width <= WIDE * height or width < 8:
        return [(group, box)]
    profile = ink.crop(group, box).sum(axis=0)
    profile = np.convolve(profile, np.ones(3) / 3, mode="same")
    # Candidate cuts: the lowest points of the column profile, away from the ends, a few pixels apart.
    inner = np.arange(int(0.2 * width), int(0.8 * width))
    cuts: list[int] = []
    for column in inner[np.argsort(profile[inner], kind="stable")]:
        if all(abs(column - c) > width * 0.08 for c in cuts):
            cuts.append(int(column))
        if len(cuts) == 6:
            break
    boxes = [box] + [b for c in cuts for b in ((x0, y0, x0 + c, y1), (x0 + c, y0, x1, y1))]
    images = np.stack([frame_digit(ink.crop(group, b)) for b in boxes])
    confidence = np.log(np.maximum(np.asarray(classify(images)).max(axis=1), 1e-9))
    scores = confidence + np.array([_log_prior(b[2] - b[0], height) for b in boxes])
    pair_scores = scores[1::2] + scores[2::2] - SPLIT_COST
    if not len(cuts) or pair_scores.max() <= scores[0]:
        return [(group, box)]
    cut = cuts[int(pair_scores.argmax())]
    left, right = (x0, y0, x0 + cut, y1), (x0 + cut, y0, x1, y1)
    return _split(ink, group, left, line_height, classify) + _split(ink, group, right, line_height, classify)


def _ink_box(ink: Ink, pieces: list[Piece], box: Box) -> Box:
    """`box` shrunk to the ink of `pieces` inside it."""
    crop = ink.crop(pieces, box)
    rows, cols = np.flatnonzero(crop.any(axis=1)), np.flatnonzero(crop.any(axis=0))
    if not rows.size:
        return box
    return box[0] + int(cols[0]), box[1] + int(rows[0]), box[0] + int(cols[-1]) + 1, box[1] + int(rows[-1]) + 1
