"""From a page to its ink: the stage that finds handwritten digits in a photo, before any framing.

A phone photo of a digit on paper is not a clean MNIST image: the light falls off across the page, a
shadow darkens part of it, ruled or squared lines cross it, the paper has grain and the JPEG has noise.
`find_ink` turns such a page into the ink alone:

1. work at most INK.work_side pixels on the short side (a digit 20 % of that tall is still ~100 px);
2. estimate the paper's brightness everywhere — a morphological closing, which fills in strokes narrower
   than its kernel but keeps gradients and shadows, which are broad — and divide it out, so that ink is
   measured against the paper around it: a local threshold, not one level for the whole page;
3. keep what is darker than the paper by more than its measured noise, and remove ruled and squared
   lines: bands that stay inked along a quarter of the page's width (or height) are lines, and only their
   thin parts are removed, so a stroke that crosses a line is kept whole;
4. let go of the photo's edge (the table, a shadow) and specks, and keep ink by hysteresis: weak pixels
   count only when connected to strong ones, so faint stroke ends stay and noise goes;
5. label the connected pieces of ink.

`digit_pieces` then picks the pieces of the one digit on the page (the main piece, and pieces near it: the
separate top stroke of a 5, a 4 drawn in two strokes); `mnistlab.photo.read` groups them into the digits of a
number instead. Clean images — a canvas drawing, an MNIST digit, a scan on white paper — have flat paper
and no lines, so their ink is exactly what `frame.to_mnist` always took: darkness relative to the
paper, scaled to the strongest ink.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

__all__ = ["INK", "InkTuning", "Ink", "Piece", "digit_pieces", "find_ink", "is_digit_sized"]


@dataclass(frozen=True)
class InkTuning:
    """The tuned constants of finding ink, each with what it is for and why; `INK` is the set in use."""

    work_side: int = 480  # photos are shrunk to this short side first: speed, and the digit is still ~100 px tall
    background_side: int = 120  # the paper's light is estimated at this short side: it varies slowly
    flat_kernel: float = 0.25  # the closing that decides whether paper is flat: wider than any stroke, slanted too
    paper_kernel: float = 1 / 7  # the closing that measures uneven paper: wider than a pen stroke, narrow enough to
    # follow a soft shadow's edge (a quarter of the page made the shadowed side of that edge count as ink)
    flat: float = 0.03  # paper whose estimated light varies less than this is flat: one level for all of it
    min_contrast: float = 0.05  # ink fainter than this against its paper is no ink at all (a blank page)
    noise_sigmas: float = 4.0  # weak ink: this many noise deviations darker than the paper
    skewed: float = 2.0  # the paper's darkness is skewed by lines (not its own) when its median is this many times
    # further above its 15.9th percentile than that is above its 2.3rd: a normal noise has them equal
    line_span: float = 0.25  # a ruled line is inked along at least this fraction of the page's width (or height)
    line_drift: int = 5  # rows (columns) a line may drift over that span: it is photographed a little skewed
    line_thickness: float = 0.015  # a line is at most this fraction of the page's short side thick, +1 px of blur
    noise: float = 0.2  # ink fainter than this fraction of the strongest is paper (grain, JPEG ringing), as in MNIST
    min_digit: float = 0.06  # a digit is at least this fraction of the page's short side tall (or wide)
    edge_digit: float = 0.5  # ink touching the photo's edge is a digit only when at most this share of its size
    edge_strip: float = 0.1  # ink along a whole side and within this share of it is the table or the page's edge
    ink_mean: float = 0.14  # a digit's ink darkens its paper by at least this on average. Measured on generated
    # photos: ink 0.3 and more, thin pencil on grey paper down to 0.15; what an empty page's lines and light leave
    # behind mostly under 0.1, at most 0.15. The margin is thin: a stroke-width-aware test would separate them better
    edge_ink_mean: float = 0.25  # ink at the photo's edge must be darker: a shadow's edge meets the border at 0.15
    thinnest: float = 0.008  # a digit's strokes are on average at least this share of the page's short side thick
    # (4 px at work_side; a thin stroke of the smallest digit is twice that, the stub of a line at the border half)
    near: float = 0.25  # pieces within this fraction of the digit's size of it belong to the same digit

INK = InkTuning()


@dataclass(frozen=True)
class Piece:
    """One connected piece of ink, in working pixels."""

    label: int  # its value in Ink.labels
    box: tuple[int, int, int, int]  # x0, y0, x1, y1, the ends exclusive
    area: int  # pixels
    mass: float  # summed strength
    touches_edge: bool  # it reaches the photo's border

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]


@dataclass
class Ink:
    """The ink of a page: `strength` 0 (paper) .. 1 (strongest ink), lines and noise removed."""

    strength: np.ndarray  # float32 (h, w) at the working size; 0 outside every piece
    labels: np.ndarray  # int32 (h, w): 0 is paper, else the label of the piece a pixel belongs to
    pieces: list[Piece]  # left to right
    scale: float  # the photo's pixels per working pixel (1 for images no larger than INK.work_side)

    def crop(self, pieces: list[Piece], box: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """The strength of just these pieces inside `box` (default: their joint box), float32."""
        x0, y0, x1, y1 = box or union_box(pieces)
        labels = self.labels[y0:y1, x0:x1]
        keep = np.isin(labels, [p.label for p in pieces])
        return np.where(keep, self.strength[y0:y1, x0:x1], np.float32(0))

    def photo_box(self, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """A working-pixel box in the photo's own pixel coordinates."""
        x0, y0, x1, y1 = box
        s = self.scale
        return int(x0 * s), int(y0 * s), int(np.ceil(x1 * s)), int(np.ceil(y1 * s))


