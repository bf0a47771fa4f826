"""mnistlab.photo.marks and make_non_digit_photos: handwriting-like non-digits, as MNIST images and on paper."""

from __future__ import annotations

from collections import Counter

import cv2
import numpy as np
import pytest

from mnistlab.errors import MnistlabError
from mnistlab.photo.frame import to_grey
from mnistlab.photo.ink import digit_pieces, find_ink, union_box
from mnistlab.photo.marks import (
    GLYPHS,
    KINDS,
    LETTERS,
    SHAPES,
    SYMBOLS,
    _crossings,
    _glyph,
    _shape,
    _shrink,
    _stroke,
    draw_mark,
    draw_texture,
    make_marks,
)
from mnistlab.photo.synth import CONDITIONS, MARKS, make_blank_pages, make_non_digit_photos, make_photos

SIZE = (576, 432)  # half the default photo, as in test_ink: quick


@pytest.fixture(scope="module")
def marks() -> tuple[np.ndarray, list[str]]:
    return make_marks(200, seed=0)


def test_marks_are_mnist_images_light_ink_on_black_inside_the_field(marks):
    images, kinds = marks
    assert images.shape == (200, 28, 28) and images.dtype == np.uint8 and len(kinds) == 200
    assert (images.reshape(200, -1).max(1) == 255).all()  # every mark has ink, at full strength as MNIST's
    assert (images[:, [0, -1]].max() == 0) and (images[:, :, [0, -1]].max() == 0)  # none cut off at the edge
    # Most of a 20x20 box, as MNIST digits: the ink's longer side is 14..27 pixels.
    ink = images > 40
    sides = [max(np.ptp(np.flatnonzero(m.any(1))), np.ptp(np.flatnonzero(m.any(0)))) + 1 for m in ink]
    assert 14 <= min(sides) and max(sides) <= 27
    assert 0.1 < (images > 0).mean() < 0.4  # strokes, not blobs and not hairlines


def test_strokes_are_as_thick_as_mnists(marks):
    def width(image: np.ndarray) -> float:  # twice the area over the outline's length, at half ink
        inked = (image > 127).astype(np.uint8)
        contours = cv2.findContours(inked, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)[0]
        return 2 * inked.sum() / sum(cv2.arcLength(c, True) for c in contours)

    images, kinds = marks
    widths = [width(image) for image, kind in zip(images, kinds) if kind != "scribble"]  # its crossings widen it
    assert 2.0 < np.median(widths) < 3.0  # MNIST's test digits: 2.4


def test_every_kind_is_drawn_about_as_often(marks):
    counts = Counter(marks[1])
    assert set(counts) == set(KINDS) and min(counts.values()) >= 30, counts  # 50 each on average


def test_the_same_seed_gives_the_same_marks_and_mark_i_never_depends_on_count(marks):
    images, kinds = marks
    again, again_kinds = make_marks(20, seed=0)
    assert np.array_equal(images[:20], again) and kinds[:20] == again_kinds
    other, _ = make_marks(20, seed=1)
    assert sum(np.array_equal(a, b) for a, b in zip(other, again)) == 0
    assert make_marks(0)[0].shape == (0, 28, 28)


def test_letters_that_can_be_read_as_digits_are_left_out():
    assert set(LETTERS).isdisjoint("OoQDIlijJTtLSsZzBbGgqay")
    assert not set(SYMBOLS) & set("/|-0123456789")
    assert set(GLYPHS) == set(LETTERS) | set(SYMBOLS)


@pytest.mark.parametrize("char", sorted(GLYPHS))
def test_every_letter_and_symbol_draws_in_the_field(char):
    rng = np.random.default_rng(0)
    image = _shrink(_stroke(_glyph(rng, char), 4 * 20.0, 11, np.eye(2)))
    assert image.max() == 255 and image[[0, -1]].max() == 0 and image[:, [0, -1]].max() == 0
    if char in "!?÷":  # a dot apart from the rest
        assert cv2.connectedComponents((image > 127).astype(np.uint8))[0] - 1 >= 2


