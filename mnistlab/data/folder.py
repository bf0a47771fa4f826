"""A folder of a person's own images as data: `--dataset images:DIR`.

- Which files: every .png, .jpg and .jpeg (any case) in DIR and its subfolders, in sorted path order;
  hidden files and folders (a leading ".") and other files are left out. Any size, any image mode.
- Labels, as torchvision's ImageFolder: when DIR holds subfolders named `0` to `9`, each image's label is
  the name of the top-level folder it is in, and images anywhere else (at the top level, in a folder named
  `10` or `seven`) are skipped and named. Without such subfolders the images have no labels (a GAN's data).
- Framing (`run.framing`): "digit" frames each image as `mnistlab predict` does (`frame.to_mnist`:
  the ink found, fitted in 20x20, centred by mass in 28x28, light ink on black); "resize", for images that
  are not digits, takes the image's grey levels as they are (255 = white), its centred square, 28x28.
- Unreadable files (not an image, truncated, or with framing "digit" no ink at all) are skipped, each named
  in the dataset's notice; when none is readable, or more than half are not, the folder is refused.
- Test split: a fixed tenth (rounded up) of the readable images, chosen by a permutation seeded with 0 over
  their sorted paths (per class, when labelled: stratified), held out: the quality metrics' real reference,
  or a classifier's test digits. With a test folder of its own (`run.test_dir`), nothing is held out of
  the training folder and all of the test folder is the test split (`held_out` "none" and "all"). The
  training images come in a seeded random order, so the validation split (their first twelfth) holds the
  classes in about their shares.
- Framing a digit takes 2 ms from a 28x28 image, 27 ms from a 1-megapixel photo and 200 ms from a
  12-megapixel one (one core, measured), so the framed arrays are cached under the data root
  (images-cache/), keyed by every file's path, size and modification time, the framing and the framing
  code itself.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from mnistlab.data.download import md5sum
from mnistlab.errors import DataError, MnistlabError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
TEST_SHARE = 0.1  # of the readable images, held out as the quality metrics' real reference
SPLIT_SEED = 0
NAMED = 10  # unreadable files named in the notice before "and N more"
HeldOut = Literal["tenth", "none", "all"]  # which images are the test split: a seeded tenth, none, or all
CLASS_FOLDERS = tuple(str(d) for d in range(10))  # subfolders whose names are labels


@dataclass
class Folder:
    """A folder's images framed as MNIST's: uint8 (N, 28, 28), 0 = background, and what was read."""

    name: str  # "images:/abs/dir"
    train: np.ndarray
    test: np.ndarray
    digest: str  # MD5 over every image file's path and MD5: the same files give the same digest
    notice: str | None  # the files skipped and why, for the caller to show
    train_labels: np.ndarray | None = None  # int64 (N,), from the class folders; None: no labels
    test_labels: np.ndarray | None = None
    test_files: list[str] | None = None  # the test images' paths relative to the folder, in order


def read_folder(text: str, framing: str, cache_dir: Path | None = None, held_out: HeldOut = "tenth") -> Folder:
    """Read and frame the images under the directory `text` (see the module docstring); DataError, one
    line, for a folder that is missing, empty of images or mostly unreadable. `cache_dir`: where the framed
    arrays are kept between runs (None: not cached); `held_out`: which of them are the test split."""
    directory = Path(text).expanduser().resolve()
    where = f"images:{text}"
    if not directory.is_dir():
        raise DataError(f"{where}: {directory} is not a directory; give images:DIR, a folder of PNG or JPEG images")
    files, others = _image_files(directory)
    labels, skipped = _class_labels(directory, files)
    if labels is not None:
        files = [f for f, label in zip(files, labels) if label is not None]
        labels = [label for label in labels if label is not None]
    if not files:
        seen = f" (only {len(others)} other files, such as {others[0].name})" if others else ""
        where_images = "in its class folders 0-9" if skipped else f"in {directory} or its subfolders"
        raise DataError(f"{where}: no PNG or JPEG images {where_images}{seen}; "
                        f"give a folder of {', '.join(IMAGE_SUFFIXES)} files")
    stats = [(p.relative_to(directory).as_posix(), p.stat()) for p in files]
    listing = [(name, stat.st_size, stat.st_mtime_ns) for name, stat in stats]
    described = [framing, _framing_code(framing), listing, skipped, held_out, "train shuffled"]
    key = hashlib.sha256(json.dumps(described).encode()).hexdigest()[:32]
    cached = _cached(cache_dir, key)
    if cached is not None:
        return Folder(f"images:{directory}", **cached)

    frames, kept, unreadable = [], [], []
    for index, (path, (relative, _)) in enumerate(zip(files, stats)):
        try:
            frames.append(_frame(path, framing))
            kept.append(index)
        except MnistlabError as e:
            unreadable.append(f"{relative} ({_reason(e, path)})")
    if len(unreadable) * 2 > len(files):
        readable = f"only {len(frames)} of {len(files)}" if frames else f"none of the {len(files)}"
        raise DataError(f"{where}: {readable} images could be read: {_listed(unreadable)}; "
                        "give a folder of readable PNG or JPEG images")
    notices = [f"skipped {len(skipped)} images outside the class folders 0-9: {_listed(skipped)}"] if skipped else []
    if unreadable:
        notices.append(f"skipped {len(unreadable)} of {len(files)} images that could not be read: "
                       f"{_listed(unreadable)}")
    notice = f"{where}: " + "; ".join(notices) if notices else None
    images = np.stack(frames)
    names = [stats[i][0] for i in kept]
    kept_labels = None if labels is None else np.array([labels[i] for i in kept], dtype=np.int64)
    if held_out == "tenth":
        is_test = _test_split(len(images), kept_labels)
    else:
        is_test = np.full(len(images), held_out == "all")
    digest = hashlib.md5("".join(f"{n}\t{md5sum(p)}\n" for p, (n, _) in zip(files, stats)).encode()).hexdigest()
    # The training images in a seeded random order: the validation split is their first twelfth, which in
    # path order would be mostly the first class.
    train = np.flatnonzero(~is_test)[np.random.RandomState(SPLIT_SEED).permutation(int((~is_test).sum()))]
    folder = Folder(f"images:{directory}", images[train], images[is_test], digest, notice,
                    None if kept_labels is None else kept_labels[train],
                    None if kept_labels is None else kept_labels[is_test],
                    [n for n, test in zip(names, is_test) if test])
    _store(cache_dir, key, folder)
    return folder


def _class_labels(directory: Path, files: list[Path]) -> tuple[list[int | None] | None, list[str]]:
    """Each file's label from its class folder, None for a file outside them, and those files' names; or
    (None, []) when the folder has no class folders (unlabelled images)."""
    classes = {p.name for p in directory.iterdir() if p.is_dir() and p.name in CLASS_FOLDERS}
    if not classes:
        return None, []
    labels: list[int | None] = []
    for path in files:
        top = path.relative_to(directory).parts
        labels.append(int(top[0]) if len(top) > 1 and top[0] in classes else None)
    skipped = [path.relative_to(directory).as_posix() for path, label in zip(files, labels) if label is None]
    return labels, skipped


def _test_split(n: int, labels: np.ndarray | None) -> np.ndarray:
    """Which images are test images: a seeded tenth (rounded up), of each class when labelled."""
    is_test = np.zeros(n, dtype=bool)
    groups = [np.arange(n)] if labels is None else [np.flatnonzero(labels == c) for c in np.unique(labels)]
    for group in groups:
        order = np.random.RandomState(SPLIT_SEED).permutation(len(group))
        is_test[group[order[: math.ceil(len(group) * TEST_SHARE)]]] = True
    return is_test


def check_classes(folder: Folder) -> None:
    """A classifier's refusal of a folder it cannot learn from: no class folders, or a single class."""
    if folder.train_labels is None:
        raise DataError(f"{folder.name} has no labels: a classifier needs its images sorted into subfolders "
                        "named 0 to 9 (DIR/0/*.png, DIR/1/*.png, ...); only a GAN trains on images without labels")
    present = np.unique(np.concatenate([folder.train_labels, folder.test_labels]))
    if len(present) < 2:
        raise DataError(f"{folder.name}: only class {present[0]} has images; a classifier needs at least two of "
                        "the class folders 0-9 with images in them")


