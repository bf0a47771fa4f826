"""How well a CNN run knows a digit from what is not one (issue #25): each digit-likeness scorer of
`mnistlab.ood`, digits against non-digits, and the run's own refusals at its stored threshold.

    python scripts/ood_bench.py --runs RUN... --split dev    # choose here: validation digits, seed-1 non-digits
    python scripts/ood_bench.py --runs RUN... --split test   # report here: test digits, seed-0 non-digits

Digits: MNIST's validation split (dev) or its official test split (test). Non-digits, never trained on:
Fashion-MNIST (its training split for dev, its test split for test) as it is and as an upload is framed,
letters, symbols, shapes and scribbles from `mnistlab.photo.marks` (framed as uploads are), uniform noise,
a few specks, and photos of non-digits from `mnistlab.photo.synth` beside photos of single test digits
(both through `Classifier.predict`, the page-to-ink stage included). For each scorer: AUROC (digits against
each set) and the share of the set kept when 95 % of digits are; then, for the run as saved (its
`digitness` scale), the share of each set refused ("not a digit") and of digit photos still read and right.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from mnistlab import ood
from mnistlab.data.datasets import load_dataset
from mnistlab.inference import classify, load
from mnistlab.photo.frame import to_mnist_batch
from mnistlab.photo.marks import make_marks
from mnistlab.photo.synth import make_non_digit_photos, make_photos


def non_digits(split: str, count: int, seed: int) -> dict[str, torch.Tensor]:
    """Each set of non-digit images, (N, 28, 28): uint8 as stored, or floats in [0, 1] as framed."""
    fashion = load_dataset("fashion-mnist", splits=("train",) if split == "dev" else ("test",))
    clothes = (fashion.train if split == "dev" else fashion.test).images[:count]
    marks, _ = make_marks(count, seed=seed)
    rng = np.random.default_rng([seed, 7])
    specks = np.zeros((count // 4, 28, 28), np.uint8)
    for image in specks:  # one to three dots of ink: what a speck of dust or a stray touch leaves
        for y, x in rng.integers(2, 26, (rng.integers(1, 4), 2)):
            image[y - 1 : y + 1, x - 1 : x + 1] = 255
    return {"Fashion-MNIST": clothes, "Fashion-MNIST, framed as an upload": to_mnist_batch(list(clothes.numpy())),
            "letters, symbols, shapes, scribbles": to_mnist_batch(list(marks)),
            "uniform noise": torch.from_numpy(rng.integers(0, 256, (count // 4, 28, 28), dtype=np.uint8)),
            "specks, framed": to_mnist_batch(list(specks))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", required=True, help="CNN run directories")
    parser.add_argument("--split", choices=("dev", "test"), default="dev")
    parser.add_argument("--count", type=int, default=2000, help="images in each non-digit set")
    parser.add_argument("--photos", type=int, default=200, help="photos of digits, and of non-digits")
    args = parser.parse_args()
    seed = 1 if args.split == "dev" else 0
    mnist = load_dataset("mnist")
    digits = mnist.val if args.split == "dev" else mnist.test
    sets = non_digits(args.split, args.count, seed)
    digit_photos = make_photos(args.photos, seed=seed, digits="mnist")
    other_photos = make_non_digit_photos(args.photos, seed=seed)
    print(f"digits: {len(digits)} MNIST {'validation' if args.split == 'dev' else 'test'} digits; non-digits: "
          + ", ".join(f"{name} {len(x)}" for name, x in sets.items())
          + f"; photos: {len(digit_photos)} of single digits, {len(other_photos)} of non-digits (seed {seed})")
    for run in args.runs:
        classifier = load(run)
        model, device, dtype = classifier.model, classifier.device, classifier.dtype
        train = mnist.train
        _, train_features = classify(model, train.images, device, dtype)
        val_logits, val_features = classify(model, mnist.val.images, device, dtype)
        inside = classify(model, digits.images, device, dtype)
        outside = {name: classify(model, x, device, dtype) for name, x in sets.items()}
        print(f"\n## {run}\n")
        print("| scorer | " + " | ".join(f"{name}: AUROC / kept at 95 % TPR" for name in sets) + " |")
        print("|---|" + "---|" * len(sets))
        for method in ood.METHODS:
            scorer = ood.fit(method, train_features, train.labels, val_logits, val_features, classifier.temperature)
            scores = scorer.score(*inside)
            cells = [f"{ood.auroc(scores, scorer.score(*o)):.4f} / {ood.fpr_at_tpr(scores, scorer.score(*o)):.3f}"
                     for o in outside.values()]
            print(f"| {method} | " + " | ".join(cells) + " |")
        if classifier.digitness is None:
            print("\n(the run has no digitness scale: `mnistlab calibrate RUN` fits one)")
            continue
        kept = np.asarray(classifier.assess(digits.images)[1]) >= 1 - ood.KEEP
        refused = {name: 1 - float(np.mean(np.asarray(classifier.assess(x)[1]) >= 1 - ood.KEEP))
                   for name, x in sets.items()}
        read = classifier.predict([p.image for p in digit_photos])
        named = [r["digit"] is not None for r in read]
        right = [r["digit"] == p.labels[0] for r, p in zip(read, digit_photos)]
        others = classifier.predict([p.image for p in other_photos])
        not_digits = np.mean([r.get("reason") == "not a digit" for r in others])
        any_refusal = np.mean([r["digit"] is None for r in others])
        print(f"\nas saved ({classifier.digitness.method}, keeping {ood.KEEP:.1%} of validation digits): digits kept "
              f"{kept.mean():.4f}; refused as not a digit: "
              + ", ".join(f"{name} {share:.3f}" for name, share in refused.items()))
        print(f"photos of single digits: a digit named {np.mean(named):.3f}, the right one {np.mean(right):.3f}; "
              f"photos of non-digits: 'not a digit' {not_digits:.3f}, no digit named at all {any_refusal:.3f}")
        digit_scores = np.array([r["digitness"] for r in read])
        other_scores = np.array([r["digitness"] for r in others])
        print(f"photos, digitness alone: AUROC {ood.auroc(digit_scores, other_scores):.4f}; with the threshold "
              f"moved to keep 98 % of digit photos, non-digit photos refused "
              f"{1 - ood.fpr_at_tpr(digit_scores, other_scores, 0.98):.3f}")
        by_kind: dict[str, list[bool]] = {}
        for r, p in zip(others, other_photos):
            by_kind.setdefault(p.conditions["mark"], []).append(r["digit"] is None)
        print("non-digit photos refused, by what is on them: " + ", ".join(
            f"{kind} {np.mean(refused):.2f} (n = {len(refused)})" for kind, refused in sorted(by_kind.items())))


if __name__ == "__main__":
    main()
