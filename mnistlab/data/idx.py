"""The IDX format of LeCun's MNIST files: read and validate them, write them atomically.

An IDX file is two zero bytes, a type byte (0x08 = uint8, the only type MNIST uses), a byte with the
number of dimensions, one big-endian int32 per dimension, then the raw values in C order. The files
are usually gzipped; we recognise gzip by its magic bytes, not by the file name.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from mnistlab.errors import DataError

Kind = Literal["images", "labels"]

# The first four bytes read as a big-endian int32: 0x0000 | type 0x08 | ndim.
MAGIC: dict[Kind, int] = {"images": 0x00000803, "labels": 0x00000801}
_NDIM: dict[Kind, int] = {"images": 3, "labels": 1}
_GZIP_MAGIC = b"\x1f\x8b"
_FIX = "delete it to re-download, or replace it with a good copy"

IMAGE_SIZE = (28, 28)  # what every mnistlab model expects
NUM_CLASSES = 10


def _kind_of(magic: int, path: Path) -> Kind:
    """Which kind of MNIST file a magic number announces; DataError for anything else."""
    for kind, expected in MAGIC.items():
        if magic == expected:
            return kind
    raise DataError(
        f"{path}: magic number {magic} (0x{magic:08x}) is neither an IDX uint8 image file (2051) "
        f"nor a label file (2049); {_FIX}"
    )


def _parse_header(data: bytes, path: Path, kind: Kind | None) -> tuple[tuple[int, ...], int]:
    """Validate the header at the start of `data`; return the dimensions and the header length."""
    if len(data) < 4:
        raise DataError(f"{path}: only {len(data)} bytes, too short for an IDX header; {_FIX}")
    magic = int.from_bytes(data[:4], "big")
    if kind is not None and magic != MAGIC[kind]:
        raise DataError(
            f"{path}: wrong magic number {magic} "
            f"(expected {MAGIC[kind]} for {kind}: uint8, ndim {_NDIM[kind]}; "
            f"got type 0x{data[2]:02x}, ndim {data[3]}); "
            f"the file is not an IDX {kind[:-1]} file — {_FIX}"
        )
    kind = _kind_of(magic, path)
    header_len = 4 + 4 * _NDIM[kind]
    if len(data) < header_len:
        raise DataError(
            f"{path}: truncated header ({len(data)} of {header_len} bytes for an IDX {kind[:-1]} file); "
            + _FIX
        )
    dims = tuple(int(d) for d in np.frombuffer(data, ">i4", count=_NDIM[kind], offset=4))
    if min(dims) < 0:
        raise DataError(f"{path}: negative dimension in the header {dims}; {_FIX}")
    return dims, header_len


def _read_bytes(path: Path, limit: int = -1) -> bytes:
    """The file's bytes (at most `limit` when >= 0), gunzipped when it starts with the gzip magic."""
    try:
        with open(path, "rb") as f:
            compressed = f.read(2) == _GZIP_MAGIC
        with (gzip.open(path, "rb") if compressed else open(path, "rb")) as f:
            return f.read(limit)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; check the path or download the dataset") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise DataError(f"{path}: the gzip data is corrupt ({e}); {_FIX}") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read the file ({e.strerror or e}); check its permissions") from None


def idx_shape(path: str | Path) -> tuple[int, ...]:
    """The dimensions an IDX file's header declares, reading only the header (cheap for big files)."""
    path = Path(path)
    return _parse_header(_read_bytes(path, limit=16), path, None)[0]


def read_idx(path: str | Path, kind: Kind | None = None) -> np.ndarray:
    """Read a whole IDX file (gzipped or raw) as a uint8 array; DataError when it is malformed.

    With `kind`, the file must be of that kind (images: 3 dimensions, labels: 1).
    """
    path = Path(path)
    data = _read_bytes(path)
    dims, offset = _parse_header(data, path, kind)
    expected = math.prod(dims)  # Python ints: a forged header's product would overflow numpy's int64
    found = len(data) - offset
    if found < expected:
        raise DataError(
            f"{path}: truncated: the header declares {'x'.join(map(str, dims))} = {expected} bytes of data, "
            f"the file has {found}; {_FIX}"
        )
    if found > expected:
        raise DataError(
            f"{path}: {found - expected} bytes of trailing data after the {expected} the header declares; "
            + _FIX
        )
    # Copy so the array is writable (and torch.from_numpy does not warn); it is a single memcpy.
    return np.frombuffer(data, np.uint8, count=expected, offset=offset).reshape(dims).copy()


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write a uint8 array of 1 or 3 dimensions as IDX, gzipped when `path` ends in .gz.

    The file is written beside the target and renamed over it, so readers never see half a file.
    """
    path = Path(path)
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim not in (1, 3):
        raise ValueError(f"write_idx needs a uint8 array of ndim 1 or 3, got {array.dtype} {array.shape}")
    payload = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">i4").tobytes() + array.tobytes()
    if path.name.endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)  # mtime=0: same array, same bytes, same MD5
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(payload)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_idx_pair(
    images_path: str | Path, labels_path: str | Path | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Read matching image and label files: uint8 images (N, 28, 28) and int64 labels (N,) in 0..9.

    Without a labels file (`labels_path` None: images for a GAN), the labels are None.
    """
    images = read_idx(images_path, "images")
    if images.shape[1:] != IMAGE_SIZE:
        h, w = images.shape[1:]
        raise DataError(
            f"{images_path}: images are {h}x{w} but mnistlab models need 28x28; resize them to 28x28 first"
        )
    if labels_path is None:
        return torch.from_numpy(images), None
    labels = read_idx(labels_path, "labels")
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels; "
            "the files do not belong together — use the matching pair"
        )
    if labels.size and labels.max() >= NUM_CLASSES:
        bad = int(np.argmax(labels >= NUM_CLASSES))
        raise DataError(
            f"{labels_path}: label {labels[bad]} at index {bad} is outside 0..9; "
            "mnistlab needs digit labels 0..9 — fix or replace the file"
        )
    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))