def _image_files(directory: Path) -> tuple[list[Path], list[Path]]:
    """(the image files, the other files) under `directory`, hidden ones left out, in sorted order."""
    images, others = [], []
    for path in sorted(directory.rglob("*")):
        if any(part.startswith(".") for part in path.relative_to(directory).parts) or not path.is_file():
            continue
        (images if path.suffix.lower() in IMAGE_SUFFIXES else others).append(path)
    return images, others


def _frame(path: Path, framing: str) -> np.ndarray:
    """One image file → uint8 (28, 28); MnistlabError when it cannot be read (or, as a digit, has no ink)."""
    from PIL import Image

    from mnistlab.photo.frame import load_image, to_grey, to_mnist

    image = load_image(path)
    if framing == "digit":
        framed = to_mnist(image)
        if not framed.any():
            raise MnistlabError("no ink found: a blank image")
    else:
        grey = to_grey(image)
        h, w = grey.shape
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        square = Image.fromarray(np.ascontiguousarray(grey[top : top + side, left : left + side], np.float32))
        framed = np.asarray(square.resize((28, 28), Image.Resampling.LANCZOS))  # mode "F": no 8-bit rounding
    return np.round(np.clip(framed, 0, 1) * 255).astype(np.uint8)


def _reason(error: MnistlabError, path: Path) -> str:
    """frame.load_image's message without its "cannot read image PATH: " and its advice."""
    text = str(error).removeprefix(f"cannot read image {path}: ")
    return text.split(";")[0]