def union_box(pieces: list[Piece]) -> tuple[int, int, int, int]:
    return (min(p.box[0] for p in pieces), min(p.box[1] for p in pieces),
            max(p.box[2] for p in pieces), max(p.box[3] for p in pieces))


def find_ink(grey: np.ndarray) -> Ink:
    """A page as float32 (H, W) greyscale, 0 black .. 1 white (`frame.to_grey` makes it from any image),
    dark ink on light paper or light on dark -> its ink. The module docstring's stages, in order."""
    grey, scale = _working_size(grey)
    darkness, flat = _darkness(grey)
    strength = np.clip(darkness, 0, 1)
    if strength.max() < INK.min_contrast:
        return _empty(grey.shape, scale)
    weak = _noise_level(darkness)
    mask = strength > weak
    mask &= ~_line_pixels(strength, mask, weak)
    inked = _digit_ink(mask, strength, weak, flat)
    if inked is None:
        return _empty(grey.shape, scale)
    return _labelled(inked, strength, scale)


def _working_size(grey: np.ndarray) -> tuple[np.ndarray, float]:
    """Stage 1: the page at most INK.work_side on its short side, and the photo's pixels per working pixel."""
    scale = max(1.0, min(grey.shape) / INK.work_side)
    if scale > 1:
        size = (round(grey.shape[1] / scale), round(grey.shape[0] / scale))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    return grey, scale


def _darkness(grey: np.ndarray) -> tuple[np.ndarray, bool]:
    """Stage 2: how much darker than its paper each pixel is (0 on paper, towards 1 for black ink; noise
    either side of 0), and whether the paper is flat (a clean image) rather than a photo's."""
    # The border is mostly paper: a light one means dark ink. Make it dark ink on light paper.
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    paper_level = float(np.median(border))
    dark_ink = paper_level > (grey.min() + grey.max()) / 2
    paper = _paper_light(grey if dark_ink else 1 - grey, INK.flat_kernel)
    if float(paper.max() - paper.min()) < INK.flat:
        # Flat paper (any clean image): ink is its difference from the border's level, as it always was.
        return (paper_level - grey if dark_ink else grey - paper_level), True
    # Uneven light is a photo of paper, and its ink is dark even when a shadow over the border says
    # otherwise (light ink on a dark ground is a drawing, and a drawing's ground is flat). Dividing by
    # the paper's light measures each stroke against the paper around it.
    return 1 - grey / _paper_light(grey, INK.paper_kernel), False


