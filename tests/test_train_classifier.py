"""Training the CNN: the loss falls, the run directory is complete, resume equals an uninterrupted run."""

import json
import os
import signal

import pytest
import torch
from safetensors import safe_open

from mnistlab.checkpoint import load_checkpoint
from mnistlab.errors import MnistlabError, TrainingDiverged
from mnistlab.inference import load
from mnistlab.train.augment import augment, erase
from mnistlab.train.classifier import lr_at, train_classifier
from mnistlab.train.loop import Interrupted


def test_the_loss_falls_and_the_run_directory_is_complete(cnn_run):
    losses = [m["train_loss"] for m in cnn_run.metrics]
    assert len(losses) == 3 and losses[-1] < losses[0] * 0.7
    assert cnn_run.metrics[-1]["test_acc"] > 0.6  # 3 short epochs on 1,000 real digits
    names = {p.name for p in cnn_run.dir.iterdir()}
    assert {"config.json", "metrics.jsonl", "checkpoint.safetensors", "curves.png", "confusion.png",
            "mistakes.png", "report.json"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    config = json.loads((cnn_run.dir / "config.json").read_text())
    assert config["preset"] == "seed" and config["train"]["epochs"] == 3 and config["model"]["filters"] == [4, 8, 12]
    assert [json.loads(line)["epoch"] for line in (cnn_run.dir / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


def test_the_checkpoint_is_safetensors_with_json_metadata_and_round_trips(cnn_run):
    path = cnn_run.dir / "checkpoint.safetensors"
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["mnistlab"])
    assert meta["kind"] == "cnn" and meta["format_version"] == 1
    state = load_checkpoint(path)
    assert state["epoch"] == 3 and state["dataset"]["name"] == "mnist-sample"
    assert state["environment"]["torch_version"] == torch.__version__
    classifier = load(cnn_run.dir)
    for key, value in cnn_run.model.state_dict().items():
        assert torch.equal(classifier.model.state_dict()[key].cpu(), value.cpu()), key


@pytest.mark.slow
def test_ctrl_c_checkpoints_mid_epoch_and_resume_equals_an_uninterrupted_run(tiny_data, tmp_path):
    settings = dict(epochs=2, batch_size=100, deterministic=True, progress=False)
    straight = train_classifier("seed", tiny_data, out=str(tmp_path / "a"), **settings)

    def ctrl_c_after_epoch_1(metrics):  # the loop sees the flag at the next step: step 1 of epoch 2
        if metrics["epoch"] == 1:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted) as stopped:
        train_classifier("seed", tiny_data, out=str(tmp_path / "b"), callback=ctrl_c_after_epoch_1, **settings)
    assert stopped.value.exit_code == 130 and "--resume" in str(stopped.value)
    state = load_checkpoint(tmp_path / "b")
    assert (state["epoch"], state["step_in_epoch"]) == (1, 1)

    resumed = train_classifier(resume=tmp_path / "b", dataset=tiny_data, progress=False)
    strip = lambda ms: [{k: v for k, v in m.items() if k not in ("time_s", "images_per_s", "elapsed_s")} for m in ms]  # noqa: E731
    assert strip(resumed.metrics) == strip(straight.metrics)
    for key, value in straight.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key


@pytest.mark.slow
def test_same_seed_same_numbers_and_another_seed_differs(tiny_data, tmp_path):
    runs = [train_classifier("seed", tiny_data, epochs=1, seed=s, deterministic=True, out=str(tmp_path / f"{i}"),
                             progress=False) for i, s in enumerate((7, 7, 8))]
    losses = [r.metrics[0]["train_loss"] for r in runs]
    assert losses[0] == losses[1] != losses[2]


def test_deterministic_mode_is_switched_back_however_training_ends(tiny_data, tmp_path):
    torch.use_deterministic_algorithms(True, warn_only=True)  # the caller's own setting, kept through training
    try:
        with pytest.raises(MnistlabError, match="batch size"):  # fails after deterministic mode was switched on
            train_classifier("seed", tiny_data, batch_size=5000, deterministic=True, out=str(tmp_path / "a"),
                             progress=False)
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        torch.use_deterministic_algorithms(False)
        train_classifier("seed", tiny_data, epochs=1, batch_size=500, deterministic=True, out=str(tmp_path / "b"),
                         progress=False)
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)


