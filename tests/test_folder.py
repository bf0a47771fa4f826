"""A person's own images: `images:DIR` folders (class folders for a classifier), label-free `idx:DIR`, and every
bad folder as one line."""

import math
import os

import numpy as np
import pytest
from PIL import Image
from test_cli import assert_clean_error, run_cli

from mnistlab.config import preset, with_overrides
from mnistlab.data.datasets import load_dataset
from mnistlab.data.idx import write_idx
from mnistlab.errors import DataError, MnistlabError
from mnistlab.photo.frame import to_mnist


@pytest.fixture
def photo_folder(sample_data, tmp_path):
    """Twenty real test digits as people keep them: dark ink on white, PNG and JPEG, of different sizes and
    shapes, some in a subfolder; plus a corrupt PNG and a blank page, which are skipped, and a text file and
    a hidden file, which are not looked at."""
    folder = tmp_path / "mine"
    (folder / "more").mkdir(parents=True)
    for i in range(20):
        digit = Image.fromarray(255 - sample_data.test.images[i].numpy())
        image = digit.resize((28 * (1 + i % 4), 28 * (1 + i % 3)))  # 28x28 up to 112x84, square or not
        if i % 2:
            image.convert("RGB").save(folder / f"{i:02d}.jpg", quality=90)
        else:
            image.save(folder / "more" / f"{i:02d}.PNG")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)  # a PNG signature, then nothing
    Image.new("L", (40, 40), 255).save(folder / "blank.png")  # no digit on it
    (folder / "notes.txt").write_text("not an image")
    (folder / ".thumbnail.png").write_bytes(b"hidden, never read")
    return folder


def test_a_folder_is_framed_as_predict_frames_digits_with_a_tenth_held_out(photo_folder, tmp_path):
    data = load_dataset(f"images:{photo_folder}", tmp_path / "cache", splits=("train", "test"), val_size=0,
                        need_labels=False)
    assert data.name == f"images:{photo_folder.resolve()}" and data.classes == []
    assert (len(data.train), len(data.test)) == (20 - math.ceil(20 * 0.1), math.ceil(20 * 0.1))
    assert data.train.labels is None and data.test.labels is None
    assert "skipped 2 of 22 images" in data.notice and "\n" not in data.notice
    assert "broken.png (not an image format" in data.notice and "blank.png (no ink found" in data.notice
    assert data.provenance["framing"] == "digit" and data.provenance["source"] == "folder"
    # every image framed exactly as `predict` frames it (frame.to_mnist), as 0..255
    files = sorted(p for p in photo_folder.rglob("*") if p.suffix.lower() in (".png", ".jpg") and p.name[0] != ".")
    readable = [p for p in files if p.name not in ("broken.png", "blank.png")]
    expected = {np.round(to_mnist(p) * 255).astype(np.uint8).tobytes() for p in readable}
    got = {image.numpy().tobytes() for image in [*data.train.images, *data.test.images]}
    assert got == expected
    again = load_dataset(f"images:{photo_folder}", tmp_path / "elsewhere", splits=("train", "test"), val_size=0,
                         need_labels=False)
    assert np.array_equal(again.test.images, data.test.images)  # the held-out tenth is fixed, not random


def test_resize_framing_keeps_the_grey_levels_of_the_centred_square(tmp_path):
    folder = tmp_path / "wide"
    folder.mkdir()
    for i in range(4):
        wide = np.zeros((30, 90), np.uint8)
        wide[:, 30:60] = 40 * (i + 1)  # the centred square is one grey, the sides black
        Image.fromarray(wide).save(folder / f"{i}.png")
    data = load_dataset(f"images:{folder}", tmp_path / "cache", splits=("train", "test"), val_size=0,
                        framing="resize", need_labels=False)
    levels = sorted(int(image.float().mean().round()) for image in [*data.train.images, *data.test.images])
    assert levels == [40, 80, 120, 160]
    assert all(image.min() == image.max() for image in data.train.images)  # nothing of the black sides