def _noise_level(darkness: np.ndarray) -> float:
    """Stage 3: the weakest darkness that is ink, INK.noise_sigmas of the paper's noise above the paper. The
    noise is measured on the pixels lighter than the median: ink and lines only ever add darkness."""
    sample = darkness[::3, ::3]
    lightest, below, centre = np.percentile(sample, [2.3, 15.9, 50])  # 2 and 1 deviations below, the median
    if centre - below > INK.skewed * (below - lightest):
        # Dense squared lines cover half the page, and the median is theirs: the paper is on the light side
        centre = below + (below - lightest)
    return max(float(centre + INK.noise_sigmas * (centre - below)), INK.min_contrast / 2)


def _digit_ink(mask: np.ndarray, strength: np.ndarray, weak: float, flat: bool) -> np.ndarray | None:
    """Stage 4, after the lines are gone: the pixels of `mask` that are a digit's ink, or None when none is
    dark enough. The photo's edge (the table, the page's edge, a shadow) and specks are let go, then a
    hysteresis keeps the pieces holding a pixel at least half as dark as the darkest ink."""
    h, w = mask.shape
    labels, stats, peaks = _components(mask, strength)
    if not flat:
        # A soft shadow's edge leaves a faint band of "ink" that can join the digits under it to the photo's
        # edge, and they would go with it. Apart from the band, at the darkness of real ink, they stay.
        wide = (stats[:, 2] > INK.edge_digit * w) | (stats[:, 3] > INK.edge_digit * h)
        spanning = _touches_edge(stats, (h, w)) & wide
        spanning[0] = False  # the paper
        if spanning.any():
            mask &= ~(spanning[labels] & (strength < INK.edge_ink_mean))
            labels, stats, peaks = _components(mask, strength)
    masses = np.asarray(ndimage.sum(strength, labels, np.arange(len(stats))))
    pw, ph = stats[:, 2], stats[:, 3]
    keep = (peaks > 0) & ~_strips(stats, (h, w))  # label 0, the paper, has no peak
    top_or_bottom, left_or_right = _edge_sides(stats, (h, w))
    edge = top_or_bottom | left_or_right
    # What touches the photo's edge (the table, the page's edge, a shadow's corner) is not the digit when
    # there is clear ink away from the edge; a digit drawn out to the edge of a canvas is kept.
    inner = keep & ~edge
    cut_off = np.zeros_like(keep)
    if inner.any() and peaks[inner].max() >= max(2 * weak, 0.3 * peaks.max()):
        keep = inner
        # A digit the photo's edge cuts into (a number written out to the edge) is no deeper into the photo
        # than a digit, though a number cut by the top may span it; the table, the page's edge and a shadow
        # reach across it. It is kept, but sets no level.
        cut_off = (edge & (peaks > 0) & (pw < w) & (ph < h) & ~(top_or_bottom & (ph > INK.edge_digit * h))
                   & ~(left_or_right & (pw > INK.edge_digit * w)))
    # The strongest ink, of the pieces with some mass: a speck (a line's remnant, a dust mote) has none.
    heavy = keep & (masses >= 0.1 * masses[keep].max()) if keep.any() else keep
    strongest = float(peaks[heavy].max()) if heavy.any() else 0.0
    if strongest < INK.min_contrast:
        return None
    # Hysteresis: a piece is ink when it holds a pixel at least half as dark as the darkest ink. Then, as
    # MNIST's framing does, ink fainter than INK.noise of the strongest (JPEG ringing, blur) is paper.
    keep = (keep | cut_off) & (peaks >= max(2 * weak, 0.5 * strongest))
    inked = keep[labels] & (strength / np.float32(strongest) >= INK.noise)  # as frame_digit divides
    labels, stats, _ = _components(inked, strength)
    strips = _strips(stats, (h, w))
    if strips.any():  # a strip that lines or a shadow joined to other ink, apart now that they are gone
        inked &= ~strips[labels]
    return inked


