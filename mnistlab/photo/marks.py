"""Handwriting-like marks that are not digits: what a "not a digit" score is measured on.

An out-of-distribution score for an MNIST classifier needs inputs that look like MNIST digits — light
pen strokes on black, 28x28, the mark filling most of a 20x20 box in the middle — but are not digits.
`make_marks` draws four kinds of them, each about as often:

- letters, leaving out those that can be read as a digit (O for 0, S for 5, ...: see LETTERS);
- symbols: + = ? ! # % & @ * $ < > × ÷ ~ (no / | -: a bar is a 1);
- shapes: triangle, rectangle, star, heart, cross, arrow, spiral (never a circle or an ellipse: that is a 0);
- scribbles: a smooth pen doodle through 6–9 random points that loops and crosses itself.

Letters and symbols are pen strokes from GLYPHS, a small single-stroke hand of our own, not OpenCV's Hershey
fonts: OpenCV 5 draws those names in a TrueType typeface, print rather than a pen's strokes, and different
from OpenCV 4's. Every mark is drawn by hand, so to speak: its points a little off, its straight lines
wobbling, turned up to 15°, slanted and stretched; it is drawn SCALE times larger than 28x28 with a pen
1.5–2.75 px wide at 28x28, then shrunk by area averaging, which softens its edges as MNIST's are. Made from
a seed, never downloaded.

`draw_word` and `draw_texture` draw what else `mnistlab.photo.synth` writes on paper that is not a
digit: a word of letters in one hand, and a patch of cross-hatching or a grid of small marks.

>>> images, kinds = make_marks(4, seed=0)
>>> images.shape, images.dtype, set(kinds) <= set(KINDS)
((4, 28, 28), dtype('uint8'), True)
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from mnistlab.errors import MnistlabError

__all__ = ["GLYPHS", "KINDS", "LETTERS", "SHAPES", "SYMBOLS", "draw_mark", "draw_texture", "draw_word", "make_marks"]

KINDS = ("letter", "symbol", "shape", "scribble")  # what make_marks draws, each about as often
# Left out as they can be read as a digit: O o Q D (0), I l i j J T t (1, 7), L (4), S s (5), Z z (2), B (8),
# b G (6), g q a y (9; a single-storey a is an o with a stem, a y an open 4)
LETTERS = "ACEFHKMNPRUVWXYcdefhkmnpruvwx"
SYMBOLS = "+=?!#%&@*$<>×÷~"
SHAPES = ("triangle", "rectangle", "star", "heart", "cross", "arrow", "spiral")
# Each letter's and symbol's pen strokes, split by "|": points "x,y" (y down), joined by straight lines, or by a
# smooth curve through them where the stroke starts with "~". A stroke of two points almost together is a dot.
GLYPHS = {
    "A": "0,8 3,0 6,8|1,5.5 5,5.5",
    "C": "~6,1.5 4,0 1.5,0.7 0,4 1.5,7.3 4,8 6,6.5",
    "E": "6,0 0,0 0,8 6,8|0,4 4.5,4",
    "F": "6,0 0,0 0,8|0,4 4.5,4",
    "H": "0,0 0,8|6,0 6,8|0,4 6,4",
    "K": "0,0 0,8|5.5,0 0,5|1.8,3.5 6,8",
    "M": "0,8 0.5,0 3.5,5 6.5,0 7,8",
    "N": "0,8 0,0 6,8 6,0",
    "P": "0,8 0,0|~0,0 4,0 5.5,2 4,4 0,4",
    "R": "0,8 0,0|~0,0 4,0 5.5,2 4,4 0,4|2.5,4 6,8",
    "U": "~0,0 0,5 1.5,7.7 4.5,7.7 6,5 6,0",
    "V": "0,0 3,8 6,0",
    "W": "0,0 2,8 4,2 6,8 8,0",
    "X": "0,0 6,8|6,0 0,8",
    "Y": "0,0 3,4 6,0|3,4 3,8",
    "c": "~5,4 3,3 0.8,3.8 0,5.7 0.8,7.5 3,8 5,7.2",
    "d": "~5,4 3,3 0.8,3.8 0,5.7 0.8,7.5 3,8 5,7|5,0 5,8",
    "e": "~0,5.7 5,5.7 4.5,3.7 2.5,3 0.6,3.8 0,5.7 0.8,7.5 3,8 5,7.2",
    "f": "~5,0.7 3.8,0 2,0.4 1.5,2 1.5,8|0,3.5 3.5,3.5",
    "h": "0,0 0,8|~0,5 1.5,3.3 3.5,3.2 5,4.5 5,8",
    "k": "0,0 0,8|4.5,3 0,6|1.5,5 5,8",
    "m": "0,3 0,8|~0,4.5 1,3.2 2.2,3.2 3,4.5 3,8|~3,4.5 4,3.2 5.2,3.2 6,4.5 6,8",
    "n": "0,3 0,8|~0,4.5 1.5,3.2 3.5,3.2 5,4.5 5,8",
    "p": "0,3 0,11|~0,4 2,3 4.2,3.5 5,5.5 4.2,7.5 2,8 0,7",
    "r": "0,3 0,8|~0,5.5 1,3.8 2.5,3 4,3.2",
    "u": "~0,3 0,6 1,7.7 3,8 5,6.5|5,3 5,8",
    "v": "0,3 2.5,8 5,3",
    "w": "0,3 1.5,8 3,4 4.5,8 6,3",
    "x": "0,3 5,8|5,3 0,8",
    "+": "0,3 6,3|3,0 3,6",
    "=": "0,2 6,2|0,5 6,5",
    "?": "~0,2 1.3,0.3 3,0 4.7,0.7 5,2.3 3.8,3.7 2.5,4.6 2.5,6|2.5,8 2.5,8.1",
    "!": "2,0 2,6|2,8 2,8.1",
    "#": "2.2,0 1.2,8|4.8,0 3.8,8|0,2.5 6.2,2.5|-0.3,5.5 5.9,5.5",
    "%": "0,8 6,0|~1,0 2,1 1,2 0,1 1,0|~5,6 6,7 5,8 4,7 5,6",
    "&": "~6,8 3,5 1.5,2.5 2.2,0.3 3.8,0.4 4,2 1.2,4.5 0.5,6.8 2.5,8 5,5.5",
    "@": "~4.5,3.5 3,2.5 1.8,3.8 2.4,5.3 4,5 4.5,3.5 4.8,5.3 6.2,5 6.6,3 5.5,0.8 3,0.3 0.8,1.6 0,4 1,6.6 3.6,7.6 "
         "5.8,6.8",
    "*": "3,0 3,6|0.4,1.5 5.6,4.5|0.4,4.5 5.6,1.5",
    "$": "~5,1.8 3,1 1,1.6 1.2,3.3 4.8,4.6 5,6.4 3,7 0.5,6.3|3,-0.5 3,8.5",
    "<": "6,0 0,3 6,6",
    ">": "0,0 6,3 0,6",
    "×": "0,0 6,6|6,0 0,6",
    "÷": "0,3 6,3|3,0.6 3,0.7|3,5.3 3,5.4",
    "~": "~0,3.2 1.3,1.7 2.8,2.2 4.2,3.3 5.7,3 6.5,1.7",
}
SIDE = 28  # MNIST's field
SCALE = 4  # marks are drawn this many times larger, then shrunk: anti-aliased strokes with soft edges
CANVAS = 6 * SIDE  # the drawing's canvas, at SCALE: room for any mark turned and slanted
FIT = 26  # a mark larger than this (pixels at 28x28) once turned and slanted is shrunk to fit the field
SPAN = (16.0, 21.0)  # the mark's longer side at 28x28 before it is turned: MNIST's 20x20 box, more or less
THICKNESS = (1.5, 2.75)  # the pen's width at 28x28, pixels: strokes come out 2.5–2.7 px wide at half ink, as
# MNIST's are (2.4 px measured: twice the area over the outline's length, median of 1,000 test digits)
TURN = 15.0  # degrees the mark is turned, either way at most
SLANT = 0.3  # the most it is slanted: horizontal shift per unit of height
STRETCH = 0.15  # the most its width is stretched or squeezed (its height the other way)
SHAKE = 0.04  # how far a drawn point lands from where it was meant, in units of the mark's half-span
WOBBLE = 0.02  # how far a hand-drawn line strays from straight, in the same units


def make_marks(count: int, *, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """`count` non-digit marks as MNIST's images, uint8 (count, 28, 28), 0 background .. 255 ink, and each one's kind.

    The same seed gives the same marks; mark i is the same whatever `count` is.
    """
    if count < 0:
        raise MnistlabError(f"the number of marks must be 0 or more, got {count}")
    images = np.zeros((count, SIDE, SIDE), np.uint8)
    kinds = []
    for index in range(count):
        rng = np.random.default_rng([seed, index])  # each mark from its own stream: mark i never depends on count
        kinds.append(KINDS[rng.integers(len(KINDS))])
        images[index] = draw_mark(rng, kinds[-1])
    return images, kinds


def draw_mark(rng: np.random.Generator, kind: str) -> np.ndarray:
    """One mark of `kind` (one of KINDS), uint8 (28, 28), light on black."""
    if kind not in KINDS:
        raise MnistlabError(f"unknown kind of mark {kind!r}; the kinds are {', '.join(KINDS)}")
    if kind == "letter":
        paths = _glyph(rng, LETTERS[rng.integers(len(LETTERS))])
    elif kind == "symbol":
        paths = _glyph(rng, SYMBOLS[rng.integers(len(SYMBOLS))])
    elif kind == "shape":
        paths = _shape(rng, SHAPES[rng.integers(len(SHAPES))])
    else:
        paths = [_scribble(rng)]
    return _shrink(_stroke(paths, _span(rng), _thickness(rng), _pose(rng)))


def draw_word(rng: np.random.Generator, length: int) -> list[np.ndarray]:
    """`length` letters in one hand (one pen, one slant), each uint8 (28, 28) light on black, left to right."""
    thickness, pose = _thickness(rng), _pose(rng)
    return [_shrink(_stroke(_glyph(rng, LETTERS[rng.integers(len(LETTERS))]), _span(rng), thickness, pose))
            for _ in range(length)]


def draw_texture(rng: np.random.Generator) -> np.ndarray:
    """A patch of cross-hatching or a grid of small marks drawn by hand, uint8 light on black, at SCALE: 112
    pixels tall, 112–224 wide (it is only ever written on paper, where more pixels keep it crisp)."""
    height, width = SCALE * SIDE, SCALE * int(rng.integers(SIDE, 2 * SIDE + 1))
    canvas = np.zeros((height, width), np.uint8)
    thickness = round(SCALE * rng.uniform(1.75, 2.5))
    margin = 2 * SCALE
    if rng.random() < 0.5:  # two sets of parallel strokes across each other, cut off at a rough outline
        corners = np.array([[margin, margin], [width - margin, margin], [width - margin, height - margin],
                            [margin, height - margin]]) + rng.normal(0, 1.5 * SCALE, (4, 2))
        outline = np.zeros_like(canvas)
        cv2.fillPoly(outline, [np.round(corners).astype(np.int32)], 255)
        reach = np.hypot(height, width) / 2
        first = rng.uniform(0, np.pi)
        for angle in (first, first + rng.choice((-1, 1)) * rng.uniform(np.pi / 4, np.pi / 2)):
            spacing = SCALE * rng.uniform(6.0, 9.0)
            offsets = np.arange(-reach, reach, spacing) + rng.uniform(0, spacing)
            for offset, turn in zip(offsets, angle + rng.normal(0, 0.04, len(offsets))):  # no two quite parallel
                along, across = np.array([np.cos(turn), np.sin(turn)]), np.array([-np.sin(turn), np.cos(turn)])
                middle = np.array([width / 2, height / 2]) + across * offset
                _polyline(canvas, [np.array([middle - reach * along, middle + reach * along])], thickness)
        return np.minimum(canvas, outline)
    # a grid of dots, crosses or pluses, evenly spaced as if printed, each placed by hand
    spacing = SCALE * rng.uniform(6.5, 9.0)
    rows, cols = int((height - 2 * margin) // spacing), int((width - 2 * margin) // spacing)
    centres = margin + spacing * (np.stack(np.mgrid[0:cols, 0:rows], -1).reshape(-1, 2) + 0.5)
    centres += rng.normal(0, 0.1 * spacing, centres.shape)
    arm = SCALE * rng.uniform(1.2, 2.0)
    mark = int(rng.integers(3))
    if mark == 0:
        for centre in np.round(centres * 16).astype(int):
            cv2.circle(canvas, (int(centre[0]), int(centre[1])), round(arm * 16), 255, -1, cv2.LINE_AA, shift=4)
        return canvas
    turns = np.pi / 4 * (mark == 1) + rng.normal(0, 0.1, len(centres))
    for turn in (turns, turns + np.pi / 2):
        reach = arm * np.stack([np.cos(turn), np.sin(turn)], 1)
        _polyline(canvas, list(np.stack([centres - reach, centres + reach], 1)), thickness)
    return canvas


def _thickness(rng: np.random.Generator) -> int:
    return round(SCALE * rng.uniform(*THICKNESS))


def _span(rng: np.random.Generator) -> float:
    return SCALE * rng.uniform(*SPAN)


def _pose(rng: np.random.Generator) -> np.ndarray:
    """A random turn, slant and stretch: a 2x2 matrix acting on (x, y) about the mark's centre."""
    turn = np.radians(rng.uniform(-TURN, TURN))
    cos, sin = np.cos(turn), np.sin(turn)
    stretch = 1 + rng.uniform(-STRETCH, STRETCH)
    return np.array([[cos, -sin], [sin, cos]]) @ np.array([[stretch, rng.uniform(-SLANT, SLANT)], [0, 1 / stretch]])


