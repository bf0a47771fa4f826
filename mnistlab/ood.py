"""Digit-likeness: how much an input looks like the digits a classifier was trained on, and when to refuse it.

A classifier names a digit for anything, a cat or a coffee stain included. Each scorer below gives an input
a score, higher for more digit-like, from what one forward pass already gives (the logits and the
penultimate features); `scripts/ood_bench.py` compares them on validation digits against non-digits:

- "msp": the top probability after the run's temperature (Hendrycks & Gimpel 2017), the classic baseline;
- "energy": log Σ exp(logits / T) (Liu et al. 2020);
- "mahalanobis": minus the smallest squared Mahalanobis distance of the features to a class mean, one
  covariance shared by the classes, fitted on the training digits (Lee et al. 2018). It needs no outlier
  data to train, and sees the input's features rather than only how the classes compete for it;
- "gda": the log-density of a Gaussian mixture, one component per class with its own covariance (DDU,
  Mukhoti et al. 2023).

Mahalanobis separates best (docs/reliability.md: AUROC and FPR at 95 % TPR for each), so every run keeps
it. Its raw score means little to a person, so what is reported is the input's `digitness`: the share of
the run's validation digits that score lower than it (their scores' quantiles are kept with the run). An
input with a digitness under 1 − KEEP is "not a digit": the threshold is chosen on validation digits alone,
and keeps KEEP of them. Apart from that, a digit-like input whose calibrated top probability is under
UNSURE is "unsure" between its two likeliest digits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

Method = Literal["msp", "energy", "mahalanobis", "gda"]
METHODS: tuple[Method, ...] = ("msp", "energy", "mahalanobis", "gda")
KEPT_METHOD: Method = "mahalanobis"  # the one that separated best (scripts/ood_bench.py)
KEEP = 0.995  # the share of validation digits the threshold keeps: 1 in 200 true digits refused
UNSURE = 0.5  # below this calibrated top probability the two likeliest digits are named instead of one
QUANTILES = 201  # validation scores kept at 0, 0.5, …, 100 %: the digitness scale, to half a percent
RIDGE = 1e-4  # added to the covariances' diagonal, times their mean variance: 256 dims from ~5,000 digits a class


@dataclass
class Digitness:
    """A fitted scorer: `score` maps (logits, features) to a raw score, `digitness` to the share of validation
    digits scoring lower."""

    method: Method
    quantiles: np.ndarray  # (QUANTILES,) the validation digits' scores at 0, 0.5, …, 100 %
    temperature: float = 1.0  # the run's: "msp" and "energy" read calibrated logits
    means: np.ndarray | None = None  # (classes, features): the class means of the training digits' features
    precisions: np.ndarray | None = None  # (features, features), or (classes, features, features) for "gda"
    log_dets: np.ndarray | None = None  # (classes,) each class covariance's log-determinant, for "gda"

    def score(self, logits: torch.Tensor, features: torch.Tensor) -> np.ndarray:
        """(N,) digit-likeness of N inputs, from their logits (N, classes) and features (N, dims)."""
        scaled = logits.double() / self.temperature
        if self.method == "msp":
            return torch.softmax(scaled, 1).max(1).values.numpy()
        if self.method == "energy":
            return torch.logsumexp(scaled, 1).numpy()
        f = features.double().numpy()
        if self.method == "mahalanobis":
            return -_squared_distances(f, self.means, self.precisions).min(1)
        distances = np.stack([_squared_distances(f, m[None], p)[:, 0]
                              for m, p in zip(self.means, self.precisions)], 1)
        log_densities = -0.5 * (distances + self.log_dets)  # the constant (2π)^d is the same for every input
        return np.logaddexp.reduce(log_densities, axis=1)

    def digitness(self, logits: torch.Tensor, features: torch.Tensor) -> np.ndarray:
        """(N,) the share of the validation digits that score lower than each input, 0..1."""
        return np.interp(self.score(logits, features), self.quantiles, np.linspace(0, 1, QUANTILES))

    def to_state(self) -> dict[str, Any]:
        """What a checkpoint keeps of it (`mnistlab.checkpoint.STATE_SCHEMA`'s "digitness")."""
        state: dict[str, Any] = {"method": self.method}
        for name in ("quantiles", "means", "precisions", "log_dets"):
            value = getattr(self, name)
            if value is not None:
                state[name] = torch.from_numpy(value.astype(np.float32))
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any], temperature: float) -> Digitness:
        arrays = {name: state[name].double().numpy() for name in ("means", "precisions", "log_dets") if name in state}
        return cls(state["method"], state["quantiles"].double().numpy(), temperature, **arrays)


