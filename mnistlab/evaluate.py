"""Evaluation: a classifier's accuracy and confusion matrix, and a generator's measured quality.

`evaluate_classifier` and `evaluate_gan` return exactly what `mnistlab evaluate ... --json` prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mnistlab import ood
from mnistlab.calibration import calibration_report, fit_temperature, nll
from mnistlab.checkpoint import load_checkpoint, read_checkpoint_header, resolve_checkpoint, save_checkpoint
from mnistlab.data.datasets import Dataset, load_dataset
from mnistlab.data.download import md5sum
from mnistlab.errors import MnistlabError
from mnistlab.inference import Classifier, classify, load
from mnistlab.metrics import FeatureStats, feature_stats, frechet_distance, inception_score, sample_quality


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
    """Accuracy, per-class accuracy, confusion matrix and calibration on a dataset's test split.

    The dataset defaults to the one the run was trained on; several runs (a list, or paths joined by
    commas) are evaluated as one ensemble, their calibrated probabilities averaged. `calibration` holds the
    expected calibration error (15 bins) and the NLL before and after the run's temperature; given a run
    directory, its reliability diagram is written there as calibration.png.

    >>> report = evaluate_classifier("runs/cnn-seed")
    >>> round(report["accuracy"], 1), report["n"]  # two epochs of the seed CNN, the sample's 1,000 test digits
    (0.9, 1000)
    >>> report["calibration"]["temperature"] > 0, 0 <= report["calibration"]["ece_after"] <= 1
    (True, True)
    """

    classifier = load(run_or_checkpoint, device=device, kind="cnn")
    data = load_dataset(dataset, data_root, splits=("test",)) if dataset else test_split_of(classifier, data_root)
    if classifier.members:  # an ensemble: its averaged, already calibrated probabilities, as log-probabilities
        logits = torch.from_numpy(classifier.probabilities(data.test.images)).clamp_min(1e-12).log()
        temperature = 1.0
    else:
        logits, _ = classify(classifier.model, data.test.images, classifier.device, classifier.dtype)
        temperature = classifier.temperature
    report = classification_report(logits, data.test.labels, data.classes)
    report.update(dataset=data.name, checkpoint=str(classifier.path),
                  calibration=calibration_report(logits, data.test.labels, temperature))
    if data.provenance.get("test_files"):  # a folder of the user's images: name the ones misread
        predicted = logits.argmax(1).tolist()
        report["mistakes"] = [{"file": f, "true": data.classes[t], "predicted": data.classes[p]}
                              for f, t, p in zip(data.provenance["test_files"], data.test.labels.tolist(), predicted)
                              if t != p]
    if classifier.members:
        report["members"] = [str(m.path) for m in [classifier, *classifier.members]]
    if Path(run_or_checkpoint).is_dir():
        from mnistlab import plots

        plots.save(plots.reliability_diagram(report["calibration"]), Path(run_or_checkpoint) / "calibration.png")
    return report


def test_split_of(classifier: Classifier, data_root: str | Path | None = None) -> Dataset:
    """The test split of the data a run was trained on: its dataset's own, or its test folder (run.test_dir,
    as the run resolved it, wherever this runs from)."""
    provenance = read_checkpoint_header(classifier.path).state["dataset"]
    test_dir = provenance.get("test_dir")
    return load_dataset(classifier.dataset, data_root, splits=("test",), framing=provenance.get("framing", "digit"),
                        test_dir=test_dir.removeprefix("images:") if test_dir else None)


def fit_answers(model: torch.nn.Module, dataset, device: Any, dtype: Any,
                digitness: bool = True) -> tuple[float, dict[str, Any] | None]:
    """What makes a run's answers trustworthy, fitted without the test split: the temperature that calibrates
    `model` on the validation split, and its digitness scale (`mnistlab.ood`: the training digits' feature
    density, scaled by the validation digits'). (1.0, None) without a validation split."""
    val = dataset.val
    if val is None or len(val) == 0:
        return 1.0, None
    logits, features = classify(model, val.images, device, dtype)
    temperature = fit_temperature(logits, val.labels)
    if not digitness or dataset.train is None or len(dataset.train) == 0:
        return temperature, None
    _, train_features = classify(model, dataset.train.images, device, dtype)
    scorer = ood.fit(ood.KEPT_METHOD, train_features, dataset.train.labels, logits, features, temperature)
    return temperature, scorer.to_state()


def calibrate(run_or_checkpoint: str | Path, data_root: str | None = None, device: str = "auto") -> dict[str, Any]:
    """Fit a CNN run's temperature and digitness scale (`fit_answers`) and store them in its checkpoint (for
    runs made before they were fitted at the end of training, or to refit). Returns the temperature and the
    validation NLL before and after."""
    path = resolve_checkpoint(run_or_checkpoint, "last")
    state = load_checkpoint(path, kind="cnn", which="last")
    classifier = load(path, device=device, kind="cnn")
    val_size = state["config"].get("train", {}).get("val_size")
    data = load_dataset(classifier.dataset, data_root, val_size=val_size, splits=("train", "val"))
    if data.val is None or len(data.val) == 0:
        raise MnistlabError(f"{path} was trained without a validation split: there is nothing to fit a "
                            "temperature on that the run has not trained on")
    temperature, digitness = fit_answers(classifier.model, data, classifier.device, classifier.dtype)
    state["temperature"] = temperature
    if digitness is not None:
        state["digitness"] = digitness
    save_checkpoint(path, "cnn", {k: v for k, v in state.items() if k not in ("kind", "role")})
    logits, _ = classify(classifier.model, data.val.images, classifier.device, classifier.dtype)
    return {"checkpoint": str(path), "temperature": temperature, "n_val": len(data.val),
            "nll_before": nll(logits, data.val.labels), "nll_after": nll(logits, data.val.labels, temperature),
            "digitness": digitness is not None}


# ----------------------------------------------------------------------------------------------
# Generated digits

# The CNN that scores generated digits: v2 trained on full MNIST's 60,000 training digits (test accuracy 0.9962),
# v1 on mnist-sample's 4,000 (scripts/make_evaluator.sh). FCDs from different versions are not comparable.
EVALUATOR = Path(__file__).parent / "assets" / "evaluator-v2.safetensors"


@dataclass
class QualityJudge:
    """A fixed classifier plus the real data's feature statistics: scores batches of generated digits."""

    classifier: Any  # inference.Classifier
    name: str  # which checkpoint, with its MD5, so numbers are comparable across runs
    reference: FeatureStats  # real test images' features
    floor: float  # FCD between real training and real test images: the best a generator can hope for
    n_floor: int  # training images behind the floor
    inception_score_real: float  # the real test set's Inception Score

    def __call__(self, images: np.ndarray, asked: torch.Tensor | None = None) -> dict[str, Any]:
        """Quality of uint8 (N, 28, 28) digits; with `asked` (the digits a conditional generator was asked
        for), also the share the classifier reads as the digit asked for."""
        logits, features = classify(self.classifier.model, torch.from_numpy(images), self.classifier.device,
                                    self.classifier.dtype)
        report = sample_quality(logits, features, self.reference)
        if asked is not None:
            report["asked_digit_accuracy"] = (logits.argmax(1) == asked.cpu()).float().mean().item()
        return report


def quality_judge(
    data: Any, classifier: str | Path | None = None, n_floor: int = 10000, device: str = "auto"
) -> QualityJudge:
    """Build the judge for a dataset's generated digits; `classifier` defaults to the shipped evaluator."""

    if classifier is None:  # it reads MNIST's digits: also a folder's framed as digits (images:DIR, framing digit)
        if data.name not in ("mnist", "mnist-sample") and data.provenance.get("framing") != "digit":
            raise MnistlabError(f"the shipped evaluator reads digits, not {data.name}; pass --classifier CNN_RUN "
                                f"trained on {data.name}")
        classifier = EVALUATOR
    if len(data.test) < 2:
        raise MnistlabError(f"{data.name} has {len(data.test)} test image(s); the FCD needs at least 2")
    judge = load(classifier, device=device, kind="cnn", precision="fp32")  # fp32: comparable on any machine
    test_logits, test_features = classify(judge.model, data.test.images, judge.device, judge.dtype)
    reference = feature_stats(test_features)
    train = data.train.images[:n_floor]
    _, train_features = classify(judge.model, train, judge.device, judge.dtype)
    return QualityJudge(
        classifier=judge,
        name=f"{judge.path.name} (md5 {md5sum(judge.path)[:12]})",
        reference=reference,
        floor=frechet_distance(feature_stats(train_features), reference),
        n_floor=len(train),
        inception_score_real=inception_score(torch.softmax(test_logits, 1)),
    )


def evaluate_gan(
    run_or_checkpoint: str | Path, classifier: str | Path | None = None, n: int = 10000, dataset: str | None = None,
    data_root: str | None = None, seed: int = 0, device: str = "auto", checkpoint: str | None = None,
) -> dict[str, Any]:
    """FCD (with its real-data floor), Inception Score and mode coverage of `n` generated digits; for a
    conditional GAN (digits drawn uniformly) also how often the digit drawn is the digit asked for.
    `checkpoint`: "best", "last" or None, best when the run kept one (`mnistlab.inference.load`); the report
    names the file (`checkpoint`) and its role (`checkpoint_role`).

    >>> r = evaluate_gan("runs/gan-default", n=500)  # a --dry-run GAN: 3 steps, so far from the floor
    >>> r["fcd"] > 10 * r["fcd_real_floor"], 0 <= r["class_entropy"] <= 2.303
    (True, True)
    """

    if n < 2:
        raise MnistlabError(f"-n must be at least 2 (the FCD needs a covariance), got {n}")
    generator = load(run_or_checkpoint, device=device, kind="gan", checkpoint=checkpoint)
    framing = read_checkpoint_header(generator.path).state["config"].get("run", {}).get("framing", "digit")
    data = load_dataset(dataset or generator.dataset, data_root, val_size=0, splits=("train", "test"),
                        framing=framing, need_labels=False)
    judge = quality_judge(data, classifier, n_floor=n, device=device)
    latent = generator.latents(n, seed)
    report = judge(generator.images(latent), asked=generator.gan.asked_digits(latent))
    report.update(
        fcd_real_floor=judge.floor, n_real_floor=judge.n_floor, inception_score_real=judge.inception_score_real,
        feature_extractor=judge.name, feature_dim=judge.reference.mean.shape[0], dataset=data.name,
        checkpoint=str(generator.path), checkpoint_role=generator.checkpoint, seed=seed,
    )
    return report