def test_framed_folders_are_cached_by_file_and_framing(photo_folder, tmp_path):
    def load(framing):
        return load_dataset(f"images:{photo_folder}", tmp_path, splits=("train", "test"), val_size=0,
                            framing=framing, need_labels=False)

    first = load("digit")
    cached = sorted((tmp_path / "images-cache").iterdir())
    assert len(cached) == 1
    second = load("digit")
    assert np.array_equal(second.train.images, first.train.images) and second.notice == first.notice
    assert second.provenance["files"] == first.provenance["files"]
    os.utime(photo_folder / "03.jpg", (1e9, 1e9))  # a file changed: framed again, into a new entry
    load("digit")
    load("resize")
    assert len(list((tmp_path / "images-cache").iterdir())) == 3


@pytest.mark.slow
def test_a_gan_trains_on_a_folder_from_the_cli_and_a_conditional_one_is_refused(photo_folder, tmp_path):
    common = ["--batch-size", "8", "--dry-run", "--data-root", tmp_path / "cache", "--no-progress"]
    for framing in ("digit", "resize"):
        result = run_cli("train", "gan", "--dataset", f"images:{photo_folder}", "--set", "conditional=false",
                         "--set", f"framing={framing}", "--out", tmp_path / framing, *common)
        assert result.returncode == 0, result.stderr
        assert (tmp_path / framing / "checkpoint.safetensors").is_file()
    assert (tmp_path / "digit" / "best.safetensors").is_file()  # digits framed as MNIST's: the evaluator reads them
    assert_clean_error(run_cli("train", "gan", "--dataset", f"images:{photo_folder}", "--out", tmp_path / "cond",
                               *common), "has no labels", "gan/default is conditional", "--preset unconditional")
    assert_clean_error(run_cli("train", "cnn", "--dataset", f"images:{photo_folder}", "--out", tmp_path / "cnn",
                               "--dry-run"), "has no labels", "subfolders named 0 to 9")
    assert_clean_error(run_cli("train", "gan", "--set", "framing=resize", "--out", tmp_path / "r", *common),
                       "run.framing = 'resize'", "images:DIR")
    assert not any((tmp_path / name).exists() for name in ("cond", "cnn", "r"))


def _write_pngs(folder, count, readable=True):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        if readable:  # a dark upright stroke on white: a 1
            one = np.full((28, 28), 255, np.uint8)
            one[5:23, 11:16] = 0
            Image.fromarray(one).save(folder / f"{i}.png")
        else:
            (folder / f"bad{i}.png").write_bytes(b"garbage")


@pytest.mark.parametrize("case", ["missing", "a file", "empty", "no images", "all corrupt", "mostly corrupt"])
def test_each_bad_folder_is_one_line_and_leaves_no_run(case, tmp_path):
    folder = tmp_path / "folder"
    expected = {"missing": "is not a directory", "a file": "is not a directory", "empty": "no PNG or JPEG images",
                "no images": "only 2 other files", "all corrupt": "none of the 3 images could be read",
                "mostly corrupt": "only 1 of 3 images could be read"}[case]
    if case == "a file":
        folder.write_text("x")
    elif case == "empty":
        (folder / "sub").mkdir(parents=True)
    elif case == "no images":
        folder.mkdir()
        (folder / "a.txt").write_text("x")
        (folder / "b.csv").write_text("x")
    elif case in ("all corrupt", "mostly corrupt"):
        _write_pngs(folder, 3 if case == "all corrupt" else 2, readable=False)
        _write_pngs(folder, 0 if case == "all corrupt" else 1)
    with pytest.raises(DataError, match=expected) as error:
        load_dataset(f"images:{folder}", tmp_path / "cache", need_labels=False)
    assert "\n" not in str(error.value)
    assert_clean_error(run_cli("train", "gan", "--dataset", f"images:{folder}", "--set", "conditional=false",
                               "--dry-run", "--out", tmp_path / "run", "--data-root", tmp_path / "cache"), expected)
    assert not (tmp_path / "run").exists()


def test_half_unreadable_is_still_read_and_each_skipped_file_is_named(tmp_path):
    folder = tmp_path / "half"
    _write_pngs(folder, 2)
    _write_pngs(folder, 2, readable=False)
    data = load_dataset(f"images:{folder}", None, splits=("train", "test"), val_size=0, need_labels=False)
    assert len(data.train) + len(data.test) == 2 and "bad0.png" in data.notice and "bad1.png" in data.notice


