"""mnistlab.photo.ink: the page-to-ink stage, checked against the photo generator's true boxes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mnistlab.errors import MnistlabError
from mnistlab.photo.frame import to_grey
from mnistlab.photo.ink import digit_pieces, find_ink, union_box
from mnistlab.photo.synth import make_blank_pages, make_photos

SIZE = (576, 432)  # half the default photo: the same page at a quarter of the pixels, so the tests are quick


def found_box(photo) -> tuple[int, int, int, int] | None:
    ink = find_ink(to_grey(photo.image))
    pieces = digit_pieces(ink)
    return ink.photo_box(union_box(pieces)) if pieces else None


def box_error(found, true) -> float:
    """The largest distance between corresponding edges, as a fraction of the true box's height."""
    return max(abs(a - b) for a, b in zip(found, true)) / (true[3] - true[1])


@pytest.mark.parametrize("condition", [
    {"lines": "ruled"}, {"lines": "squared"}, {"shadow": "soft"}, {"light": "gradient"}, {"ink": "pencil"},
    {"edge": "table"}, {"stroke": "thin"}, {"stroke": "thick"},
    {"ink": "pencil", "lines": "squared", "paper": "blue"},  # dense lines as dark as the pencil
])
def test_the_digit_is_found_where_the_generator_put_it(condition):
    photos = make_photos(6, seed=3, size=SIZE, **condition)
    errors = [box_error(found, p.boxes[0]) if (found := found_box(p)) else np.inf for p in photos]
    # Blur and JPEG soften the ink's edge by a few pixels; 12 % of the height is well inside the digit.
    assert sum(e <= 0.12 for e in errors) >= 5, errors


def test_ruled_lines_are_removed_but_the_stroke_that_crosses_them_is_kept():
    page = np.full((300, 400), 0.92, np.float32)
    page[::20] = 0.6  # ruled lines every 20 rows, 1 px thick
    page[65:235, 195:205] = 0.1  # a vertical stroke crossing eight of them
    ink = find_ink(page)
    assert len(ink.pieces) == 1
    assert ink.pieces[0].box == (195, 65, 205, 235)  # the stroke whole, no stub of line beside it
    assert ink.strength[65:235, 195:205].min() > 0.8


def test_the_two_strokes_of_a_four_are_one_digit():
    page = np.full((200, 200), 0.9, np.float32)
    page[40:120, 60:68] = 0.1  # the left stroke and the bar
    page[112:120, 60:115] = 0.1  # (stopping short of the right stroke)
    page[30:170, 120:128] = 0.1  # the right stroke, drawn separately
    ink = find_ink(page)
    assert len(ink.pieces) == 2
    assert union_box(digit_pieces(ink)) == (60, 30, 128, 170)


def test_specks_far_from_the_digit_are_not_part_of_it():
    page = np.full((300, 300), 0.9, np.float32)
    page[100:200, 140:150] = 0.1  # a "1"
    page[20:24, 20:24] = 0.5  # dust
    ink = find_ink(page)
    assert union_box(digit_pieces(ink)) == (140, 100, 150, 200)


@pytest.mark.parametrize("lines", ["ruled", "squared"])
def test_an_empty_lined_page_has_no_digit(lines):
    # What line removal leaves of the lines, and the light's unevenness, is fainter than any ink.
    for photo in make_photos(3, seed=0, size=SIZE, lines=lines, light="gradient", edge="none"):
        x0, y0, x1, y1 = photo.boxes[0]
        digit = np.zeros(photo.image.shape[:2], np.uint8)
        digit[max(0, y0 - 8) : y1 + 8, max(0, x0 - 8) : x1 + 8] = 1
        empty = cv2.inpaint(photo.image, digit, 5, cv2.INPAINT_TELEA)  # the page as it was before the digit
        assert digit_pieces(find_ink(to_grey(photo.image)))
        assert digit_pieces(find_ink(to_grey(empty))) == []


def test_a_blank_page_has_no_ink():
    assert find_ink(np.full((64, 64), 0.8, np.float32)).pieces == []
    grain = np.random.default_rng(0).normal(0.8, 0.01, (300, 400)).astype(np.float32)
    assert digit_pieces(find_ink(grain)) == []


def test_a_one_megapixel_photo_takes_under_fifty_milliseconds():
    import time

    photos = make_photos(4, seed=1)
    greys = [to_grey(p.image) for p in photos]
    find_ink(greys[0])  # warm up
    start = time.perf_counter()
    for grey in greys:
        digit_pieces(find_ink(grey))
    per_photo = (time.perf_counter() - start) / len(greys)
    assert per_photo < 0.2  # 50 ms is the target on a quiet core; a busy shared machine gets slack


def test_unknown_photo_conditions_are_refused():
    with pytest.raises(MnistlabError, match="unknown photo condition lines=wavy"):
        make_photos(1, lines="wavy")


def test_photos_are_the_same_for_the_same_seed():
    a, b = make_photos(2, seed=7, size=SIZE), make_photos(2, seed=7, size=SIZE)
    assert all(np.array_equal(x.image, y.image) and x.boxes == y.boxes for x, y in zip(a, b))


def test_blank_pages_have_no_digit_even_with_lines_a_shadow_and_the_table_at_the_edge():
    # The table's strip along the photo's edge, a shadow's edge where it meets the border and the stub of
    # a line the border cuts are all the ink an empty page has; none of them is a digit.
    pages = make_blank_pages(12, seed=5, size=SIZE, edge="table") + make_blank_pages(12, seed=5, size=SIZE)
    assert {p.conditions["lines"] for p in pages} == {"plain", "ruled", "squared"}
    assert all(p.labels == () and p.image.shape == (SIZE[1], SIZE[0], 3) for p in pages)
    assert [p for p in pages if digit_pieces(find_ink(to_grey(p.image)))] == []


def test_blank_pages_are_not_the_photos_pages():
    page, photo = make_blank_pages(1, seed=7, size=SIZE)[0], make_photos(1, seed=7, size=SIZE)[0]
    assert page.conditions != photo.conditions or not np.array_equal(page.image, photo.image)
    assert np.array_equal(page.image, make_blank_pages(1, seed=7, size=SIZE)[0].image)
