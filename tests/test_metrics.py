"""Sample-quality metrics on hand-made classifier outputs."""

import math

import pytest
import torch

from mnistlab.evaluate import quality_judge
from mnistlab.metrics import class_coverage, feature_stats, frechet_distance


def test_class_entropy_of_one_class_is_plus_zero_and_of_even_classes_ln_10():
    one = class_coverage(torch.eye(10)[[3] * 20])
    assert one["class_histogram"] == [0, 0, 0, 20, 0, 0, 0, 0, 0, 0] and one["confident_fraction"] == 1.0
    assert math.copysign(1, one["class_entropy"]) == 1 and f"{one['class_entropy']:.3f}" == "0.000"
    even = class_coverage(torch.eye(10).repeat(3, 1) * 0.5 + 0.05)
    assert even["class_entropy"] == pytest.approx(math.log(10)) and even["confident_fraction"] == 0.0


def test_fcd_of_a_set_against_itself_is_zero_and_against_a_shifted_set_is_the_squared_shift():
    features = torch.randn(2000, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    stats = feature_stats(features)
    assert frechet_distance(stats, stats) == pytest.approx(0.0, abs=1e-6)
    shifted = feature_stats(features + 0.5)  # same covariance, mean moved by 0.5 in each of 16 dims
    assert frechet_distance(stats, shifted) == pytest.approx(16 * 0.25, rel=1e-4)


@pytest.mark.slow
def test_real_digits_score_near_the_floor_and_one_repeated_digit_far_from_it(sample_data):
    """The shipped evaluator on real MNIST digits it did not see in the floor: a generator this good
    cannot be told from the data; one that draws one digit over and over is far from it."""
    judge = quality_judge(sample_data, n_floor=2000, device="cpu")
    unseen = sample_data.train.images[2000:4000]
    order = torch.randperm(len(unseen), generator=torch.Generator().manual_seed(0))
    real = judge(unseen[order].numpy(), asked=sample_data.train.labels[2000:4000][order])
    assert real["fcd"] < 2 * judge.floor + 0.1, (real["fcd"], judge.floor)
    assert real["class_entropy"] > 2.25 and real["confident_fraction"] > 0.9
    assert real["inception_score"] > 0.9 * judge.inception_score_real
    assert real["asked_digit_accuracy"] > 0.95  # asked = the true labels: the evaluator agrees

    wrong = judge(unseen[order].numpy(), asked=(sample_data.train.labels[2000:4000][order] + 1) % 10)
    assert wrong["asked_digit_accuracy"] < 0.05  # asked for the next digit up: almost never drawn

    one_digit = sample_data.train.images[sample_data.train.labels == 3][:1].repeat(500, 1, 1)
    collapsed = judge(one_digit.numpy())
    assert collapsed["fcd"] > 20 * judge.floor and collapsed["class_entropy"] < 0.01
    assert "asked_digit_accuracy" not in collapsed  # only when the digits asked for are known
