"""Evaluation: a classifier's accuracy and confusion matrix, and a generator's measured quality.

`evaluate_classifier` and `evaluate_gan` return exactly what `mnistlab evaluate ... --json` prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mnistlab.train.common import autocast


@torch.no_grad()
def classify(
    model: torch.nn.Module, images: torch.Tensor, device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None, batch_size: int = 2000,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, penultimate features) of a CNN, both float32 on the CPU.

    `images` are uint8 (N, 28, 28) in 0..255 or float (N, 28, 28) / (N, 1, 28, 28) in [0, 1].
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    logits, features = [], []
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].to(device)
        x = x.float().div(255) if x.dtype == torch.uint8 else x.float()
        x = x.view(-1, 1, 28, 28).contiguous(memory_format=torch.channels_last)
        with autocast(device, dtype):
            f = model.embed(x)
            out = model.logits(f)
        logits.append(out.float().cpu())
        features.append(f.float().cpu())
    model.train(was_training)
    if not logits:
        return torch.empty(0, 10), torch.empty(0, getattr(model, "embedding_dim", 0))
    return torch.cat(logits), torch.cat(features)


def classification_report(logits: torch.Tensor, labels: torch.Tensor, classes: list[str]) -> dict[str, Any]:
    """Accuracy, per-class accuracy and the confusion matrix (rows: true class, columns: predicted)."""
    predicted = logits.argmax(1)
    k = len(classes)
    confusion = torch.bincount(labels * k + predicted, minlength=k * k).view(k, k)
    per_class_n = confusion.sum(1).clamp(min=1)
    return {
        "accuracy": (predicted == labels).float().mean().item() if len(labels) else 0.0,
        "n": len(labels),
        "per_class": {c: round(confusion[i, i].item() / per_class_n[i].item(), 6) for i, c in enumerate(classes)},
        "confusion": confusion.tolist(),
        "classes": list(classes),
    }


def evaluate_classifier(
    run_or_checkpoint: str | Path, dataset: str | None = None, data_root: str | None = None, device: str = "auto",
) -> dict[str, Any]:
    """Accuracy, per-class accuracy and confusion matrix on a dataset's test split.

    The dataset defaults to the one the run was trained on.

    >>> report = evaluate_classifier("runs/cnn-seed-20260101-120000")
    >>> report["accuracy"], report["n"]
    (0.9863, 10000)
    """
    from mnistlab.data.datasets import load_dataset
    from mnistlab.inference import load

    classifier = load(run_or_checkpoint, device=device, kind="cnn")
    name = dataset or classifier.dataset
    data = load_dataset(name, data_root, splits=("test",))
    logits, _ = classify(classifier.model, data.test.images, classifier.device, classifier.dtype)
    report = classification_report(logits, data.test.labels, data.classes)
    report.update(dataset=data.name, checkpoint=str(classifier.path))
    return report