def _glyph(rng: np.random.Generator, char: str) -> list[np.ndarray]:
    """`char`'s strokes in the box -1..1, each point a little off, as a hand draws them."""
    paths = []
    for smooth, stroke in _strokes(char):
        shake = rng.normal(0, SHAKE, stroke.shape)
        if np.ptp(stroke, 0).max() < 0.1:  # a dot: it moves as one and stays a dot
            paths.append(stroke + shake[0])
        else:
            paths.append(_smooth(stroke + shake) if smooth else _wobble(rng, stroke + shake))
    return paths


@lru_cache(maxsize=None)
def _strokes(char: str) -> tuple[tuple[bool, np.ndarray], ...]:
    """`char`'s strokes from GLYPHS, each whether it is smooth and its points, the glyph centred in the box -1..1."""
    strokes = [(s.startswith("~"), np.array([p.split(",") for p in s.lstrip("~").split()], np.float64))
               for s in GLYPHS[char].split("|")]
    points = np.vstack([p for _, p in strokes])
    centre, half = (points.min(0) + points.max(0)) / 2, np.ptp(points, 0).max() / 2
    return tuple((smooth, (stroke - centre) / half) for smooth, stroke in strokes)


def _shape(rng: np.random.Generator, name: str) -> list[np.ndarray]:
    """A shape's pen strokes in a box of -1..1 (y down), wobbling as drawn by hand."""
    if name == "triangle":
        return [_closed(rng, np.array([[rng.uniform(-0.5, 0.5), -1], [1, 1], [-1, 1]]))]
    if name == "rectangle":  # never taller than wide: a tall box is too near a 0
        return [_closed(rng, np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * [1, rng.uniform(0.55, 1.0)])]
    if name == "star":
        if rng.random() < 0.5:  # drawn in one stroke, crossing itself
            angles, radii = -np.pi / 2 + np.array([0, 2, 4, 1, 3]) * 2 * np.pi / 5, np.ones(5)
        else:  # its outline
            angles, radii = -np.pi / 2 + np.arange(10) * np.pi / 5, np.tile([1, rng.uniform(0.4, 0.5)], 5)
        return [_closed(rng, radii[:, None] * np.stack([np.cos(angles), np.sin(angles)], 1))]
    if name == "heart":
        t = np.linspace(0, 2 * np.pi, 40)
        x, y = 16 * np.sin(t) ** 3, -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        return [_wobble(rng, np.stack([x, y + 2.5], 1) / 16)]
    if name == "cross":  # its outline, with arms of one length or a church's long foot; wide, or it is a blob
        arm, bar = rng.uniform(0.5, 0.65), (0.0 if rng.random() < 0.5 else rng.uniform(-0.4, -0.25))
        a, top, bottom = arm / 2, bar - arm / 2, bar + arm / 2
        corners = [(-a, -1), (a, -1), (a, top), (1, top), (1, bottom), (a, bottom), (a, 1), (-a, 1),
                   (-a, bottom), (-1, bottom), (-1, top), (-a, top)]
        return [_closed(rng, np.array(corners))]
    if name == "arrow":  # a shaft and a head, pointing sideways: pointing up or down, it is a 1 with a hat
        head = rng.uniform(0.5, 0.8)
        way = np.radians(rng.uniform(-50, 50)) + np.pi * rng.integers(2)
        turn = np.array([[np.cos(way), -np.sin(way)], [np.sin(way), np.cos(way)]])
        strokes = [[[-1, 0], [1, 0]], [[1 - head, -0.8 * head], [1, 0], [1 - head, 0.8 * head]]]
        return [_wobble(rng, np.array(s, np.float64) @ turn.T) for s in strokes]
    # a spiral of about two turns from near its centre out, its rings apart: tighter, a pen fills it into a dot
    angle = np.linspace(0, rng.uniform(1.6, 2.2) * 2 * np.pi, 80)
    start, sense = rng.uniform(0, 2 * np.pi), rng.choice((-1, 1))
    radius = (0.12 + 0.88 * angle / angle[-1])[:, None]
    return [_wobble(rng, radius * np.stack([np.cos(start + angle), sense * np.sin(start + angle)], 1))]


