"""Read a written number: the ink of a photo, cut into digits left to right, each classified.

`read_number(image, classify)` finds the ink (`mnistlab.photo.ink`), then

1. groups the pieces that overlap in x and are near in y (a 5's top stroke and its body, a stroke broken
   across) and ignores dots, dashes and faint leftovers: groups far shorter, lighter or fainter than the
   digits beside them, and faint stubs at the photo's edge; the line's height is the median height of
   what is left;
2. cuts the groups into fragments, left to right: a group wider than a digit is cut near the low points of
   its column profile (where touching digits meet), each cut a path from the group's top to its bottom
   through the least ink, so it leans with digits that lean and touch; the others are one fragment each;
3. chooses how to join consecutive fragments into digits by a dynamic program: every run of up to
   READ.max_fragments fragments is a candidate digit, all are framed as MNIST frames digits and classified in one
   batch, and the partition kept is the one with the highest total of each digit's weighted
   log-confidence, a bonus per digit, priors on a digit's width, height and inner gaps and on its width for
   its height given what it is read as (MNIST's digits of each class), and a cost per stroke that a kept
   cut goes through. So the fragments of one digit (side by side where a dry pen broke a stroke) are joined
   when the classifier reads them better together, and touching digits are split where it reads the parts
   best; the constants below were tuned on generated photos of seeds 1-5, not the benchmark's seed 0;
4. returns each digit with its probabilities, its box in the photo's pixels and the 28x28 image classified
   (its strokes' small gaps closed, as a dry pen leaves them).

`classify` maps float32 (N, 28, 28) MNIST-framed digits in [0, 1] to (N, 10) probabilities:
`Classifier.probabilities` is one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import cv2
import numpy as np

from mnistlab.errors import MnistlabError
from mnistlab.photo.frame import frame_digit, to_grey
from mnistlab.photo.ink import INK, Ink, Piece, find_ink, is_digit_sized, union_box

__all__ = ["DigitRead", "Reading", "read_number"]

Classify = Callable[[np.ndarray], np.ndarray]
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class ReadTuning:
    """The tuned constants of reading a number, each with what it is for and why; `READ` is the set in use."""

    overlap: float = 0.4  # pieces whose x-ranges overlap by this share of the narrower are one group (a dot)...
    join_gap: float = 0.5  # ...unless the rows between them are more than this many times the taller's height
    small: float = 0.35  # a group shorter than this fraction of the tallest digit is a dot, a dash or a speck
    fainter: float = 0.85  # a group fainter than ink_mean is still a digit with this share of the darkest's ink
    tallest: float = 1.5  # a group this much taller than any digit is none (line stubs down the photo's edge)
    max_fragments: int = 6  # a digit is joined from at most this many fragments
    cut_width: float = 0.7  # a group wider than this times the line's height is cut into fragments...
    cut_spacing: float = 0.2  # ...at most every this many line heights, at the low points of its column profile,
    cut_reach: float = 0.1  # ...by a path through the least ink within this many line heights of that point,
    slant_cost: float = 0.05  # ...paying this many ink pixels per column it moves aside: it leans only to save ink
    confidence_weight: float = 1.5  # how much the classifier's log-confidence weighs against the priors below: its
    # confidence tops out near 0.95 (label smoothing), so two digits merged and read at 0.8 are a large drop
    digit_bonus: float = 1.0  # log-odds for one more digit: without it the fewest, widest digits would always win
    widest: float = 1.7  # width / line height beyond which a digit is implausible
    width_spread: float = 0.3  # and how fast it grows implausible beyond that
    shortest: float = 0.95  # height / line height below which a digit is implausible
    height_spread: float = 0.2  # and how fast it grows implausible below that
    gap_spread: float = 0.07  # an empty gap inside a digit, as a fraction of the line's height: how fast it costs
    narrowest: float = 0.45  # width / line height below which a digit other than 1 is implausible
    narrow_spread: float = 0.2  # and how fast it grows implausible below that
    bridge: float = 0.05  # gaps across a stroke up to this many line heights wide are closed before classifying
    cut_cost: float = 0.4  # log-odds against digits touching: paid for each stroke a kept cut goes through
    aspect_weight: float = 0.25  # how much a digit's width for its height, given what it is read as, weighs


READ = ReadTuning()
# log(width / height) of MNIST's training digits by class, turned up to 10 degrees either way as the photos'
# digits are: median and spread (1.48 median absolute deviations, widened 1.3x for the photos' strokes)
ASPECT = np.array([(-0.09, 0.25), (-0.80, 0.73), (-0.06, 0.30), (-0.22, 0.27), (-0.21, 0.27),
                   (-0.03, 0.39), (-0.35, 0.29), (-0.28, 0.27), (-0.29, 0.30), (-0.39, 0.27)])


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
    """Read the number written in `image` (anything `frame.to_mnist` takes).

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