@pytest.mark.parametrize("shape", SHAPES)
def test_every_shape_draws_in_the_field(shape):
    rng = np.random.default_rng(1)
    image = _shrink(_stroke(_shape(rng, shape), 4 * 20.0, 11, np.eye(2)))
    assert image.max() == 255 and image[[0, -1]].max() == 0 and image[:, [0, -1]].max() == 0


def test_crossings_are_counted_where_a_line_crosses_itself():
    assert _crossings(np.array([[0, 0], [2, 2], [2, 0], [0, 2]], float)) == 1  # a Z turned: one crossing
    assert _crossings(np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)) == 0  # an open square: none


def test_textures_are_wider_patches_of_ink():
    rng = np.random.default_rng(2)
    for _ in range(6):
        texture = draw_texture(rng)
        assert texture.dtype == np.uint8 and texture.shape[0] == 112 and 112 <= texture.shape[1] <= 224
        assert texture.max() == 255 and (texture > 127).mean() > 0.05


def test_bad_arguments_are_refused_in_one_line():
    with pytest.raises(MnistlabError, match="0 or more"):
        make_marks(-1)
    with pytest.raises(MnistlabError, match="unknown kind of mark 'digit'"):
        draw_mark(np.random.default_rng(0), "digit")
    with pytest.raises(MnistlabError, match="0 or more"):
        make_non_digit_photos(-1)
    with pytest.raises(MnistlabError, match="unknown mark 'digit'"):
        make_non_digit_photos(1, mark="digit")
    with pytest.raises(MnistlabError, match="unknown photo condition paper=pink"):
        make_non_digit_photos(1, paper="pink")


@pytest.fixture(scope="module")
def photos():
    return make_non_digit_photos(20, seed=3, size=SIZE)


def test_non_digit_photos_carry_no_label_and_the_ink_boxes_inside_the_photo(photos):
    assert {p.conditions["mark"] for p in photos} <= set(MARKS) and len({p.conditions["mark"] for p in photos}) >= 4
    for photo in photos:
        assert photo.labels == () and photo.text == ""
        assert photo.image.shape == (SIZE[1], SIZE[0], 3) and photo.image.dtype == np.uint8
        assert list(photo.conditions) == [*CONDITIONS, "mark"]
        count = len(photo.boxes)
        assert (2 <= count <= 4) if photo.conditions["mark"] == "word" else count == 1
        for x0, y0, x1, y1 in photo.boxes:
            assert 0 <= x0 < x1 <= SIZE[0] and 0 <= y0 < y1 <= SIZE[1]


def test_words_are_two_to_four_letters_and_other_conditions_can_be_pinned():
    words = make_non_digit_photos(4, seed=1, size=SIZE, mark="word", lines="ruled", ink="blue")
    assert all(p.conditions["mark"] == "word" and 2 <= len(p.boxes) <= 4 for p in words)
    assert all(p.conditions["lines"] == "ruled" and p.conditions["ink"] == "blue" for p in words)


def test_non_digit_photos_are_the_same_for_the_same_seed_and_photo_i_never_depends_on_count(photos):
    again = make_non_digit_photos(3, seed=3, size=SIZE)
    assert all(np.array_equal(a.image, b.image) and a.boxes == b.boxes and a.conditions == b.conditions
               for a, b in zip(photos, again))
    other = make_non_digit_photos(3, seed=4, size=SIZE)
    assert not any(np.array_equal(a.image, b.image) for a, b in zip(again, other))


def test_the_page_to_ink_stage_finds_the_ink_where_the_generator_put_it(photos):
    found = 0
    for photo in photos:
        ink = find_ink(to_grey(photo.image))
        pieces = digit_pieces(ink)
        if pieces:
            x0, y0, x1, y1 = ink.photo_box(union_box(pieces))
            # What it found lies on the marks (a word's letters may be found one at a time).
            found += any(x0 < b[2] and b[0] < x1 and y0 < b[3] and b[1] < y1 for b in photo.boxes)
    assert found >= 16, found


def test_non_digit_photos_are_never_the_photos_of_digits_or_blank_pages(photos):
    others = make_photos(20, seed=3, size=SIZE) + make_blank_pages(20, seed=3, size=SIZE)
    assert not any(np.array_equal(p.image, o.image) for p in photos for o in others)
