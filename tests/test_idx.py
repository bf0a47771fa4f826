"""The IDX reader and writer: round trips, and a clear DataError (file untouched) for every corruption."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mnistlab.data.idx import idx_shape, read_idx, read_idx_pair, write_idx
from mnistlab.errors import DataError

IMAGES = np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
LABELS = np.array([0, 1, 2, 9, 5], dtype=np.uint8)


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """Raw IDX bytes of a uint8 array, optionally with a forged magic number."""
    magic = 0x0800 | array.ndim if magic is None else magic
    return magic.to_bytes(4, "big") + np.asarray(array.shape, ">i4").tobytes() + array.tobytes()


def assert_rejected(path: Path, match: str, read=read_idx, *args) -> DataError:
    """`read` raises a one-line DataError matching `match`, and leaves the file as it was."""
    before = path.read_bytes()
    with pytest.raises(DataError, match=match) as info:
        read(path, *args)
    assert "\n" not in str(info.value)
    assert path.read_bytes() == before
    return info.value


@pytest.mark.parametrize("name", ["images.idx", "images.idx.gz"])
def test_round_trip(tmp_path: Path, name: str) -> None:
    for array in (IMAGES, LABELS):
        write_idx(tmp_path / name, array)
        back = read_idx(tmp_path / name)
        assert back.dtype == np.uint8 and back.flags.writeable
        np.testing.assert_array_equal(back, array)
    assert (tmp_path / name).read_bytes()[:2] == (b"\x1f\x8b" if name.endswith(".gz") else b"\x00\x00")
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left behind


def test_compression_is_detected_by_content_not_name(tmp_path: Path) -> None:
    (tmp_path / "gzipped-but-named-raw").write_bytes(gzip.compress(idx_bytes(IMAGES)))
    (tmp_path / "raw-but-named.gz").write_bytes(idx_bytes(IMAGES))
    np.testing.assert_array_equal(read_idx(tmp_path / "gzipped-but-named-raw"), IMAGES)
    np.testing.assert_array_equal(read_idx(tmp_path / "raw-but-named.gz"), IMAGES)


def test_gzip_output_is_deterministic(tmp_path: Path) -> None:
    write_idx(tmp_path / "a.gz", IMAGES)
    write_idx(tmp_path / "b.gz", IMAGES)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


def test_write_rejects_non_uint8_or_2d(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_idx(tmp_path / "x", IMAGES.astype(np.float32))
    with pytest.raises(ValueError):
        write_idx(tmp_path / "x", IMAGES[0])
    assert not list(tmp_path.iterdir())


def test_idx_shape_reads_the_header(tmp_path: Path) -> None:
    write_idx(tmp_path / "i.gz", IMAGES)
    assert idx_shape(tmp_path / "i.gz") == (5, 28, 28)


CORRUPT = {
    "labels-as-images": (idx_bytes(LABELS), "images", r"wrong magic number 2049 \(expected 2051 for images"),
    "images-as-labels": (idx_bytes(IMAGES), "labels", r"wrong magic number 2051 \(expected 2049 for labels"),
    "wrong-ndim": (idx_bytes(IMAGES[0], magic=0x0802), "images", r"number 2050 .*got type 0x08, ndim 2"),
    "wrong-ndim-any-kind": (idx_bytes(IMAGES[0], magic=0x0802), None, "neither an IDX uint8 image file"),
    "float-type": (idx_bytes(IMAGES, magic=0x0D03), None, r"magic number 3331 \(0x00000d03\)"),
    "not-idx": (b"hello world, not an idx file", None, "neither an IDX"),
    "too-short": (b"\x00\x00", None, "too short for an IDX header"),
    "truncated-header": (idx_bytes(IMAGES)[:10], None, r"truncated header \(10 of 16 bytes"),
    "truncated-data": (idx_bytes(IMAGES)[:-7], None, "5x28x28 = 3920 bytes of data, the file has 3913"),
    "trailing-data": (idx_bytes(IMAGES) + b"extra", None, "5 bytes of trailing data"),
    "huge-dims": (b"\x00\x00\x08\x03" + np.array([2**31 - 1] * 3, ">i4").tobytes() + b"x", None,
                  r"2147483647x2147483647x2147483647 = 9903520300447984150353281023 bytes of data, the file has 1"),
    "gzip-truncated": (gzip.compress(idx_bytes(IMAGES))[:-30], None, "gzip data is corrupt"),
    "gzip-garbage": (b"\x1f\x8b" + bytes(range(200)), None, "gzip data is corrupt"),
}


@pytest.mark.parametrize("case", CORRUPT)
def test_corrupt_files_are_rejected_and_left_alone(tmp_path: Path, case: str) -> None:
    data, kind, match = CORRUPT[case]
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(data)
    error = assert_rejected(path, match, read_idx, kind)
    assert str(path) in str(error)
    assert "delete it to re-download" in str(error)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        read_idx(tmp_path / "nope.gz")


def test_pair(tmp_path: Path) -> None:
    write_idx(tmp_path / "i.gz", IMAGES)
    write_idx(tmp_path / "l", LABELS)
    images, labels = read_idx_pair(tmp_path / "i.gz", tmp_path / "l")
    assert images.dtype == torch.uint8 and images.shape == (5, 28, 28)
    assert labels.dtype == torch.int64 and labels.tolist() == LABELS.tolist()


def test_images_without_a_labels_file_have_labels_none(tmp_path: Path) -> None:
    write_idx(tmp_path / "i", IMAGES)
    images, labels = read_idx_pair(tmp_path / "i", None)  # a GAN's data
    assert labels is None and images.shape == (5, 28, 28) and np.array_equal(images.numpy(), IMAGES)
    write_idx(tmp_path / "big", np.zeros((5, 32, 32), np.uint8))
    with pytest.raises(DataError, match="are 32x32 but mnistlab models need 28x28"):
        read_idx_pair(tmp_path / "big", None)


def test_pair_count_mismatch(tmp_path: Path) -> None:
    write_idx(tmp_path / "i", IMAGES)
    write_idx(tmp_path / "l", LABELS[:3])
    assert_rejected(tmp_path / "i", "5 images but .* has 3 labels", read_idx_pair, tmp_path / "l")


def test_pair_label_out_of_range(tmp_path: Path) -> None:
    write_idx(tmp_path / "i", IMAGES)
    write_idx(tmp_path / "l", np.array([0, 1, 10, 3, 4], dtype=np.uint8))
    assert_rejected(tmp_path / "i", r"label 10 at index 2 is outside 0\.\.9", read_idx_pair, tmp_path / "l")


def test_pair_must_be_28x28(tmp_path: Path) -> None:
    write_idx(tmp_path / "i", np.zeros((5, 32, 32), np.uint8))
    write_idx(tmp_path / "l", LABELS)
    assert_rejected(tmp_path / "i", "are 32x32 but mnistlab models need 28x28", read_idx_pair, tmp_path / "l")


def test_pair_checks_which_file_is_which(tmp_path: Path) -> None:
    write_idx(tmp_path / "i", IMAGES)
    write_idx(tmp_path / "l", LABELS)
    with pytest.raises(DataError, match="expected 2051 for images"):
        read_idx_pair(tmp_path / "l", tmp_path / "i")


# ----------------------------------------------------------------------------------------------
# Random damage: a DataError, or an array that is what its header declares


def raw_and_gzipped() -> dict[str, bytes]:
    return {f"{name}{suffix}": data for name, array in (("images", IMAGES[:2]), ("labels", LABELS))
            for suffix, data in (("", idx_bytes(array)), (".gz", gzip.compress(idx_bytes(array), mtime=0)))}


PRISTINE = raw_and_gzipped()
DAMAGE = settings(max_examples=100, deadline=None)


def assert_clean_outcome(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    for kind in (None, "images", "labels"):
        try:
            array = read_idx(path, kind)
        except DataError as e:
            assert "\n" not in str(e) and str(path) in str(e)
            continue
        assert array.dtype == np.uint8 and array.ndim == (3 if kind == "images" else 1 if kind else array.ndim)
        assert array.ndim in (1, 3) and array.shape == idx_shape(path)


@pytest.fixture(scope="module")
def damaged_path(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("idx") / "train-images-idx3-ubyte.gz"


@DAMAGE
@given(name=st.sampled_from(sorted(PRISTINE)), data=st.data())
def test_truncated_files_raw_and_gzipped(damaged_path: Path, name: str, data) -> None:
    length = data.draw(st.integers(0, len(PRISTINE[name]) - 1), label="length")
    assert_clean_outcome(damaged_path, PRISTINE[name][:length])


@DAMAGE
@given(name=st.sampled_from(sorted(PRISTINE)), flips=st.lists(st.tuples(st.integers(0, 2**31), st.integers(0, 7)),
                                                               min_size=1, max_size=4),
       in_header=st.booleans())
def test_bit_flips_raw_and_gzipped(damaged_path: Path, name: str, flips, in_header: bool) -> None:
    data = bytearray(PRISTINE[name])
    span = min(16, len(data)) if in_header else len(data)  # the IDX header (raw), the gzip header; or anywhere
    for position, bit in flips:
        data[position % span] ^= 1 << bit
    assert_clean_outcome(damaged_path, bytes(data))
