"""Not a digit: the digitness scorers, their scale and the abstain rule, the scale stored with the run, and
`predict` / `read` / the CLI answering "not a digit" rather than a confident wrong digit."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mnistlab import ood
from mnistlab.checkpoint import load_checkpoint
from mnistlab.cli import main
from mnistlab.inference import load


def clusters(n: int, seed: int, shift: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ten Gaussian clusters of 16-d "features" (their logits: how near each class mean), and their labels."""
    g = torch.Generator().manual_seed(seed)
    means = 6 * torch.eye(10, 16)
    labels = torch.arange(n) % 10
    features = means[labels] + torch.randn(n, 16, generator=g) + shift
    logits = -torch.cdist(features, means) ** 2 / 4
    return logits, features, labels


def test_each_scorer_ranks_features_far_from_every_class_below_the_digits():
    logits, features, labels = clusters(2000, 0)
    val_logits, val_features, _ = clusters(500, 1)
    test_logits, test_features, _ = clusters(500, 2)
    far_logits, far_features, _ = clusters(500, 3, shift=4.0)  # every feature moved off its class
    aurocs = {}
    for method in ood.METHODS:
        scorer = ood.fit(method, features, labels, val_logits, val_features)
        inside, outside = scorer.score(test_logits, test_features), scorer.score(far_logits, far_features)
        aurocs[method] = ood.auroc(inside, outside)
        digitness = scorer.digitness(val_logits, val_features)
        assert digitness.min() == 0 and digitness.max() == 1  # the validation digits span the scale
        kept = (scorer.digitness(test_logits, test_features) >= 1 - ood.KEEP).mean()
        assert kept > 0.97  # new digits from the same hand are kept as the validation digits were
    assert aurocs["mahalanobis"] > 0.99 and aurocs["gda"] > 0.99  # the densities see the shift
    assert aurocs["mahalanobis"] > aurocs["msp"]  # the top probability barely does: each point still has a class


def test_auroc_and_the_false_positive_rate_on_known_cases():
    assert ood.auroc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
    assert ood.auroc(np.array([0.0, 1.0]), np.array([2.0, 3.0])) == 0.0
    assert ood.auroc(np.array([1.0, 1.0]), np.array([1.0])) == 0.5  # ties count half
    inside = np.arange(100.0)
    assert ood.fpr_at_tpr(inside, np.array([-1.0, 50.0, 200.0])) == pytest.approx(2 / 3)


def test_the_verdict_refuses_non_digits_and_names_both_digits_when_unsure():
    classes = [str(d) for d in range(10)]
    sure, torn = np.eye(10)[4] * 0.9 + 0.01, np.zeros(10)
    torn[[4, 9]] = 0.45, 0.40
    assert ood.verdict(0.5, sure, classes) is None
    assert ood.verdict(0.001, sure, classes) == "not a digit"  # confident, but nothing like a digit
    assert ood.verdict(0.5, torn, classes) == "unsure: 4 or 9"
    assert ood.verdict(None, sure, classes) is None  # a run without the scale refuses only when unsure


def test_the_run_keeps_its_scale_and_predict_and_read_answer_with_it(cnn_run, tiny_data):
    state = load_checkpoint(cnn_run.dir)
    assert state["digitness"]["method"] == ood.KEPT_METHOD and len(state["digitness"]["quantiles"]) == ood.QUANTILES
    classifier = load(cnn_run.dir)
    _, digitness = classifier.assess(tiny_data.val.images)
    kept = np.mean(np.asarray(digitness) >= 1 - ood.KEEP)
    assert kept >= ood.KEEP - 0.01  # the validation digits it was scaled on
    square = np.zeros((28, 28), np.float32)
    square[4:24, 4:24] = 1  # the fixture CNN names a digit for it at p > 0.9
    refused, named = classifier.predict(square)[0], classifier.predict(square, abstain=False)[0]
    assert refused["digit"] is None and refused["label"] is None and refused["reason"] == "not a digit"
    assert named["digit"] == int(np.argmax(named["probabilities"])) and "reason" not in named
    assert classifier.predict(np.zeros((28, 28)))[0]["reason"] == "not a digit"  # a blank holds no digit
    both = load([cnn_run.dir, cnn_run.dir])  # an ensemble averages its members' digitness
    assert both.assess(tiny_data.val.images[:50])[1] == pytest.approx(digitness[:50], abs=1e-4)


def test_predict_on_the_command_line_says_why_and_no_abstain_names_a_digit(cnn_run, tmp_path, capsys):
    from PIL import Image

    square = np.full((200, 200), 255, np.uint8)
    square[40:160, 40:160] = 0
    path = tmp_path / "square.png"
    Image.fromarray(square).save(path)
    assert main(["predict", str(cnn_run.dir), str(path)]) == 0
    assert capsys.readouterr().out.startswith(f"{path}: not a digit   (")
    assert main(["predict", str(cnn_run.dir), str(path), "--json"]) == 0
    (answer,) = json.loads(capsys.readouterr().out)
    assert answer["digit"] is None and answer["reason"] == "not a digit" and answer["digitness"] < 0.005
    assert answer["threshold"] == 0.005  # the score beside the rule it was held to
    assert main(["predict", str(cnn_run.dir), str(path), "--json", "--no-abstain"]) == 0
    (answer,) = json.loads(capsys.readouterr().out)
    assert answer["digit"] == int(np.argmax(answer["probabilities"])) and "reason" not in answer