def _closed(rng: np.random.Generator, corners: np.ndarray) -> np.ndarray:
    """A polygon drawn by hand: corners a little off, the stroke running on a little past where it began."""
    corners = corners + rng.normal(0, SHAKE, corners.shape)
    overshoot = corners[0] + rng.uniform(0, 0.15) * (corners[1] - corners[0])
    return _wobble(rng, np.vstack([corners, corners[:1], overshoot]))


def _scribble(rng: np.random.Generator) -> np.ndarray:
    """A smooth doodle through 6–9 random points filling the box -1..1, spread both ways (not a bar, a 1) and
    crossing itself at least twice (a curve that does not can be a 2, a 3 or a 7)."""
    while True:  # about three tries in four succeed
        points = rng.uniform(-1, 1, (int(rng.integers(6, 10)), 2))
        points -= (points.min(0) + points.max(0)) / 2
        points /= np.abs(points).max()
        spread = np.linalg.svd(points - points.mean(0), compute_uv=False)
        curve = _smooth(points)
        if spread[1] >= 0.4 * spread[0] and _crossings(curve) >= 2:
            return curve


def _crossings(path: np.ndarray) -> int:
    """How many times the polyline `path` crosses itself (segments that touch end to end do not count)."""
    a, b = path[:-1], path[1:]
    d = b - a
    cross = d[:, None, 0] * d[None, :, 1] - d[:, None, 1] * d[None, :, 0]
    ab = a[None, :] - a[:, None]  # from the start of segment i to the start of segment j
    with np.errstate(divide="ignore", invalid="ignore"):
        s = (ab[..., 0] * d[None, :, 1] - ab[..., 1] * d[None, :, 0]) / cross  # along segment i
        t = (ab[..., 0] * d[:, None, 1] - ab[..., 1] * d[:, None, 0]) / cross  # along segment j
    hit = (s > 0) & (s < 1) & (t > 0) & (t < 1)
    return int(np.triu(hit, 2).sum())


