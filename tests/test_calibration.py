"""Calibrated probabilities: the temperature is fitted on validation at the end of training, stored with the run,
read by every consumer, and fitted afterwards for runs made before."""

from __future__ import annotations

import shutil

import pytest
import torch
from test_cli import run_cli

from mnistlab.calibration import expected_calibration_error, fit_temperature, nll, reliability
from mnistlab.checkpoint import load_checkpoint, save_checkpoint


def test_the_fit_recovers_the_temperature_that_made_the_labels():
    g = torch.Generator().manual_seed(0)
    logits = 4 * torch.randn(20000, 10, generator=g)
    labels = torch.multinomial(torch.softmax(logits / 2.5, 1), 1, generator=g).view(-1)  # truly T = 2.5
    temperature = fit_temperature(logits, labels)
    assert temperature == pytest.approx(2.5, rel=0.05)
    assert nll(logits, labels, temperature) < nll(logits, labels)
    before = expected_calibration_error(torch.softmax(logits, 1), labels)
    after = expected_calibration_error(torch.softmax(logits / temperature, 1), labels)
    assert after < 0.02 < before  # overconfident by far at T = 1, within 2 points after


def test_reliability_bins_count_every_prediction_and_a_perfect_model_has_no_error():
    probabilities = torch.eye(10)[torch.arange(100) % 10]
    labels = torch.arange(100) % 10
    table = reliability(probabilities, labels)
    assert sum(table["count"]) == 100 and table["count"][-1] == 100 and table["accuracy"][-1] == 1.0
    assert expected_calibration_error(probabilities, labels) == 0.0
    assert expected_calibration_error(probabilities, (labels + 1) % 10) == 1.0  # sure and always wrong
    assert fit_temperature(torch.empty(0, 10), torch.empty(0, dtype=torch.long)) == 1.0


def test_training_stores_the_temperature_and_every_consumer_uses_it(cnn_run):
    from mnistlab import evaluate_classifier, load

    state = load_checkpoint(cnn_run.dir)
    assert 0.05 < state["temperature"] < 20 and state["temperature"] != 1.0
    classifier = load(cnn_run.dir)
    assert classifier.temperature == state["temperature"]
    digits = torch.zeros(2, 28, 28, dtype=torch.uint8)
    digits[:, 6:22, 13:15] = 255  # a 1
    from mnistlab.inference import classify

    logits, _ = classify(classifier.model, digits, classifier.device, classifier.dtype)
    expected = torch.softmax(logits / state["temperature"], 1).numpy()
    assert classifier.probabilities(digits) == pytest.approx(expected, abs=1e-6)
    report = evaluate_classifier(cnn_run.dir)["calibration"]
    assert report["temperature"] == state["temperature"] and report["bins"] == 15
    assert report["nll_after"] <= report["nll_before"] + 0.01
    assert (cnn_run.dir / "calibration.png").stat().st_size > 1000


@pytest.mark.slow
def test_calibrate_fits_a_run_made_before_and_refuses_a_gan(cnn_run, gan_run, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(cnn_run.dir, old)
    state = load_checkpoint(old)
    del state["temperature"], state["digitness"]  # as every run made before they were fitted
    kept = {k: v for k, v in state.items() if k not in ("kind", "role")}
    save_checkpoint(old / "checkpoint.safetensors", "cnn", kept)
    from mnistlab import load

    assert load(old).temperature == 1.0 and load(old).digitness is None
    done = run_cli("calibrate", old)
    assert done.returncode == 0, done.stderr
    fitted = load(old).temperature  # on the run's dataset's own validation split, which the run never trained on
    assert 0.05 < fitted < 20 and fitted != 1.0 and f"temperature {fitted:.3f}" in done.stdout
    before, after = (float(x) for x in done.stdout.split("NLL ")[1].split(")")[0].split(" -> "))
    assert after < before
    assert load(old).digitness is not None and "digitness scale fitted" in done.stdout
    refused = run_cli("calibrate", gan_run.dir)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1 and "cnn" in refused.stderr
