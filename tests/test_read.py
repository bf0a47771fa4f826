"""mnistlab.photo.read: ink cut into digits left to right, checked against the photo generator's boxes."""

from __future__ import annotations

import numpy as np
import pytest

from mnistlab.errors import MnistlabError
from mnistlab.photo.frame import to_grey
from mnistlab.photo.ink import find_ink
from mnistlab.photo.read import _bridge, _digit_groups, _fragment_map, _fragments, read_number
from mnistlab.photo.synth import make_photos

SIZE = (576, 432)


def unsure(images: np.ndarray) -> np.ndarray:
    """A classifier with no opinion: segmentation then rests on the width prior alone."""
    return np.full((len(images), 10), 0.1)


@pytest.mark.parametrize("length", [2, 3, 4])
def test_digits_apart_are_found_left_to_right_in_the_photos_own_pixels(length):
    photos = make_photos(4, seed=11, size=SIZE, lengths=(length,), spacing="apart", broken="no", lines="ruled")
    right = 0
    for photo in photos:
        reading = read_number(photo.image, unsure)
        boxes = [d.box for d in reading.digits]
        if len(boxes) == length:
            heights = [b[3] - b[1] for b in photo.boxes]
            right += all(max(abs(a - b) for a, b in zip(found, true)) <= 0.15 * h
                         for found, true, h in zip(boxes, photo.boxes, heights))
        assert all(d.image.shape == (28, 28) for d in reading.digits)
    assert right >= 3


def test_touching_digits_are_split_where_the_classifier_reads_them_best():
    page = np.full((200, 400), 0.9, np.float32)
    page[50:150, 100:110] = 0.1  # two "1"s joined by a bar at their foot: wider than any digit
    page[50:150, 220:230] = 0.1
    page[140:150, 100:230] = 0.1

    def likes_narrow(images: np.ndarray) -> np.ndarray:
        """Confident on a narrow stroke, unsure on anything wide: what a CNN does with a 1 and a blob."""
        widths = np.array([np.ptp(np.flatnonzero(x.any(0))) for x in images])
        p = np.full((len(images), 10), 0.01)
        p[:, 1] = np.where(widths < 16, 0.91, 0.1)  # a framed digit is 20 px tall
        return p / p.sum(1, keepdims=True)

    reading = read_number(page, likes_narrow)
    assert reading.text == "11"
    left, right = reading.digits[0].box, reading.digits[1].box
    assert left[0] == 100 and right[2] == 230 and 110 <= left[2] <= right[0] <= 220  # each holds one stroke


def test_a_gap_across_a_stroke_is_closed_before_classifying_but_a_loop_stays_open():
    digit = np.zeros((100, 60), np.float32)
    digit[:, 25:35] = 1.0  # a stroke, 100 px tall: the line's height
    digit[48:51] = 0.0  # the pen skipped 3 px
    digit[10:40, 5:55], digit[15:35, 12:48] = 1.0, 0.0  # and a loop 20 px across
    closed = _bridge(digit, line_height=100.0)
    assert closed[48:51, 27:33].min() == 1.0  # bridged: the stroke is one piece again
    assert closed[18:32, 15:45].max() == 0.0  # the loop's hole is not filled
    assert closed.shape == digit.shape and closed[60:, :25].max() == 0.0  # nothing grows beside the stroke


def test_dots_and_dashes_are_not_digits():
    page = np.full((200, 500), 0.9, np.float32)
    page[50:150, 100:110] = 0.1  # 1
    page[140:150, 160:170] = 0.1  # a decimal point
    page[95:103, 220:270] = 0.1  # a dash
    page[50:150, 330:340] = 0.1  # 1
    reading = read_number(page, unsure)
    assert len(reading.digits) == 2
    assert [d.box[0] for d in reading.digits] == [100, 330]