def fit(method: Method, train_features: torch.Tensor, train_labels: torch.Tensor, val_logits: torch.Tensor,
        val_features: torch.Tensor, temperature: float = 1.0) -> Digitness:
    """The scorer `method`, its densities fitted on the training digits' features (the classes they hold),
    its scale on the validation digits'."""
    scorer = Digitness(method, np.zeros(QUANTILES), temperature)
    if method in ("mahalanobis", "gda"):
        f, y = train_features.double().numpy(), train_labels.numpy()
        classes, index = np.unique(y, return_inverse=True)
        means = np.stack([f[y == c].mean(0) for c in classes])
        centred = f - means[index]
        if method == "mahalanobis":
            scorer.means, scorer.precisions = means, _precision(centred.T @ centred / len(f))
        else:
            covariances = [np.cov(centred[y == c], rowvar=False) for c in classes]
            scorer.means = means
            scorer.precisions = np.stack([_precision(c) for c in covariances])
            scorer.log_dets = np.array([np.linalg.slogdet(_ridged(c))[1] for c in covariances])
    scorer.quantiles = np.quantile(scorer.score(val_logits, val_features), np.linspace(0, 1, QUANTILES))
    return scorer


def verdict(digitness: float | None, probabilities: np.ndarray, classes: list[str]) -> str | None:
    """Why an input gets no digit ("not a digit", "unsure: 4 or 9"), or None when it gets one. A run
    without a digitness scale refuses nothing as "not a digit"."""
    first, second = np.argsort(probabilities)[::-1][:2]
    if digitness is not None and digitness < 1 - KEEP:
        return "not a digit"
    if probabilities[first] < UNSURE:
        return f"unsure: {classes[first]} or {classes[second]}"
    return None


def answer(digitness: float | None, probabilities: np.ndarray, classes: list[str],
           abstain: bool = True) -> tuple[int | None, str | None]:
    """The digit an input is read as and None, or None and why not (`verdict`); `abstain=False` always names
    the likeliest digit."""
    reason = verdict(digitness, probabilities, classes) if abstain else None
    return (None if reason else int(np.argmax(probabilities))), reason


def auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    """The chance a random digit scores higher than a random non-digit (ties count half)."""
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([inside, outside]))
    return float((ranks[: len(inside)].sum() - len(inside) * (len(inside) + 1) / 2) / (len(inside) * len(outside)))


def fpr_at_tpr(inside: np.ndarray, outside: np.ndarray, tpr: float = 0.95) -> float:
    """The share of non-digits kept when the threshold keeps `tpr` of the digits."""
    return float((outside >= np.quantile(inside, 1 - tpr)).mean())


def _ridged(covariance: np.ndarray) -> np.ndarray:
    return covariance + RIDGE * np.trace(covariance) / len(covariance) * np.eye(len(covariance))


def _precision(covariance: np.ndarray) -> np.ndarray:
    return np.linalg.inv(_ridged(covariance))


def _squared_distances(f: np.ndarray, means: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """(N, classes) squared Mahalanobis distances of features f (N, d) to each mean, under one precision."""
    fp = f @ precision
    return ((fp * f).sum(1)[:, None] - 2 * fp @ means.T + ((means @ precision) * means).sum(1)[None])