def _smooth(points: np.ndarray, steps: int = 12) -> np.ndarray:
    """A Catmull-Rom curve through `points`, `steps` points per span, ending at the last."""
    ends = np.vstack([points[:1], points, points[-1:]])
    p0, p1, p2, p3 = ends[:-3], ends[1:-2], ends[2:-1], ends[3:]
    t = np.linspace(0, 1, steps, endpoint=False)[:, None, None]
    curve = 0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (3 * p1 - p0 - 3 * p2 + p3) * t**3)
    return np.vstack([curve.transpose(1, 0, 2).reshape(-1, 2), points[-1:]])


def _wobble(rng: np.random.Generator, path: np.ndarray) -> np.ndarray:
    """`path` with points every 0.1 along it, bent by two slow waves: a line drawn by hand, not a ruler."""
    steps = np.maximum(1, np.ceil(np.linalg.norm(np.diff(path, axis=0), axis=1) / 0.1)).astype(int)
    segment = np.repeat(np.arange(len(steps)), steps)
    fraction = (np.arange(len(segment)) - np.repeat(np.cumsum(steps) - steps, steps)) / steps[segment]
    dense = np.vstack([path[segment] + fraction[:, None] * (path[segment + 1] - path[segment]), path[-1:]])
    along = np.linspace(0, 1, len(dense))[:, None, None]
    waves = np.sin(2 * np.pi * rng.uniform(0.5, 3, (2, 2)) * along + rng.uniform(0, 2 * np.pi, (2, 2)))
    return dense + WOBBLE * waves.sum(1)