@dataclass(frozen=True, eq=False)
class Fragment:
    """The part of a group of pieces (pieces that overlap in x) between two cuts: the unit that digits are
    joined from. A cut runs from the group's top row to its bottom one through the least ink (leaning with
    touching digits that lean), so a fragment holds, on each of the group's rows, the columns [left, right)."""

    group: int  # its index in the groups: fragments of one group were cut apart
    pieces: tuple[Piece, ...]
    x0: int  # the columns its ink spans, [x0, x1)
    x1: int
    strokes_cut: int  # the strokes its left cut goes through (0 at a group's left end)
    left: np.ndarray = field(repr=False)  # int (rows,): its first column on each of the group's rows
    right: np.ndarray = field(repr=False)  # int (rows,): the column after its last on each row

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
            x0, y0, x1, y1 = union_box(group)
            overlap = min(x1, piece.box[2]) - max(x0, piece.box[0])
            gap = max(piece.box[1] - y1, y0 - piece.box[3], 0)  # a line's stub far below is not the digit's
            near = gap <= READ.join_gap * max(y1 - y0, piece.height)
            if overlap >= READ.overlap * min(x1 - x0, piece.width) and near:
                group.append(piece)
                break
        else:
            groups.append([piece])
    if not groups:
        return []
    heights = [union_box(g)[3] - union_box(g)[1] for g in groups]
    masses = [sum(p.mass for p in g) for g in groups]
    # The digits set the scale: not a stack of line stubs down the photo's edge, nor a lone dash.
    sized = [any(is_digit_sized(p, shape) for p in g) for g in groups]  # holds a piece as big as a digit
    digit_heights = [h for h, s in zip(heights, sized) if s]
    if not digit_heights or max(digit_heights) < INK.min_digit * min(shape):
        return []  # only specks, dashes, or what is left of lines, a shadow or paper grain
    tallest, heaviest = max(digit_heights), max(masses)
    areas = [sum(p.area for p in g) for g in groups]
    # A digit is as dark as pen or pencil leaves paper, or nearly as dark as the darkest digit beside it: a
    # faint pencil digit next to one just dark enough is a digit too.
    darkest = max(m / a for m, a, s in zip(masses, areas, sized) if s)
    faintest = min(INK.ink_mean, READ.fainter * darkest)
    return [g for g, h, m, a in zip(groups, heights, masses, areas)
            if READ.small * tallest <= h <= READ.tallest * tallest and m >= 0.05 * heaviest and m >= faintest * a
            and _not_an_edge_stub(max(g, key=lambda p: p.mass), shape)]


def _not_an_edge_stub(main: Piece, shape: tuple[int, int]) -> bool:
    """Whether a group's main piece can be a digit's: away from the photo's edge, or as dark as a digit
    the edge cuts (a faint stub there is what is left of a line or a shadow)."""
    return not main.touches_edge or is_digit_sized(main, shape)


def _fragments(ink: Ink, groups: list[list[Piece]], line_height: float) -> list[Fragment]:
    """The groups, those wider than a digit cut where their column profile is low, left to right by their
    centre."""
    fragments = []
    for number, group in enumerate(groups):
        x0, y0, x1, y1 = union_box(group)
        crop = ink.crop(group)
        inked = crop > 0
        seeds: list[int] = []
        if x1 - x0 > READ.cut_width * line_height:
            smooth = max(3, int(0.04 * line_height) | 1)
            profile = np.convolve(crop.sum(axis=0), np.ones(smooth) / smooth, mode="same")
            spacing = READ.cut_spacing * line_height
            inner = np.arange(int(spacing / 2), x1 - x0 - int(spacing / 2))
            for column in inner[np.argsort(profile[inner], kind="stable")]:
                if all(abs(column - c) >= spacing for c in seeds):
                    seeds.append(int(column))
                if len(seeds) >= (x1 - x0) / spacing:
                    break
        paths = _cut_paths(inked, sorted(seeds), int(READ.cut_reach * line_height))
        on_cut = inked[np.arange(y1 - y0), paths]  # (cuts, rows): the ink each cut goes through
        strokes = [0, *((on_cut[:, 1:] & ~on_cut[:, :-1]).sum(axis=1) + on_cut[:, 0])]
        bounds = [np.zeros(y1 - y0, np.int64), *paths, np.full(y1 - y0, x1 - x0)]
        columns = np.arange(x1 - x0)
        for left, right, n in zip(bounds, bounds[1:], strokes):
            held = inked & (columns >= left[:, None]) & (columns < right[:, None])
            if held.any():  # each fragment alone must be a candidate, so it must hold ink
                used = np.flatnonzero(held.any(axis=0))
                fragments.append(Fragment(number, tuple(group), x0 + int(used[0]), x0 + int(used[-1]) + 1, int(n),
                                          x0 + left, x0 + right))
    return sorted(fragments, key=lambda f: (f.x0 + f.x1) / 2)


