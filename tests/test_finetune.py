"""Fine-tuning a trained reader on a person's own labelled digits: `train cnn --from RUN --dataset images:DIR`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage
from test_cli import assert_clean_error, run_cli

from mnistlab.checkpoint import load_checkpoint


@pytest.fixture
def one_writer(sample_data, tmp_path):
    """One hand: the sample's test digits written with a thick pen (strokes dilated), in class folders 0-9."""
    folder = tmp_path / "my-hand"
    images, labels = sample_data.test.images.numpy(), sample_data.test.labels.numpy()
    for digit in range(10):
        (folder / str(digit)).mkdir(parents=True)
        for k, index in enumerate(np.flatnonzero(labels == digit)[:5]):
            thick = ndimage.grey_dilation(images[index], size=(3, 3))
            Image.fromarray(255 - thick).save(folder / str(digit) / f"{k}.png")
    return folder


def test_fine_tuning_starts_from_the_run_and_records_where_it_came_from(cnn_run, one_writer, tmp_path):
    common = ["--dataset", f"images:{one_writer}", "--data-root", tmp_path / "cache", "--batch-size", "10",
              "--set", "val_size=0", "--no-progress"]
    result = run_cli("train", "cnn", "--from", cnn_run.dir, "--epochs", "1", "--lr", "1e-9",
                     "--out", tmp_path / "still", *common)
    assert result.returncode == 0, result.stderr
    before, after = load_checkpoint(cnn_run.dir)["model"], load_checkpoint(tmp_path / "still")["model"]
    assert all(torch.allclose(before[k].float(), after[k].float(), atol=1e-5) for k in before)  # lr ~0: the same
    assert json.loads((tmp_path / "still" / "config.json").read_text())["run"]["init_from"] == str(cnn_run.dir)

    result = run_cli("train", "cnn", "--from", cnn_run.dir, "--epochs", "2", "--lr", "1e-3", "--set", "replay=0.5",
                     "--out", tmp_path / "tuned", *common)
    assert result.returncode == 0, result.stderr
    state = load_checkpoint(tmp_path / "tuned")
    assert state["config"]["train"]["lr_schedule"] == "constant"  # the fine-tuning recipe, then the flags
    tuned = state["model"]
    assert any(not torch.allclose(before[k].float(), tuned[k].float(), atol=1e-4) for k in before)
    # calibrated and scaled on the source's validation digits as well as the writer's few
    assert state["temperature"] != 1.0 and "digitness" in state
    listing = run_cli("runs", "list", tmp_path)
    assert f"fine-tuned from {cnn_run.dir}" in listing.stdout


def test_fine_tuning_from_a_gan_or_another_network_is_one_line_and_leaves_nothing(cnn_run, gan_run, one_writer,
                                                                                  tmp_path):
    common = ["--dataset", f"images:{one_writer}", "--data-root", tmp_path / "cache", "--dry-run", "--set",
              "val_size=0", "--batch-size", "10"]
    assert_clean_error(run_cli("train", "cnn", "--from", gan_run.dir, "--out", tmp_path / "a", *common),
                       "a gan run; fine-tuning starts from a CNN run")
    assert_clean_error(run_cli("train", "cnn", "--preset", "best", "--from", cnn_run.dir, "--out", tmp_path / "b",
                               *common), "it is a seed network", "--preset seed")
    assert_clean_error(run_cli("train", "cnn", "--from", tmp_path / "nowhere", "--out", tmp_path / "c", *common))
    assert not any((tmp_path / name).exists() for name in "abc")


def test_fine_tune_takes_the_source_config_and_the_recipe_and_head_only_trains_the_last_layer(cnn_run, one_writer,
                                                                                               tmp_path):
    from mnistlab.train.classifier import FINE_TUNE, fine_tune

    data = f"images:{one_writer}"
    run = fine_tune(cnn_run.dir, data, epochs=2, tune="head", data_root=str(tmp_path / "cache"),
                    out=str(tmp_path / "head"), progress=False)
    assert (run.config.preset, run.config.model) == (cnn_run.config.preset, cnn_run.config.model)
    assert (run.config.train.lr, run.config.train.replay, run.config.run.init_from) == (
        FINE_TUNE["lr"], FINE_TUNE["replay"], str(cnn_run.dir))
    assert run.config.train.batch_size == FINE_TUNE["batch_size"]  # 45 digits train: more than a batch
    before, after = load_checkpoint(cnn_run.dir)["model"], load_checkpoint(run.dir)["model"]
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"logits.weight", "logits.bias"}  # the body, BatchNorm statistics included, as it was
    assert_clean_error(run_cli("train", "cnn", "--set", "tune=head", "--dry-run", "--out", tmp_path / "x"),
                       "is for fine-tuning")


def test_a_run_fine_tuned_again_replays_what_its_source_replayed(cnn_run, one_writer, tmp_path, monkeypatch):
    from mnistlab.train import classifier
    from mnistlab.train.classifier import fine_tune

    common = {"epochs": 1, "data_root": str(tmp_path / "cache"), "progress": False}
    once = fine_tune(cnn_run.dir, f"images:{one_writer}", out=str(tmp_path / "once"), **common)
    loaded = []
    real = classifier.load_dataset
    monkeypatch.setattr(classifier, "load_dataset", lambda name, *a, **k: loaded.append(name) or real(name, *a, **k))
    fine_tune(once.dir, f"images:{one_writer}", out=str(tmp_path / "twice"), **common)
    assert loaded[-1] == cnn_run.dataset  # the sample's digits, not the writer's few