def _stroke(paths: list[np.ndarray], span: float, thickness: int, pose: np.ndarray) -> np.ndarray:
    """`paths` (box -1..1) drawn posed and `span` pixels across in the middle of a blank canvas."""
    canvas = np.zeros((CANVAS, CANVAS), np.uint8)
    _polyline(canvas, [CANVAS / 2 + span / 2 * path @ pose.T for path in paths], thickness)
    return canvas


def _polyline(canvas: np.ndarray, paths: list[np.ndarray], thickness: int) -> None:
    """Draw `paths` (pixels, to a 16th) on `canvas` with an anti-aliased pen `thickness` pixels wide."""
    points = [np.round(path * 16).astype(np.int32) for path in paths]
    cv2.polylines(canvas, points, False, 255, thickness, cv2.LINE_AA, shift=4)


def _shrink(canvas: np.ndarray) -> np.ndarray:
    """A drawing at SCALE -> 28x28: its ink centred (shrunk to FIT first if larger), area-averaged, 255 at its peak."""
    rows, cols = np.flatnonzero(canvas.any(1)), np.flatnonzero(canvas.any(0))
    ink = canvas[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = ink.shape
    if max(h, w) > SCALE * FIT:
        factor = SCALE * FIT / max(h, w)
        ink = cv2.resize(ink, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA)
        h, w = ink.shape
    field = np.zeros((SCALE * SIDE, SCALE * SIDE), np.uint8)
    y0, x0 = (SCALE * SIDE - h) // 2, (SCALE * SIDE - w) // 2
    field[y0 : y0 + h, x0 : x0 + w] = ink
    small = cv2.resize(field, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    return np.round(small * (255 / max(1, int(small.max())))).astype(np.uint8)  # MNIST's digits all reach 255