def _labelled(inked: np.ndarray, strength: np.ndarray, scale: float) -> Ink:
    """Stage 5: the connected pieces of ink, left to right."""
    labels, stats, _ = _components(inked, strength)
    strength = np.where(inked, strength, np.float32(0))
    masses = ndimage.sum(strength, labels, np.arange(len(stats)))
    touches = _touches_edge(stats, inked.shape)
    pieces = []
    for label in range(1, len(stats)):
        x, y, pw, ph, area = (int(v) for v in stats[label])
        pieces.append(Piece(label, (x, y, x + pw, y + ph), area, float(masses[label]), bool(touches[label])))
    pieces.sort(key=lambda p: (p.box[0], p.box[1]))
    return Ink(strength, labels, pieces, scale)


def _components(mask: np.ndarray, strength: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """8-connected pieces of `mask`: labels (h, w) int32, stats (n, 5) as OpenCV gives them (row 0 is the
    paper), and each label's strongest pixel (0 for the paper)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    peaks = np.zeros(count, np.float32)
    np.maximum.at(peaks, labels[mask], strength[mask])  # only the ink's pixels: ndimage.maximum sorts them all
    return labels, stats, peaks


def _edge_sides(stats: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Which pieces (rows of OpenCV's stats) reach the photo's top or bottom border, and its left or right."""
    h, w = shape
    x, y, pw, ph = stats[:, 0], stats[:, 1], stats[:, 2], stats[:, 3]
    return (y == 0) | (y + ph == h), (x == 0) | (x + pw == w)


def _touches_edge(stats: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Which pieces reach the photo's border at all."""
    top_or_bottom, left_or_right = _edge_sides(stats, shape)
    return top_or_bottom | left_or_right


def _strips(stats: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Which pieces (rows of OpenCV's stats) are bands the whole length of a side of the photo and close
    along it: the table or the page's edge, never a digit (a blank page may have nothing else)."""
    h, w = shape
    x, y, pw, ph = stats[:, 0], stats[:, 1], stats[:, 2], stats[:, 3]
    return (((ph == h) & ((x + pw <= INK.edge_strip * w) | (x >= (1 - INK.edge_strip) * w)))
            | ((pw == w) & ((y + ph <= INK.edge_strip * h) | (y >= (1 - INK.edge_strip) * h))))


def _empty(shape: tuple[int, int], scale: float) -> Ink:
    return Ink(np.zeros(shape, np.float32), np.zeros(shape, np.int32), [], scale)


def _paper_light(grey: np.ndarray, kernel: float) -> np.ndarray:
    """The paper's brightness at every pixel: the page with its dark strokes closed over by a square
    `kernel` times the short side, at low resolution."""
    factor = max(1.0, min(grey.shape) / INK.background_side)
    small = grey
    if factor > 1:
        small = cv2.resize(grey, (round(grey.shape[1] / factor), round(grey.shape[0] / factor)),
                           interpolation=cv2.INTER_AREA)
    side = int(min(small.shape) * kernel) | 1
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (side, side))
    light = cv2.morphologyEx(small, cv2.MORPH_CLOSE, kernel)
    light = cv2.blur(light, (side // 2 | 1, side // 2 | 1))  # soften the closing's flat-topped blocks
    if factor > 1:
        light = cv2.resize(light, (grey.shape[1], grey.shape[0]), interpolation=cv2.INTER_LINEAR)
    return np.maximum(light, np.float32(1e-3))


def _line_pixels(strength: np.ndarray, mask: np.ndarray, weak: float) -> np.ndarray:
    """The thin parts of ruled and squared lines: long straight bands of ink, where they are thin."""
    lines = np.zeros_like(mask)
    cap = INK.line_thickness * min(mask.shape) + 1
    for transpose in (False, True):  # horizontal lines, then vertical ones on the transposed page
        # Where squared lines cross, the first pass keeps the crossing (the other line runs through it);
        # the second, on what the first left, removes it.
        remaining = mask & ~lines
        s, m = (strength.T, remaining.T) if transpose else (strength, remaining)
        span = int(INK.line_span * s.shape[1])
        if span < 3 * cap:  # a small image (an MNIST digit, an icon) has no room for a page's lines
            continue
        # Dilate across the line, then keep what stays inked along `span`: lines, even skewed ones.
        across = cv2.dilate(s, np.ones((2 * INK.line_drift + 1, 1), np.uint8))
        band = cv2.morphologyEx(across, cv2.MORPH_OPEN, np.ones((1, span), np.uint8)) > weak
        band &= m
        if band.sum() < span:
            continue
        runs = _vertical_runs(m)
        thin_runs = runs[band & (runs <= cap)]
        if thin_runs.size < span:  # no thin band: nothing printed, only strokes along the page
            continue
        thickness = float(np.median(thin_runs))  # the lines' own: most thin band pixels are line pixels
        thin = band & (runs <= min(cap, 1.6 * thickness + 1))
        lines |= thin.T if transpose else thin
    return lines


def _vertical_runs(mask: np.ndarray) -> np.ndarray:
    """For each True pixel, the length of the vertical run of True pixels it is in (0 elsewhere)."""
    columns = np.zeros((mask.shape[1], mask.shape[0] + 1), bool)  # a False row ends each column's runs
    columns[:, :-1] = mask.T
    flat = columns.ravel()
    starts = flat & ~np.concatenate([[False], flat[:-1]])
    run = np.cumsum(starts) * flat
    lengths = np.bincount(run)
    lengths[0] = 0
    return lengths[run].reshape(columns.shape)[:, :-1].T


def is_digit_sized(piece: Piece, shape: tuple[int, int]) -> bool:
    """Whether `piece` can be (the main piece of) a digit on a page of `shape`: not a speck, and as dark
    as a pen or pencil leaves paper, not as faint as what line removal, shadows and grain leave behind, and
    not a hairline (what is left of a line where the photo's border cuts it)."""
    length = max(piece.width, piece.height)
    darkness = INK.edge_ink_mean if piece.touches_edge else INK.ink_mean
    return (length >= INK.min_digit * min(shape) and piece.mass >= darkness * piece.area
            and piece.area >= INK.thinnest * min(shape) * length)


def digit_pieces(ink: Ink) -> list[Piece]:
    """The pieces of the one digit on the page: the main piece of ink, with the pieces near it.

    The main piece is the heaviest that does not touch the photo's edge (the table, a page edge, a finger),
    unless only edge pieces are heavy; then pieces are added while they lie within INK.near of the digit so far.
    """
    if not ink.pieces:
        return []
    heaviest = max(p.mass for p in ink.pieces)
    inside = [p for p in ink.pieces if not p.touches_edge and p.mass >= 0.2 * heaviest]
    chosen = [max(inside or ink.pieces, key=lambda p: p.mass)]
    if not is_digit_sized(chosen[0], ink.labels.shape):
        return []  # only specks, or what is left of lines, a shadow or paper grain
    grown = True
    while grown:
        x0, y0, x1, y1 = union_box(chosen)
        margin = INK.near * max(x1 - x0, y1 - y0)
        near = [p for p in ink.pieces if p not in chosen and p.box[0] < x1 + margin and p.box[2] > x0 - margin
                and p.box[1] < y1 + margin and p.box[3] > y0 - margin and not (p.touches_edge and inside)]
        chosen += near
        grown = bool(near)
    return chosen
