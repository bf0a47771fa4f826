"""Sample-quality metrics on hand-made classifier outputs."""

import math

import pytest
import torch

from mnistlab.metrics import class_coverage


def test_class_entropy_of_one_class_is_plus_zero_and_of_even_classes_ln_10():
    one = class_coverage(torch.eye(10)[[3] * 20])
    assert one["class_histogram"] == [0, 0, 0, 20, 0, 0, 0, 0, 0, 0] and one["confident_fraction"] == 1.0
    assert math.copysign(1, one["class_entropy"]) == 1 and f"{one['class_entropy']:.3f}" == "0.000"
    even = class_coverage(torch.eye(10).repeat(3, 1) * 0.5 + 0.05)
    assert even["class_entropy"] == pytest.approx(math.log(10)) and even["confident_fraction"] == 0.0
