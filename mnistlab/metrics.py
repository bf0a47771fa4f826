"""How good are generated digits? Measured with a trained classifier, as the FID authors advise for MNIST.

- Fréchet Classifier Distance (FCD): the Fréchet distance between Gaussians fitted to the classifier's
  penultimate-layer features of generated and of real images (FID with a digit classifier instead of
  InceptionV3). Its floor is the same distance between two real sets (train vs test).
- Inception Score: exp E[KL(p(y|x) ‖ p(y))]; 10 is the most a 10-class classifier can give.
- Mode coverage: the histogram of predicted classes, its entropy (ln 10 ≈ 2.303 is perfectly even),
  and the share of samples the classifier is confident about (max probability ≥ 0.9).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import torch

CONFIDENT = 0.9


@dataclass(frozen=True)
class FeatureStats:
    mean: np.ndarray  # (d,)
    cov: np.ndarray  # (d, d)
    n: int


def feature_stats(features: torch.Tensor) -> FeatureStats:
    f = features.double().numpy()
    return FeatureStats(f.mean(0), np.cov(f, rowvar=False), len(f))


def frechet_distance(a: FeatureStats, b: FeatureStats) -> float:
    """‖μa − μb‖² + Tr(Σa + Σb − 2 (Σa Σb)^½), with the usual ε-jitter when the product is singular."""
    diff = a.mean - b.mean
    with warnings.catch_warnings():  # dead ReLU units make Σ singular; the jitter below handles it
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(a.cov @ b.cov)
        if not np.isfinite(covmean).all():
            offset = np.eye(len(a.cov)) * 1e-6
            covmean = scipy.linalg.sqrtm((a.cov + offset) @ (b.cov + offset))
    covmean = covmean.real
    return float(max(diff @ diff + np.trace(a.cov) + np.trace(b.cov) - 2 * np.trace(covmean), 0.0))


def inception_score(probs: torch.Tensor) -> float:
    """exp of the mean KL divergence between each p(y|x) and the marginal p(y)."""
    p = probs.double().clamp_min(1e-12)
    marginal = p.mean(0, keepdim=True)
    return float(torch.exp((p * (p.log() - marginal.log())).sum(1).mean()))


def class_coverage(probs: torch.Tensor) -> dict[str, Any]:
    """Histogram of predicted classes, its entropy (nats), and the confident share."""
    k = probs.shape[1]
    histogram = torch.bincount(probs.argmax(1), minlength=k)
    share = histogram.double() / max(1, len(probs))
    nonzero = share[share > 0]
    return {
        "class_histogram": histogram.tolist(),
        # + 0.0: one class alone gives -(1 · ln 1) = -0.0, which would print as "-0.000"
        "class_entropy": float(-(nonzero * nonzero.log()).sum()) + 0.0,
        "confident_fraction": float((probs.max(1).values >= CONFIDENT).double().mean()) if len(probs) else 0.0,
    }


def sample_quality(logits: torch.Tensor, features: torch.Tensor, reference: FeatureStats) -> dict[str, Any]:
    """All the generated-sample metrics from the classifier's outputs on them."""
    probs = torch.softmax(logits.float(), 1)
    return {
        "fcd": frechet_distance(feature_stats(features), reference),
        "inception_score": inception_score(probs),
        **class_coverage(probs),
        "n": len(logits),
    }
