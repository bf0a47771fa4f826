"""The docstring examples run as doctests (`make test`), inside a folder that holds what they name:
`runs/cnn-seed` and `runs/gan-default` (small real runs), `seven.png` (a real test 7), `number.jpg`
(a photo-like image of a written number) and `my-hand/` (class folders 1 and 7, three real digits each)."""

from __future__ import annotations

import os
import tempfile

import pytest

# No test reaches the network or the user's datasets: the HTTP mirrors and the package index are a refused
# port on 127.0.0.1 (tests that download serve their own), and the dataset cache is this run's own.
os.environ["MNISTLAB_MIRRORS"] = "http://127.0.0.1:9/"
os.environ["PIP_INDEX_URL"] = "http://127.0.0.1:9/simple/"
os.environ["PIP_CONFIG_FILE"] = os.devnull
os.environ.pop("PIP_FIND_LINKS", None)
os.environ["MNISTLAB_DATA"] = tempfile.mkdtemp(prefix="mnistlab-test-data-")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The docstring examples run in one test process (`--dist loadgroup`), so their folder is made once; they
    train real runs for seconds, so they are slow (`make test` runs them, `make test-fast` does not)."""
    for item in items:
        if isinstance(item, pytest.DoctestItem):
            item.add_marker(pytest.mark.xdist_group("doctests"))
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def _doctest_folder(tmp_path_factory):
    from PIL import Image

    from mnistlab import load_dataset, train_classifier, train_gan
    from mnistlab.photo.synth import make_photos

    root = tmp_path_factory.mktemp("doctest")
    data = load_dataset("mnist-sample")
    train_classifier("seed", data, epochs=2, out=str(root / "runs" / "cnn-seed"), progress=False)
    train_gan("default", data, dry_run=True, eval_samples=200, out=str(root / "runs" / "gan-default"), progress=False)
    seven = data.test.images[(data.test.labels == 7).nonzero()[0, 0]].numpy()
    Image.fromarray(255 - seven).save(root / "seven.png")  # dark ink on white, as people write
    Image.fromarray(make_photos(1, seed=0, lengths=(4,))[0].image).save(root / "number.jpg")
    for digit in (1, 7):
        (root / "my-hand" / str(digit)).mkdir(parents=True)
        for k, index in enumerate((data.test.labels == digit).nonzero()[:3, 0].tolist()):
            Image.fromarray(255 - data.test.images[index].numpy()).save(root / "my-hand" / str(digit) / f"{k}.png")
    return root


@pytest.fixture(autouse=True)
def _doctests_run_in_that_folder(request, monkeypatch):
    if isinstance(request.node, pytest.DoctestItem):
        monkeypatch.chdir(request.getfixturevalue("_doctest_folder"))
