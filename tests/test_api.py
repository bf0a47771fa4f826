"""The public API, round trip: data → model → training → load → predict / generate / evaluate,
and the CLI giving the same results as the API it wraps."""

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import mnistlab
from mnistlab.cli import build_parser, main
from mnistlab.errors import MnistlabError

TIMING = ("time_s", "images_per_s", "elapsed_s")  # wall-clock fields


def strip_timing(metrics):
    return [{k: v for k, v in m.items() if k not in TIMING} for m in metrics]


# ----------------------------------------------------------------------------------------------
# Data and models


def test_public_names_resolve_lazily():
    assert {"export_onnx", "list_runs", "read_run", "compare_runs"} <= set(mnistlab.__all__)  # what the CLI calls
    for name in mnistlab.__all__:
        assert getattr(mnistlab, name) is not None, name
    with pytest.raises(AttributeError):
        mnistlab.no_such_thing  # noqa: B018


def test_load_dataset_gives_uint8_splits_with_classes_and_provenance(sample_data):
    assert sample_data.name == "mnist-sample" and sample_data.classes == [str(d) for d in range(10)]
    assert (len(sample_data.train), len(sample_data.val), len(sample_data.test)) == (3800, 200, 1000)
    for split in (sample_data.train, sample_data.val, sample_data.test):
        assert split.images.dtype == torch.uint8 and split.images.shape[1:] == (28, 28)
        assert split.labels.dtype == torch.int64 and 0 <= split.labels.min() <= split.labels.max() <= 9
    assert sample_data.provenance["name"] == "mnist-sample" and sample_data.notice is None
    only_test = mnistlab.load_dataset("mnist-sample", splits=("test",))
    assert only_test.train is None and only_test.val is None
    assert torch.equal(only_test.test.images, sample_data.test.images)


def test_as_torch_dataset_works_with_a_dataloader(tiny_data):
    dataset = mnistlab.as_torch_dataset(tiny_data.test)
    loader = torch.utils.data.DataLoader(dataset, batch_size=32, shuffle=False)
    images, labels = next(iter(loader))
    assert images.shape == (32, 1, 28, 28) and images.dtype == torch.float32
    assert 0 <= images.min() and images.max() <= 1 and images.max() > 0.9
    assert torch.equal(labels, tiny_data.test.labels[:32]) and labels.dtype == torch.int64
    assert torch.equal((images[:, 0] * 255).round().to(torch.uint8), tiny_data.test.images[:32])
    assert sum(len(y) for _, y in loader) == len(tiny_data.test)
    flipped = mnistlab.as_torch_dataset(tiny_data.test, transform=lambda x: 1 - x)
    assert torch.equal(flipped[0][0], 1 - loader.dataset[0][0])


def test_build_cnn_and_build_dcgan_shapes():
    x = torch.zeros(2, 1, 28, 28)
    assert mnistlab.build_cnn("seed")(x).shape == (2, 10)
    assert mnistlab.build_cnn("seed", dilations=(1, 2, 1), batch_norm=True)(x).shape == (2, 10)
    assert mnistlab.build_cnn("best")(x).shape == (2, 10)
    for name in ("seed", "default"):
        gan = mnistlab.build_dcgan(name)
        z = gan.noise(3)
        images = gan(z)
        assert images.shape == (3, 1, 28, 28) and images.abs().max() <= 1
        assert gan.discriminate(images, gan.digits(z)).shape[0] == 3
    with pytest.raises(MnistlabError):
        mnistlab.build_cnn("seed", filters=(4, 8))  # one entry per conv layer


# ----------------------------------------------------------------------------------------------
# Trained models: load, predict, generate, evaluate


def test_predict_gives_the_same_digit_for_pil_numpy_tensor_and_file(cnn_run, tiny_data, tmp_path):
    classifier = mnistlab.load(cnn_run.dir)
    assert classifier.classes == [str(d) for d in range(10)] and classifier.dataset == "mnist-sample"
    digit = tiny_data.test.images[3].numpy()
    Image.fromarray(digit).save(tmp_path / "digit.png")
    path = tmp_path / "digit.png"
    inputs = [Image.fromarray(digit), digit, torch.from_numpy(digit), path, str(path)]
    results = classifier.predict(inputs)
    assert len(results) == len(inputs)
    first = results[0]
    assert 0 <= first["digit"] <= 9 and first["label"] == str(first["digit"])
    assert len(first["probabilities"]) == 10 and abs(sum(first["probabilities"]) - 1) < 1e-4
    assert first["image"].shape == (28, 28) and first["image"].dtype == np.float32
    for r in results[1:]:
        assert r["digit"] == first["digit"] and r["probabilities"] == first["probabilities"]
        assert np.array_equal(r["image"], first["image"])
    assert classifier.predict(digit)[0]["digit"] == first["digit"]  # a single image, not in a list
    with pytest.raises(MnistlabError):
        mnistlab.load(cnn_run.dir, kind="gan")


def test_generate_is_uint8_and_reproducible_by_seed(gan_run):
    generator = mnistlab.load(gan_run.dir)
    a = generator.generate(6, seed=1)
    assert a.shape == (6, 28, 28) and a.dtype == np.uint8
    assert np.array_equal(a, generator.generate(6, seed=1))
    assert not np.array_equal(a, generator.generate(6, seed=2))
    walk = generator.interpolate(1, 2, steps=5)
    assert walk.shape == (5, 28, 28) and walk.dtype == np.uint8
    assert np.array_equal(walk[0], generator.generate(1, seed=1)[0])
    with pytest.raises(MnistlabError):
        generator.generate(0)
    with pytest.raises(MnistlabError):
        mnistlab.load(gan_run.dir, kind="cnn")