def test_a_diverging_run_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tiny_data, tmp_path, monkeypatch):
    from mnistlab.train import classifier

    normal = classifier.lr_at
    def exploding_in_epoch_2(train, step, total):
        return normal(train, step, total) if step < 10 else 1e30

    monkeypatch.setattr(classifier, "lr_at", exploding_in_epoch_2)
    saved = {}

    def keep_epoch_1_checkpoint(metrics):
        saved[metrics["epoch"]] = (tmp_path / "nan" / "checkpoint.safetensors").read_bytes()

    with pytest.raises(TrainingDiverged, match=r"at step (1\d|2\d)\b"):  # epoch 2 is steps 10..19
        train_classifier("seed", tiny_data, epochs=3, batch_size=100, out=str(tmp_path / "nan"), progress=False,
                         callback=keep_epoch_1_checkpoint)
    assert list(saved) == [1]
    assert (tmp_path / "nan" / "checkpoint.safetensors").read_bytes() == saved[1]
    assert load_checkpoint(tmp_path / "nan")["epoch"] == 1


def test_lr_schedules():
    from mnistlab.config import CNN_PRESETS

    gorner = CNN_PRESETS["gorner"].train
    assert lr_at(gorner, 0, 1000) == pytest.approx(0.0031)
    assert lr_at(gorner, 2000, 1000) == pytest.approx(0.0001 + 0.003 / 2.718281828)
    best = CNN_PRESETS["best"].train
    peak = max(lr_at(best, s, 1000) for s in range(1000))
    assert peak == pytest.approx(best.lr) and lr_at(best, 999, 1000) < best.lr * 0.01


def test_a_batch_larger_than_the_data_is_a_clear_error_and_leaves_no_run_behind(tiny_data, tmp_path):
    with pytest.raises(MnistlabError, match="larger than the 1000 training images"):
        train_classifier("seed", tiny_data, batch_size=5000, out=str(tmp_path / "x"), progress=False)
    assert not (tmp_path / "x").exists()


def test_flip_mirrors_about_half_the_batch_exactly():
    torch.manual_seed(0)
    x = torch.rand(200, 1, 28, 28)
    out = augment(x, shift=0, rotate=0.0, flip=True)
    mirrored = torch.tensor([torch.allclose(o, i.flip(-1), atol=1e-5) for o, i in zip(out, x)])
    kept = torch.tensor([torch.allclose(o, i, atol=1e-5) for o, i in zip(out, x)])
    assert (mirrored | kept).all() and 70 < mirrored.sum() < 130
    assert torch.allclose(augment(x, shift=0, rotate=0.0), x, atol=1e-5)


def test_random_erasing_blanks_one_rectangle_in_the_chosen_share_of_images():
    torch.manual_seed(0)
    x = torch.ones(2000, 1, 28, 28)
    assert torch.equal(erase(x, 0.0), x)
    out = erase(x, 0.5)
    blanked = (out == 0).float().mean((1, 2, 3))
    hit = blanked > 0
    assert 0.45 < hit.float().mean() < 0.55
    assert blanked[hit].min() >= 0.01 and blanked[hit].max() <= 0.4  # 2–33 % of the area, whole pixels
    for image in out[hit][:50, 0]:  # the blank is one axis-aligned rectangle
        rows, cols = (image == 0).any(1).nonzero(), (image == 0).any(0).nonzero()
        assert (image[rows.min():rows.max() + 1, cols.min():cols.max() + 1] == 0).all()
