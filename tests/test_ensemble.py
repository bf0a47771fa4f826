"""Several CNN runs as one reader: their calibrated probabilities averaged, in the API and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_cli import run_cli

from mnistlab import evaluate_classifier, load
from mnistlab.errors import MnistlabError


@pytest.fixture(scope="module")
def second_run(tiny_data, tmp_path_factory):
    from mnistlab.train.classifier import train_classifier

    return train_classifier("seed", tiny_data, epochs=2, lr=3e-3, seed=1, out=str(tmp_path_factory.mktemp("e") / "r"),
                            progress=False)


def test_an_ensemble_averages_its_members_probabilities(cnn_run, second_run, tiny_data):
    one, two = load(cnn_run.dir), load(second_run.dir)
    both = load([cnn_run.dir, second_run.dir])
    digits = tiny_data.test.images[:50]
    expected = (one.probabilities(digits) + two.probabilities(digits)) / 2
    assert both.probabilities(digits) == pytest.approx(expected, abs=1e-6)
    assert load(f"{cnn_run.dir},{second_run.dir}").probabilities(digits) == pytest.approx(expected, abs=1e-6)
    predicted = both.predict([digits[0].numpy()])[0]
    assert predicted["digit"] == int(np.argmax(expected[0]))


def test_evaluate_an_ensemble_through_the_api_and_the_cli(cnn_run, second_run):
    runs = f"{cnn_run.dir},{second_run.dir}"
    report = evaluate_classifier(runs)
    assert report["members"] == [str(run.dir / "checkpoint.safetensors") for run in (cnn_run, second_run)]
    done = run_cli("evaluate", "cnn", runs, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["accuracy"] == report["accuracy"]


def test_an_ensemble_of_a_gan_is_one_line(cnn_run, gan_run):
    with pytest.raises(MnistlabError, match="cnn checkpoint is needed"):
        load([cnn_run.dir, gan_run.dir])
    done = run_cli("predict", f"{cnn_run.dir},{gan_run.dir}", "x.png")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_an_ensemble_exports_as_one_onnx_graph_that_predicts_as_it_does(cnn_run, second_run, tiny_data, tmp_path):
    import onnxruntime
    import torch

    from mnistlab import export_onnx

    export_onnx([cnn_run.dir, second_run.dir], tmp_path / "ensemble.onnx")
    session = onnxruntime.InferenceSession(str(tmp_path / "ensemble.onnx"), providers=["CPUExecutionProvider"])
    digits = tiny_data.test.images[:20]
    logits = session.run(None, {"images": (digits.float() / 255).unsqueeze(1).numpy()})[0]
    expected = load([cnn_run.dir, second_run.dir], precision="fp32").probabilities(digits)
    assert torch.softmax(torch.from_numpy(logits), 1).numpy() == pytest.approx(expected, abs=1e-5)


@pytest.mark.slow
def test_train_seeds_makes_a_group_that_loads_as_one_ensemble_and_finishes_where_it_stopped(tmp_path):
    group = tmp_path / "group"
    command = ["train", "cnn", "--preset", "seed", "--seeds", "3-4", "--epochs", "1", "--dataset", "mnist-sample",
               "--out", group, "--no-progress"]
    done = run_cli(*command)
    assert done.returncode == 0, done.stderr
    assert json.loads((group / "group.json").read_text()) == {"members": ["seed-3", "seed-4"]}
    assert [json.loads((group / m / "config.json").read_text())["run"]["seed"] for m in ("seed-3", "seed-4")] == [3, 4]
    ensemble = load(group)
    assert [m.path.parent.name for m in (ensemble, *ensemble.members)] == ["seed-3", "seed-4"]
    expected = (load(group / "seed-3").probabilities(np.zeros((1, 28, 28))) +
                load(group / "seed-4").probabilities(np.zeros((1, 28, 28)))) / 2
    assert ensemble.probabilities(np.zeros((1, 28, 28))) == pytest.approx(expected, abs=1e-6)

    kept = (group / "seed-3" / "checkpoint.safetensors").stat().st_mtime_ns
    (group / "seed-4" / "checkpoint.safetensors").unlink()  # as if stopped while training the second
    again = run_cli(*command)
    assert again.returncode == 0, again.stderr
    assert (group / "seed-3" / "checkpoint.safetensors").stat().st_mtime_ns == kept  # not trained again
    assert (group / "seed-4" / "checkpoint.safetensors").is_file()

    (group / "group.json").write_text('{"members": ["../elsewhere"]}')
    with pytest.raises(MnistlabError, match="folder names inside the group"):
        load(group)
    bad = run_cli(*command[:5], "1-x")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--seeds takes A-B" in bad.stderr
