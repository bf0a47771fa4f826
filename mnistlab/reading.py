"""Read a written number: the ink of a photo, cut into digits left to right, each classified.

`read_number(image, classify)` finds the ink (`mnistlab.ink`), then

1. groups the pieces that overlap in x (a 5's top stroke and its body, a stroke broken across) and ignores
   dots, dashes and faint leftovers: groups far shorter, lighter or fainter than the digits beside them;
   the line's height is the median height of what is left;
2. cuts the groups into fragments, left to right: a group wider than a digit is cut at the low points of
   its column profile (where touching digits meet), the others are one fragment each;
3. chooses how to join consecutive fragments into digits by a dynamic program: every run of up to
   MAX_FRAGMENTS fragments is a candidate digit, all are framed as MNIST frames digits and classified in one
   batch, and the partition kept is the one with the highest total of each digit's log-confidence, a small
   bonus per digit, priors on a digit's width, height and inner gaps, and a cost per stroke that a kept cut
   goes through. So the fragments of one digit (side by side where a dry pen broke a stroke) are joined
   when the classifier reads them better together, and touching digits are split where it reads the parts
   best; the constants below were tuned on generated photos of other seeds than the benchmark reports;
4. returns each digit with its probabilities, its box in the photo's pixels and the 28x28 image classified.

`classify` maps float32 (N, 28, 28) MNIST-framed digits in [0, 1] to (N, 10) probabilities:
`Classifier.probabilities` is one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from mnistlab.errors import MnistlabError
from mnistlab.ink import INK_MEAN, Ink, Piece, find_ink, is_digit_sized, union_box
from mnistlab.preprocess import frame_digit, to_grey

__all__ = ["DigitRead", "Reading", "read_number"]

Classify = Callable[[np.ndarray], np.ndarray]
Box = tuple[int, int, int, int]

OVERLAP = 0.4  # pieces whose x-ranges overlap by this fraction of the narrower are one group (dot filter)
SMALL = 0.35  # a group shorter than this fraction of the tallest digit is a dot, a dash or a speck
MAX_FRAGMENTS = 6  # a digit is joined from at most this many fragments
CUT_WIDTH = 0.7  # a group wider than this times the line's height is cut into fragments...
CUT_SPACING = 0.2  # ...at most every this many line heights, at the low points of its column profile
DIGIT_BONUS = 0.25  # log-odds for one more digit: without it the fewest, widest digits would always win
WIDEST, WIDTH_SPREAD = 1.1, 0.2  # width / line height beyond which a digit is implausible, and how fast
SHORTEST, HEIGHT_SPREAD = 0.85, 0.12  # height / line height below which a digit is implausible, and how fast
GAP_SPREAD = 0.2  # an empty gap inside a digit, as a fraction of the line's height: how fast it costs
CUT_COST = 0.25  # log-odds against digits touching: paid for each stroke a kept cut goes through


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
    if not groups:
        raise MnistlabError(f"no digit found in {name}; give a photo or drawing of digits, dark on light "
                            "or light on dark")
    heights = [union_box(g)[3] - union_box(g)[1] for g in groups]
    line_height = float(np.median([h for h in heights if h >= 0.5 * max(heights)]))
    fragments = _fragments(ink, groups, line_height)
    candidates, images = _candidates(ink, fragments, line_height)
    probabilities = np.asarray(classify(images), dtype=np.float64)
    chosen = _best_partition(fragments, candidates, probabilities, line_height)
    digits = [
        DigitRead(int(probabilities[k].argmax()), [round(float(v), 6) for v in probabilities[k]],
                  ink.photo_box(candidates[k].box), images[k])
        for k in chosen
    ]
    return Reading("".join(str(d.digit) for d in digits), digits)


@dataclass(frozen=True)
class Fragment:
    """The columns [x0, x1) of a group of pieces that overlap in x: the unit that digits are joined from."""

    group: int  # its index in the groups: fragments of one group were cut apart
    pieces: tuple[Piece, ...]
    x0: int
    x1: int
    strokes_cut: int  # the strokes its left edge cuts through (0 at a group's left end)

    @property
    def rows(self) -> tuple[int, int]:
        return min(p.box[1] for p in self.pieces), max(p.box[3] for p in self.pieces)


@dataclass(frozen=True)
class Candidate:
    """Fragments first..last-1 joined into one digit, with the tight box of their ink."""

    first: int
    last: int
    box: Box
    gap: int  # the widest run of empty columns inside the box


def _digit_groups(pieces: list[Piece], shape: tuple[int, int]) -> list[list[Piece]]:
    """Pieces -> groups of pieces that overlap in x, left to right, without dots and dashes."""
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
    if not any(is_digit_sized(p, shape) for p in pieces):
        return []  # only specks, or what is left of lines, a shadow or paper grain
    heights = [union_box(g)[3] - union_box(g)[1] for g in groups]
    masses = [sum(p.mass for p in g) for g in groups]
    tallest, heaviest = max(heights), max(masses)
    return [g for g, h, m in zip(groups, heights, masses)
            if h >= SMALL * tallest and m >= 0.05 * heaviest and m >= INK_MEAN * sum(p.area for p in g)]


def _fragments(ink: Ink, groups: list[list[Piece]], line_height: float) -> list[Fragment]:
    """The groups, those wider than a digit cut at the low points of their column profile, left to right
    by their centre."""
    fragments = []
    for number, group in enumerate(groups):
        x0, _, x1, _ = union_box(group)
        cuts: list[int] = []
        crop = ink.crop(group)
        ink_per_column = crop.sum(axis=0)
        if x1 - x0 > CUT_WIDTH * line_height:
            smooth = max(3, int(0.04 * line_height) | 1)
            profile = np.convolve(ink_per_column, np.ones(smooth) / smooth, mode="same")
            spacing = CUT_SPACING * line_height
            inner = np.arange(int(spacing / 2), x1 - x0 - int(spacing / 2))
            for column in inner[np.argsort(profile[inner], kind="stable")]:
                if all(abs(column - c) >= spacing for c in cuts):
                    cuts.append(int(column))
                if len(cuts) >= (x1 - x0) / spacing:
                    break
        cuts.sort()
        columns = crop[:, cuts] > 0
        strokes = [0, *(columns[1:] & ~columns[:-1]).sum(axis=0) + columns[0]]  # runs of ink down each cut
        ends = [x0, *(x0 + c for c in cuts), x1]
        fragments += [Fragment(number, tuple(group), a, b, int(n)) for a, b, n in zip(ends, ends[1:], strokes)
                      if ink_per_column[a - x0 : b - x0].any()]  # each fragment alone must be a candidate
    return sorted(fragments, key=lambda f: (f.x0 + f.x1) / 2)


def _fragment_map(ink: Ink, fragments: list[Fragment]) -> np.ndarray:
    """int32 (h, w): 1 + the index of the fragment each ink pixel belongs to, 0 elsewhere."""
    index = np.zeros(ink.labels.shape, np.int32)
    for k, f in enumerate(fragments):
        y0, y1 = f.rows
        region = index[y0:y1, f.x0 : f.x1]
        region[np.isin(ink.labels[y0:y1, f.x0 : f.x1], [p.label for p in f.pieces])] = k + 1
    return index


def _candidates(ink: Ink, fragments: list[Fragment], line_height: float) -> tuple[list[Candidate], np.ndarray]:
    """Every run of up to MAX_FRAGMENTS consecutive fragments no wider than two digits, and the MNIST
    framing of each: float32 (N, 28, 28)."""
    index = _fragment_map(ink, fragments)
    candidates, images = [], []
    for first in range(len(fragments)):
        for last in range(first + 1, min(first + MAX_FRAGMENTS, len(fragments)) + 1):
            x0 = min(f.x0 for f in fragments[first:last])
            x1 = max(f.x1 for f in fragments[first:last])
            if x1 - x0 > 2 * line_height and last > first + 1:
                break
            y0 = min(f.rows[0] for f in fragments[first:last])
            y1 = max(f.rows[1] for f in fragments[first:last])
            sub = index[y0:y1, x0:x1]
            keep = (sub > first) & (sub <= last)
            rows, cols = np.flatnonzero(keep.any(axis=1)), np.flatnonzero(keep.any(axis=0))
            if not rows.size:
                continue
            empty = np.diff(cols) - 1
            box = (x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1)
            crop = np.where(keep, ink.strength[y0:y1, x0:x1], np.float32(0))
            candidates.append(Candidate(first, last, box, int(empty.max(initial=0))))
            images.append(frame_digit(crop[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]))
    return candidates, np.stack(images)


def _log_prior(candidate: Candidate, line_height: float) -> float:
    """How plausible a digit of this shape is on a line of this height (log, 0 at best)."""
    x0, y0, x1, y1 = candidate.box
    wide = max(0.0, (x1 - x0) / line_height - WIDEST) / WIDTH_SPREAD
    short = max(0.0, SHORTEST - (y1 - y0) / line_height) / HEIGHT_SPREAD
    gap = candidate.gap / line_height / GAP_SPREAD
    return -(wide**2) - short**2 - gap**2


def _best_partition(
    fragments: list[Fragment], candidates: list[Candidate], probabilities: np.ndarray, line_height: float
) -> list[int]:
    """The candidates (indices) that cover the fragments left to right with the highest total score."""
    n = len(fragments)
    best = np.full(n + 1, -np.inf)
    best[0] = 0.0
    came_from = np.full(n + 1, -1)
    confidence = np.log(np.maximum(probabilities.max(axis=1), 1e-9))
    by_end: dict[int, list[int]] = {}
    for k, c in enumerate(candidates):
        by_end.setdefault(c.last, []).append(k)
    for last in range(1, n + 1):
        for k in by_end.get(last, []):
            c = candidates[k]
            score = best[c.first] + confidence[k] + DIGIT_BONUS + _log_prior(c, line_height)
            score -= CUT_COST * fragments[c.first].strokes_cut  # where touching digits are cut apart
            if score > best[last]:
                best[last], came_from[last] = score, k
    chosen, end = [], n
    while end > 0:
        k = int(came_from[end])
        chosen.append(k)
        end = candidates[k].first
    return chosen[::-1]