def test_a_label_free_idx_directory_trains_an_unconditional_gan_only(sample_data, tmp_path):
    (tmp_path / "idx").mkdir()  # the image files alone, no label files
    write_idx(tmp_path / "idx" / "train-images-idx3-ubyte", sample_data.train.images[:64].numpy())
    write_idx(tmp_path / "idx" / "t10k-images-idx3-ubyte", sample_data.test.images[:32].numpy())
    data = load_dataset(f"idx:{tmp_path / 'idx'}", val_size=0, splits=("train", "test"), need_labels=False)
    assert data.train.labels is None and len(data.train) == 64 and data.classes == []
    with pytest.raises(DataError, match="has no labels .*train-labels-idx1-ubyte.*a classifier needs them"):
        load_dataset(f"idx:{tmp_path / 'idx'}")
    common = ["--dataset", f"idx:{tmp_path / 'idx'}", "--batch-size", "16", "--dry-run", "--no-progress"]
    for name, settings in (("gan", ["--set", "conditional=false"]), ("self", ["--preset", "unconditional"])):
        result = run_cli("train", "gan", *settings, "--out", tmp_path / name, *common)
        assert result.returncode == 0, result.stderr
    assert_clean_error(run_cli("train", "gan", "--out", tmp_path / "cond", *common), "--preset unconditional")
    assert_clean_error(run_cli("train", "cnn", "--out", tmp_path / "cnn", *common[:2], "--dry-run"), "no labels")
    assert_clean_error(run_cli("evaluate", "cnn", "mnistlab/assets/evaluator-v1.safetensors", *common[:2]),
                       "no labels")


def test_a_conditional_gan_given_unlabelled_data_in_python_is_refused(sample_data, tmp_path):
    from dataclasses import replace

    from mnistlab.data.datasets import Split
    from mnistlab.train.gan import train_gan

    unlabelled = replace(sample_data, train=Split(sample_data.train.images[:64], None))
    with pytest.raises(MnistlabError, match="has no labels, but gan/default is conditional"):
        train_gan("default", unlabelled, dry_run=True, eval_every=0, out=str(tmp_path / "r"), progress=False)
    config = with_overrides(preset("gan", "default"), {"conditional": False, "batch_size": 16})
    run = train_gan(config, unlabelled, dry_run=True, eval_every=0, out=str(tmp_path / "u"), progress=False)
    assert run.metrics[0]["epoch"] == 1


@pytest.fixture
def class_folder(sample_data, tmp_path):
    """ImageFolder's layout: real test digits as dark-on-white PNGs in my-digits/0 … my-digits/9 (six of each,
    seven of 1), plus what does not belong: a digit at the top level, one in a folder named "seven", one in a
    folder named "10", and an empty class folder would be ignored."""
    folder = tmp_path / "my-digits"
    images, labels = sample_data.test.images.numpy(), sample_data.test.labels.numpy()
    for digit in range(10):
        (folder / str(digit)).mkdir(parents=True)
        for k, index in enumerate(np.flatnonzero(labels == digit)[: 7 if digit == 1 else 6]):
            Image.fromarray(255 - images[index]).resize((56, 56)).save(folder / str(digit) / f"{digit}-{k}.png")
    for stray in ("top.png", "seven/a.png", "10/b.png"):
        (folder / stray).parent.mkdir(exist_ok=True)
        Image.fromarray(255 - images[0]).save(folder / stray)
    return folder


def test_class_folders_give_labels_and_a_stratified_tenth_and_strays_are_named(class_folder, tmp_path):
    data = load_dataset(f"images:{class_folder}", tmp_path / "cache", val_size=0)
    assert data.classes == [str(d) for d in range(10)]
    assert (len(data.train), len(data.test)) == (61 - 10, 10)  # ceil(6 / 10) = ceil(7 / 10) = 1 of each class
    assert sorted(data.test.labels.tolist()) == list(range(10))
    assert "skipped 3 images outside the class folders 0-9" in data.notice and "\n" not in data.notice
    assert all(name in data.notice for name in ("top.png", "seven/a.png", "10/b.png"))
    files = data.provenance["test_files"]
    assert [int(f.split("/")[0]) for f in files] == data.test.labels.tolist()
    again = load_dataset(f"images:{class_folder}", tmp_path / "cache", val_size=0)  # from the cache: the same
    assert again.provenance["test_files"] == files and np.array_equal(again.test.labels, data.test.labels)
    validated = load_dataset(f"images:{class_folder}", tmp_path / "cache")  # the first twelfth of the training
    assert len(validated.val) == 51 // 12 and len(set(validated.val.labels.tolist())) > 1  # images: mixed classes