def _listed(entries: list[str]) -> str:
    more = f" and {len(entries) - NAMED} more" if len(entries) > NAMED else ""
    return ", ".join(entries[:NAMED]) + more


def _framing_code(framing: str) -> str:
    """The MD5 of the code that frames a digit: when it changes, cached frames are stale."""
    if framing != "digit":
        return ""
    from mnistlab.photo import frame

    code = Path(frame.__file__)  # framing, and the page-to-ink stage beside it that it runs first
    return hashlib.md5(code.read_bytes() + code.with_name("ink.py").read_bytes()).hexdigest()


def _cached(cache_dir: Path | None, key: str) -> dict | None:
    path = cache_dir / f"{key}.npz" if cache_dir else None
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path) as data:  # no pickles: arrays and one JSON string
            meta = json.loads(str(data["meta"]))
            labelled = "train_labels" in data.files
            return {"train": data["train"], "test": data["test"], "digest": meta["digest"], "notice": meta["notice"],
                    "train_labels": data["train_labels"] if labelled else None,
                    "test_labels": data["test_labels"] if labelled else None, "test_files": meta.get("test_files")}
    except (OSError, ValueError, KeyError):  # a damaged cache file is framed again
        return None


def _store(cache_dir: Path | None, key: str, folder: Folder) -> None:
    from mnistlab.files import atomic_write_bytes

    if cache_dir is None:
        return
    buf = io.BytesIO()
    meta = json.dumps({"digest": folder.digest, "notice": folder.notice, "test_files": folder.test_files})
    labels = {} if folder.train_labels is None else {"train_labels": folder.train_labels,
                                                     "test_labels": folder.test_labels}
    np.savez(buf, train=folder.train, test=folder.test, meta=np.array(meta), **labels)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(cache_dir / f"{key}.npz", buf.getvalue())
    except (OSError, MnistlabError):  # a cache that cannot be written only costs the framing next time
        pass
