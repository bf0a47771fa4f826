"""Calibrated probabilities: one temperature, fitted on the validation split, so that "90 %" means right 9 times in 10.

Temperature scaling (Guo et al. 2017) divides the logits by a single T > 0 chosen to minimise the negative
log-likelihood of held-out labels; the predicted digit never changes, only how sure the model says it is.
The expected calibration error (ECE) is the gap between confidence and accuracy over 15 equal-width bins of
the top probability, weighted by how many predictions fall in each.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.optimize
import torch
import torch.nn.functional as F

BINS = 15
T_RANGE = (0.05, 20.0)  # a temperature outside it says the fit failed, not that the model is that far off


def nll(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of `labels` under softmax(logits / T)."""
    return F.cross_entropy(logits.double() / temperature, labels).item()


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The T in `T_RANGE` that minimises the NLL of `labels` (a bounded 1-d search over log T); 1.0 with no data."""
    if len(labels) == 0:
        return 1.0
    logits = logits.double()
    result = scipy.optimize.minimize_scalar(lambda log_t: nll(logits, labels, float(np.exp(log_t))),
                                            bounds=tuple(np.log(T_RANGE)), method="bounded",
                                            options={"xatol": 1e-4})
    return float(np.exp(result.x))


def reliability(probabilities: torch.Tensor, labels: torch.Tensor, bins: int = BINS) -> dict[str, list[float]]:
    """Per confidence bin: its mean confidence, its accuracy and its count (bins with nothing in them: 0)."""
    confidence, predicted = probabilities.double().max(1)
    correct = (predicted == labels).double()
    index = torch.clamp((confidence * bins).long(), max=bins - 1)  # [0, 1/15), …, [14/15, 1]
    count = torch.bincount(index, minlength=bins).double()
    summed_confidence = torch.bincount(index, weights=confidence, minlength=bins)
    summed_correct = torch.bincount(index, weights=correct, minlength=bins)
    safe = count.clamp(min=1)
    return {"confidence": (summed_confidence / safe).tolist(), "accuracy": (summed_correct / safe).tolist(),
            "count": count.tolist()}


def expected_calibration_error(probabilities: torch.Tensor, labels: torch.Tensor, bins: int = BINS) -> float:
    """Σ over bins of (share of predictions in the bin) × |accuracy − mean confidence|."""
    table = reliability(probabilities, labels, bins)
    n = max(1.0, sum(table["count"]))
    return sum(c / n * abs(a - p) for p, a, c in zip(table["confidence"], table["accuracy"], table["count"]))


def calibration_report(logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> dict[str, Any]:
    """ECE and NLL before (T = 1) and after the temperature, and the reliability table after."""
    before, after = torch.softmax(logits.double(), 1), torch.softmax(logits.double() / temperature, 1)
    return {"temperature": temperature, "bins": BINS,
            "ece_before": expected_calibration_error(before, labels),
            "ece_after": expected_calibration_error(after, labels),
            "nll_before": nll(logits, labels), "nll_after": nll(logits, labels, temperature),
            "reliability_before": reliability(before, labels), "reliability_after": reliability(after, labels)}