def test_the_two_pieces_of_a_five_are_one_digit():
    page = np.full((200, 300), 0.9, np.float32)
    page[40:48, 120:180] = 0.1  # the top stroke, drawn separately
    page[52:150, 118:126] = 0.1  # the body
    page[100:108, 118:170] = 0.1
    page[100:150, 162:170] = 0.1
    reading = read_number(page, unsure)
    assert len(reading.digits) == 1 and reading.digits[0].box == (118, 40, 180, 150)


def test_an_empty_page_is_no_digit_found_naming_the_file():
    with pytest.raises(MnistlabError, match="no digit found in blank.png"):
        read_number(np.full((300, 400), 0.85, np.float32), unsure, name="blank.png")


@pytest.fixture(scope="module")
def reader(sample_data, tmp_path_factory):
    """A seed CNN trained 5 epochs on mnist-sample's training digits (the photos are made from its test
    digits), ~94 % on clean digits: weak, so the segmentation has to do its share."""
    from mnistlab.inference import load
    from mnistlab.train.classifier import train_classifier

    run = train_classifier("seed", sample_data, epochs=5, lr=3e-3, out=str(tmp_path_factory.mktemp("runs") / "cnn"),
                           progress=False)
    return load(run.dir, kind="cnn")


def matches_truth(reading, photo) -> bool:
    """One digit found per true digit, each box within 15 % of the digit's height of the true box."""
    if len(reading.digits) != len(photo.boxes):
        return False
    return all(max(abs(a - b) for a, b in zip(d.box, true)) <= 0.15 * (true[3] - true[1])
               for d, true in zip(reading.digits, photo.boxes))


@pytest.mark.parametrize(("spacing", "broken", "at_least"), [
    ("touching", "no", 6), ("apart", "yes", 6),  # grouping by x-overlap and the best split alone: 4 and 3
    ("touching", "yes", 4),  # both at once is the hardest case, and still open
])
def test_touching_and_broken_digits_are_cut_where_the_generator_drew_them(reader, spacing, broken, at_least):
    photos = make_photos(8, seed=21, size=SIZE, lengths=(2, 3, 4), spacing=spacing, broken=broken)
    found = [matches_truth(read_number(p.image, reader.probabilities), p) for p in photos]
    assert sum(found) >= at_least, found


def test_the_cut_between_touching_digits_that_lean_leans_with_them():
    page = np.full((200, 400), 0.9, np.float32)
    rows = np.arange(50, 150)[:, None]
    lean = (150 - rows) * 0.15  # both strokes lean right by 15 px over their 100 px
    columns = np.arange(400)
    left = (columns >= 100 + lean) & (columns < 140 + lean)  # two thick strokes, 10 px apart
    right = (columns >= 150 + lean) & (columns < 190 + lean)
    page[50:150][left | right] = 0.1
    page[140:150, 138:154] = 0.1  # joined at their foot, and overlapping in x: no vertical cut parts them
    ink = find_ink(page)
    groups = _digit_groups(ink.pieces, ink.labels.shape)
    fragments = _fragments(ink, groups, line_height=100.0)
    index = _fragment_map(ink, fragments)[50:150]
    # One cut runs down the gap: the fragments left of it hold the left stroke, none of the right one.
    left_fragments, right_fragments = set(np.unique(index[left])) - {0}, set(np.unique(index[right])) - {0}
    assert max(left_fragments) < min(right_fragments)


@pytest.mark.parametrize("fixed", [dict(shadow="soft"), dict(edge="none", shadow="none", light="even")],
                         ids=["under a soft shadow", "in plain light"])
def test_no_digit_of_a_number_is_lost_with_the_ink_around_it(fixed):
    # A soft shadow's edge once joined the digits under it to the photo's border, and they went with it.
    photos = make_photos(12, seed=5, size=SIZE, lengths=(3, 4), spacing="apart", broken="no", **fixed)
    found = [len(_digit_groups(ink.pieces, ink.labels.shape)) for ink in (find_ink(to_grey(p.image)) for p in photos)]
    assert sum(n == len(p.labels) for n, p in zip(found, photos)) >= 11
