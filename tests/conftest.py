"""Shared fixtures."""

from __future__ import annotations

import functools
import hashlib
import os
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

# One compute thread per test process and per process the tests start (the CLI, the fault-injection script):
# the models are tiny, and on a busy 2-core machine two OpenMP threads per process spin against each other
# (the GAN fixture took 20 s instead of 7). Set here, before any test module imports torch.
os.environ.setdefault("OMP_NUM_THREADS", "1")

def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files with the most slow tests run first, each file's tests still together and in order.

    `pytest -n 2` hands tests out in collection order; when the sweep, fault and browser files came last by
    name, one process finished their long tail alone while the other sat idle.
    """
    def file_of(item: pytest.Item) -> str:
        return item.nodeid.split("::")[0]

    slow = Counter(file_of(item) for item in items
                   if item.get_closest_marker("slow") or item.get_closest_marker("browser"))
    # Stable: ties keep their order. Then the docstring examples, one process's block (../conftest.py), so that
    # they do not come last, with the other process idle.
    items.sort(key=lambda item: (-slow[file_of(item)], not isinstance(item, pytest.DoctestItem)))


# ----------------------------------------------------------------------------------------------
# Data: tiny IDX files and a local HTTP mirror

IDX_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@pytest.fixture
def make_idx_files() -> Callable[..., dict[str, str]]:
    """A factory writing tiny MNIST-named IDX files into a directory; returns {file name: md5}.

    Images are random uint8 (seeded), labels cycle 0..9; `parts` picks "train" and/or "test".
    """
    from mnistlab.data.idx import write_idx

    def make(directory: Path, n_train: int = 24, n_test: int = 12, gz: bool = True, parts=("train", "test")):
        directory.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        md5s = {}
        for part in parts:
            n = n_train if part == "train" else n_test
            images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
            labels = (np.arange(n) % 10).astype(np.uint8)
            for stem, array in zip(IDX_STEMS[part], (images, labels)):
                name = stem + (".gz" if gz else "")
                write_idx(directory / name, array)
                md5s[name] = hashlib.md5((directory / name).read_bytes()).hexdigest()
        return md5s

    return make


class _MirrorHandler(SimpleHTTPRequestHandler):
    """Serves files; under /hangup/ it promises more bytes than it sends, then closes the connection."""

    def do_GET(self) -> None:
        if not self.path.startswith("/hangup/"):
            return super().do_GET()
        body = Path(self.directory, self.path.removeprefix("/hangup/")).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body) + 1000))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args) -> None:  # keep test output clean
        pass


@pytest.fixture
def http_mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """(directory, base URL) of an HTTP server on 127.0.0.1 serving that (empty, writable) directory."""
    directory = tmp_path_factory.mktemp("mirror")  # not in tmp_path, which tests use as a destination
    handler = functools.partial(_MirrorHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    # A short poll interval so that shutdown() returns quickly.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield directory, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture
def dead_mirror() -> str:
    """A base URL on a 127.0.0.1 port nothing listens on: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


# ----------------------------------------------------------------------------------------------
# Tiny real data and tiny trained runs, shared by the model, CLI, API and app tests


@pytest.fixture(scope="session")
def sample_data():
    """The real mnist-sample (4,000 train / 1,000 test digits), loaded once."""
    from mnistlab.data.datasets import load_dataset

    return load_dataset("mnist-sample", val_size=200)


@pytest.fixture(scope="session")
def first_digits(sample_data):
    """A function: the first `train`, `val` and `test` digits of each mnist-sample split, as a Dataset."""
    from dataclasses import replace

    from mnistlab.data.datasets import Split

    def first(train: int, val: int, test: int):
        head = lambda split, n: Split(split.images[:n].clone(), split.labels[:n].clone())  # noqa: E731
        return replace(sample_data, train=head(sample_data.train, train), val=head(sample_data.val, val),
                       test=head(sample_data.test, test))

    return first


@pytest.fixture(scope="session")
def tiny_data(first_digits):
    """1,000 real training digits, 200 validation, 500 test: enough for the loss to fall in seconds."""
    return first_digits(1000, 200, 500)


@pytest.fixture(scope="session")
def cnn_run(tiny_data, tmp_path_factory):
    """A seed CNN trained 3 epochs on tiny real data: a real run directory with a real checkpoint."""
    from mnistlab.train.classifier import train_classifier

    out = tmp_path_factory.mktemp("runs") / "cnn"
    return train_classifier("seed", tiny_data, epochs=3, lr=3e-3, out=str(out), progress=False)


@pytest.fixture(scope="session")
def gan_run(tiny_data, tmp_path_factory):
    """A default DCGAN trained 2 short epochs on tiny real data (quality metrics on 200 samples)."""
    from mnistlab.train.gan import train_gan

    out = tmp_path_factory.mktemp("runs") / "gan"
    return train_gan("default", tiny_data, epochs=2, batch_size=50, eval_samples=200, out=str(out), progress=False)