def _cut_paths(inked: np.ndarray, seeds: list[int], reach: int) -> np.ndarray:
    """For each seed column, the path down `inked` (rows, columns) through the fewest ink pixels, within
    `reach` columns of the seed, moving at most one column a row at READ.slant_cost a move: int (seeds, rows),
    each cut left of the next."""
    rows, width = inked.shape
    if not seeds:
        return np.zeros((0, rows), np.int64)
    offsets = np.arange(-reach, reach + 1)
    columns = np.clip(np.asarray(seeds)[:, None] + offsets, 0, width - 1)  # (seeds, offsets)
    cost = inked[:, columns].astype(np.float32)  # (rows, seeds, offsets)
    blocked = np.full((len(seeds), 1), np.inf, np.float32)
    total = cost[0]
    moves = np.zeros(cost.shape, np.int8)  # 0: from the column left of it, 1: from above, 2: from the right
    for row in range(1, rows):
        came = np.stack([np.concatenate([blocked, total[:, :-1]], axis=1) + READ.slant_cost, total,
                         np.concatenate([total[:, 1:], blocked], axis=1) + READ.slant_cost])
        moves[row] = came.argmin(axis=0)
        total = came.min(axis=0) + cost[row]
    at = total.argmin(axis=1)
    path = np.empty((len(seeds), rows), np.int64)
    each = np.arange(len(seeds))
    for row in range(rows - 1, -1, -1):
        path[:, row] = columns[each, at]
        at = at + moves[row, each, at] - 1
    return np.maximum.accumulate(path, axis=0)  # cuts that crossed would leave an empty fragment between them


def _fragment_map(ink: Ink, fragments: list[Fragment]) -> np.ndarray:
    """int32 (h, w): 1 + the index of the fragment each ink pixel belongs to, 0 elsewhere."""
    index = np.zeros(ink.labels.shape, np.int32)
    for k, f in enumerate(fragments):
        y0, y1 = f.rows
        region = index[y0:y1, f.x0 : f.x1]
        columns = np.arange(f.x0, f.x1)
        held = (columns >= f.left[:, None]) & (columns < f.right[:, None])
        region[held & np.isin(ink.labels[y0:y1, f.x0 : f.x1], [p.label for p in f.pieces])] = k + 1
    return index


def _candidates(ink: Ink, fragments: list[Fragment], line_height: float) -> tuple[list[Candidate], np.ndarray]:
    """Every run of up to READ.max_fragments consecutive fragments no wider than two digits, and the MNIST
    framing of each: float32 (N, 28, 28)."""
    index = _fragment_map(ink, fragments)
    candidates, images = [], []
    for first in range(len(fragments)):
        for last in range(first + 1, min(first + READ.max_fragments, len(fragments)) + 1):
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
            crop = crop[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
            candidates.append(Candidate(first, last, box, int(empty.max(initial=0))))
            images.append(frame_digit(_bridge(crop, line_height)))
    return candidates, np.stack(images)


def _bridge(crop: np.ndarray, line_height: float) -> np.ndarray:
    """The digit with the small gaps a dry pen leaves across its strokes closed (a grey closing, narrower
    than a digit's loops): the classifier was never shown a broken stroke."""
    side = int(READ.bridge * line_height) | 1
    if side < 3:
        return crop
    padded = cv2.copyMakeBorder(crop, side, side, side, side, cv2.BORDER_CONSTANT, value=0)
    closed = cv2.morphologyEx(padded, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side)))
    return closed[side:-side, side:-side]


def _log_prior(candidate: Candidate, probabilities: np.ndarray, line_height: float) -> float:
    """How plausible a digit of this shape is on a line of this height, read with these probabilities (log,
    0 at best): its width and height against the line's, its inner gap, and its width for its height against
    that of the digits it is read as."""
    x0, y0, x1, y1 = candidate.box
    width, height = (x1 - x0) / line_height, (y1 - y0) / line_height
    wide = max(0.0, width - READ.widest) / READ.width_spread
    short = max(0.0, READ.shortest - height) / READ.height_spread
    narrow = max(0.0, READ.narrowest - width) / READ.narrow_spread
    gap = candidate.gap / line_height / READ.gap_spread
    z = (np.log(width / height) - ASPECT[:, 0]) / ASPECT[:, 1]
    aspect = np.log(max(float(probabilities @ np.exp(-z * z / 2)), 1e-6))
    return -(wide**2) - short**2 - gap**2 - (1 - probabilities[1]) * narrow**2 + READ.aspect_weight * aspect


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
            score = (best[c.first] + READ.confidence_weight * confidence[k] + READ.digit_bonus
                     + _log_prior(c, probabilities[k], line_height))
            score -= READ.cut_cost * fragments[c.first].strokes_cut  # where touching digits are cut apart
            if score > best[last]:
                best[last], came_from[last] = score, k
    chosen, end = [], n
    while end > 0:
        k = int(came_from[end])
        chosen.append(k)
        end = candidates[k].first
    return chosen[::-1]