def test_a_cnn_trains_and_evaluates_on_class_folders_naming_its_mistakes(class_folder, tmp_path):
    import json

    common = ["--data-root", tmp_path / "cache"]
    result = run_cli("train", "cnn", "--preset", "seed", "--dataset", f"images:{class_folder}", "--epochs", "1",
                     "--batch-size", "10", "--set", "val_size=0", "--out", tmp_path / "cnn", "--no-progress", *common)
    assert result.returncode == 0, result.stderr
    result = run_cli("evaluate", "cnn", tmp_path / "cnn", "--dataset", f"images:{class_folder}", "--json", *common)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["n"] == 10 and len(report["mistakes"]) == round((1 - report["accuracy"]) * 10)
    assert all(m["file"].split("/")[0] == m["true"] != m["predicted"] for m in report["mistakes"])


def test_a_folder_a_classifier_cannot_learn_from_is_one_line(class_folder, tmp_path):
    import shutil

    for digit in range(1, 10):
        shutil.rmtree(class_folder / str(digit))
    assert_clean_error(run_cli("train", "cnn", "--dataset", f"images:{class_folder}", "--dry-run", "--out",
                               tmp_path / "one", "--data-root", tmp_path / "cache"), "only class 0 has images")
    shutil.rmtree(class_folder / "0")
    assert_clean_error(run_cli("train", "cnn", "--dataset", f"images:{class_folder}", "--dry-run", "--out",
                               tmp_path / "none", "--data-root", tmp_path / "cache"), "has no labels")
    assert not (tmp_path / "one").exists() and not (tmp_path / "none").exists()


def test_a_separate_test_folder_is_the_test_split_and_evaluate_reads_it(class_folder, tmp_path):
    """--set test_dir=DIR2: all of DIR trains, all of DIR2 is the test split, and `evaluate cnn RUN` (without
    --dataset) tests on DIR2 again, naming its misread files."""
    import json
    import shutil

    test_folder = tmp_path / "their-test"
    for digit in (3, 8):  # a test folder need not hold every digit
        shutil.copytree(class_folder / str(digit), test_folder / str(digit))
    common = ["--data-root", tmp_path / "cache"]
    data = load_dataset(f"images:{class_folder}", tmp_path / "cache", val_size=0, test_dir=str(test_folder))
    assert (len(data.train), len(data.test)) == (61, 12) and set(data.test.labels.tolist()) == {3, 8}
    result = run_cli("train", "cnn", "--preset", "seed", "--dataset", f"images:{class_folder}", "--epochs", "1",
                     "--batch-size", "10", "--set", "val_size=0", "--set", f"test_dir={test_folder}",
                     "--out", tmp_path / "cnn", "--no-progress", *common)
    assert result.returncode == 0, result.stderr
    result = run_cli("evaluate", "cnn", tmp_path / "cnn", "--json", *common)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["n"] == 12 and all(m["file"].split("/")[0] in ("3", "8") for m in report["mistakes"])
    unlabelled = tmp_path / "flat"
    unlabelled.mkdir()
    shutil.copy(class_folder / "3" / "3-0.png", unlabelled / "a.png")
    refused = ((["--dataset", "mnist-sample", "--set", f"test_dir={test_folder}"], "is for the images of a folder"),
               (["--dataset", f"images:{class_folder}", "--set", f"test_dir={unlabelled}"], "subfolders named 0 to 9"))
    for args, why in refused:
        assert_clean_error(run_cli("train", "cnn", *args, "--dry-run", "--out", tmp_path / "no", *common), why)
    assert not (tmp_path / "no").exists()
