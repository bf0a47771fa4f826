"""The one training loop: the time budget is checked every step, and --dry-run runs the whole pipeline briefly."""

import json
import os
import signal

import pytest
import torch

from mnistlab.train.classifier import train_classifier
from mnistlab.train.gan import train_gan
from mnistlab.train.loop import Interrupted


def test_a_time_budget_stops_mid_epoch_not_at_the_epoch_end(tiny_data, tmp_path):
    # 1,000 digits at batch 10 is 100 steps an epoch, far more than 0.3 s of steps on any machine
    run = train_gan("default", tiny_data, time_budget=0.3, batch_size=10, eval_every=0, out=str(tmp_path / "g"),
                    progress=False)
    (only,) = run.metrics
    assert 0.3 <= only["elapsed_s"] < 0.3 + 1.0  # at most one step past the budget, not a whole epoch
    assert only["images_per_s"] * only["time_s"] < 1000 * 0.9  # the epoch was cut short
    assert json.loads((run.dir / "metrics.jsonl").read_text())["epoch"] == 1


@pytest.mark.slow
def test_a_cnn_time_budget_fits_the_one_cycle_schedule_to_the_budget(tiny_data, tmp_path):
    budget, peak = 1.5, 3e-3
    run = train_classifier("seed", tiny_data, time_budget=budget, lr=peak, lr_schedule="onecycle",
                           out=str(tmp_path / "c"), progress=False)
    history = run.metrics
    assert len(history) > 3 and budget <= history[-1]["elapsed_s"] < budget + 1.0
    highest = max(history, key=lambda m: m["lr"])
    assert highest["lr"] > 0.8 * peak  # warmed up fully ...
    assert 0.1 * budget < highest["elapsed_s"] < 0.45 * budget  # ... over the budget's first fifth or so
    assert history[-1]["lr"] < 0.05 * peak  # and annealed by its end, not cut off mid-cycle


def test_dry_run_trains_a_few_steps_of_one_epoch_and_writes_the_whole_run(tiny_data, tmp_path):
    cnn = train_classifier("seed", tiny_data, epochs=5, dry_run=True, out=str(tmp_path / "c"), progress=False)
    assert [m["epoch"] for m in cnn.metrics] == [1]
    assert cnn.metrics[0]["images_per_s"] * cnn.metrics[0]["time_s"] < 4 * 100  # 3 steps of 100 images
    assert {"checkpoint.safetensors", "report.json", "curves.png"} <= {p.name for p in cnn.dir.iterdir()}
    gan = train_gan("default", tiny_data, dry_run=True, eval_samples=100, out=str(tmp_path / "g"), progress=False)
    assert len(gan.metrics) == 1 and gan.metrics[0]["fcd"] > 0  # the quality evaluation ran too
    assert (gan.dir / "progress.gif").exists()


def test_a_run_resumed_mid_epoch_trains_its_later_epochs_as_an_uninterrupted_run(tiny_data, tmp_path):
    settings = dict(epochs=3, batch_size=100, deterministic=True, progress=False)
    straight = train_classifier("seed", tiny_data, out=str(tmp_path / "a"), **settings)

    def ctrl_c_in_epoch_1(metrics):  # seen at step 1 of epoch 2; epoch 3 then runs whole after the resume
        if metrics["epoch"] == 1:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted):
        train_classifier("seed", tiny_data, out=str(tmp_path / "b"), callback=ctrl_c_in_epoch_1, **settings)
    resumed = train_classifier(resume=tmp_path / "b", dataset=tiny_data, progress=False)
    clock = ("time_s", "images_per_s", "elapsed_s")
    assert [{k: v for k, v in m.items() if k not in clock} for m in resumed.metrics] == \
        [{k: v for k, v in m.items() if k not in clock} for m in straight.metrics]
    for key, value in straight.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