def test_evaluate_classifier_equals_what_the_cli_prints(cnn_run, capsys):
    report = mnistlab.evaluate_classifier(cnn_run.dir)
    assert {"accuracy", "n", "per_class", "confusion", "classes", "dataset", "checkpoint"} <= set(report)
    assert report["n"] == 1000 and set(report["per_class"]) == {str(d) for d in range(10)}
    assert report["accuracy"] == pytest.approx(np.trace(report["confusion"]) / report["n"])
    assert main(["evaluate", "cnn", str(cnn_run.dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(report))


# ----------------------------------------------------------------------------------------------
# The CLI and the API give the same run


@pytest.fixture
def idx_dir(sample_data, tmp_path):
    """A directory of real digits in IDX files: 600 training, 200 test (the sample's splits mix all classes)."""
    from mnistlab.data.idx import write_idx

    directory = tmp_path / "idx"
    directory.mkdir()
    for stem, array in (("train-images-idx3-ubyte.gz", sample_data.train.images[:600]),
                        ("train-labels-idx1-ubyte.gz", sample_data.train.labels[:600]),
                        ("t10k-images-idx3-ubyte.gz", sample_data.test.images[:200]),
                        ("t10k-labels-idx1-ubyte.gz", sample_data.test.labels[:200])):
        write_idx(directory / stem, array.numpy().astype(np.uint8))
    return directory


def test_cli_and_api_train_the_same_run_for_the_same_seed(idx_dir, tmp_path, capsys):
    dataset = f"idx:{idx_dir}"
    assert main(["train", "cnn", "--dataset", dataset, "--epochs", "1", "--batch-size", "100",
                 "--set", "val_size=100", "--seed", "3", "--deterministic", "--no-progress",
                 "--out", str(tmp_path / "cli")]) == 0
    assert "trained cnn/seed" in capsys.readouterr().out
    api = mnistlab.train_classifier("seed", epochs=1, batch_size=100, val_size=100, seed=3,
                                    deterministic=True, out=str(tmp_path / "api"), progress=False,
                                    **{"run.dataset": dataset})
    cli_metrics = [json.loads(line) for line in (tmp_path / "cli" / "metrics.jsonl").read_text().splitlines()]
    assert len(cli_metrics) == 1 and strip_timing(cli_metrics) == strip_timing(api.metrics)
    configs = [json.loads((d / "config.json").read_text()) for d in (tmp_path / "cli", api.dir)]
    assert [c["run"].pop("out") for c in configs] == [str(tmp_path / "cli"), str(tmp_path / "api")]
    assert configs[0] == configs[1]
    cli_model = mnistlab.load(tmp_path / "cli").model.state_dict()
    for key, value in mnistlab.load(api.dir).model.state_dict().items():
        assert torch.equal(cli_model[key], value), key


@pytest.mark.slow
def test_trainers_take_a_dataset_name(idx_dir, tmp_path):
    run = mnistlab.train_classifier("seed", dataset="mnist-sample", epochs=1, batch_size=1000, val_size=0,
                                    out=str(tmp_path / "cnn"), progress=False)
    assert run.dataset == "mnist-sample" and run.config.run.dataset == "mnist-sample"
    gan = mnistlab.train_gan("default", dataset=f"idx:{idx_dir}", epochs=1, batch_size=300, eval_every=0,
                             out=str(tmp_path / "gan"), progress=False)
    assert gan.dataset == f"idx:{idx_dir}" and len(gan.metrics) == 1


# ----------------------------------------------------------------------------------------------
# Help


def _command_paths(parser, prefix=()):
    """Every (sub)command as its argv prefix: ("train",), ("train", "cnn"), ..."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield prefix + (name,)
                yield from _command_paths(sub, prefix + (name,))


def test_help_lists_every_command_without_importing_heavy_modules():
    result = subprocess.run([sys.executable, "-m", "mnistlab", "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    top = [path[0] for path in _command_paths(build_parser()) if len(path) == 1]
    assert set(top) >= {"data", "train", "evaluate", "predict", "generate", "serve", "export", "runs"}
    for name in top:
        assert f"\n    {name} " in result.stdout, name
    probe = ("import sys; from mnistlab.cli import build_parser; build_parser().format_help(); "
             "print([m for m in ('matplotlib', 'fastapi', 'onnx', 'torch') if m in sys.modules])")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert loaded.returncode == 0 and loaded.stdout.strip() == "[]", loaded.stdout + loaded.stderr


def test_every_subcommand_has_help(capsys):
    paths = list(_command_paths(build_parser()))
    assert ("train", "cnn") in paths and ("evaluate", "gan") in paths and ("data", "download") in paths
    for path in paths:
        with pytest.raises(SystemExit) as exit_:
            main([*path, "-h"])
        assert exit_.value.code == 0, path
        assert capsys.readouterr().out.startswith(f"usage: mnistlab {' '.join(path)}"), path


@pytest.mark.slow
def test_evaluate_gan_equals_what_the_cli_prints(gan_run, capsys):
    report = mnistlab.evaluate_gan(gan_run.dir, n=300, seed=2)
    assert {"fcd", "fcd_real_floor", "inception_score", "class_entropy", "confident_fraction", "class_histogram",
            "n"} <= set(report)
    assert report["n"] == 300 and sum(report["class_histogram"]) == 300
    assert main(["evaluate", "gan", str(gan_run.dir), "-n", "300", "--seed", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(report))
