"""The commands that read a person's images, `predict` (one digit each) and `read` (a number each): their
flags, and their text and JSON output. Both answer "not a digit" or "unsure: 4 or 9" rather than a confident
wrong digit (`mnistlab.ood`), unless --no-abstain."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

NO_ABSTAIN = "always name the likeliest digit, even for a mark that is not digit-like or not clearly one digit"


def add_reading_commands(commands: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    p = commands.add_parser("predict", help="read digits from your own image files", description=(
        "Classify PNG/JPEG images of single digits (dark on light or light on dark, any size). Each image gets "
        "MNIST's own normalisation first: crop to the ink, fit in 20x20, pad to 28x28, centre the mass."))
    p.add_argument("checkpoint", metavar="RUN_OR_CHECKPOINT")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--json", action="store_true",
                   help="print a JSON list of {file, digit, label, probabilities, digitness, threshold, reason?}")
    p.add_argument("--no-abstain", action="store_true", help=NO_ABSTAIN)
    p.set_defaults(handler=cmd_predict)

    p = command(commands, "read", "read written numbers, 1 to 10 digits on a line, from photos or scans")
    p.add_argument("checkpoint", metavar="RUN_OR_CHECKPOINT")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--json", action="store_true", help="print a JSON list of {file, text, digits: [{digit, "
                   "probabilities, digitness, reason?, box}], threshold} or {file, error}")
    p.add_argument("--no-abstain", action="store_true", help=NO_ABSTAIN)
    p.set_defaults(handler=cmd_read)


def cmd_predict(args: argparse.Namespace) -> None:
    from mnistlab.inference import load

    classifier = load(args.checkpoint, device="cpu", kind="cnn")
    results = classifier.predict([Path(p) for p in args.images], abstain=not args.no_abstain)
    if args.json:
        print(json.dumps([{"file": f, **{k: v for k, v in r.items() if k != "image"}, **_threshold(r)}
                          for f, r in zip(args.images, results)]))
        return
    for f, r in zip(args.images, results):
        top = sorted(range(len(r["probabilities"])), key=lambda i: -r["probabilities"][i])[:3]
        alternatives = ", ".join(f"{classifier.classes[i]} {r['probabilities'][i]:.3f}" for i in top)
        print(f"{f}: {r.get('reason') or r['label']}   ({alternatives}{_digitness(r['digitness'])})")


def cmd_read(args: argparse.Namespace) -> int:
    from mnistlab.inference import load

    classifier = load(args.checkpoint, device="cpu", kind="cnn")
    results = classifier.read([Path(p) for p in args.images], names=args.images, abstain=not args.no_abstain)
    if args.json:
        print(json.dumps([{**r, **_threshold(r["digits"][0])} if "digits" in r else r for r in results]))
    for r in results:
        if "error" in r:
            print(f"mnistlab: error: {r['error']}", file=sys.stderr)
        elif not args.json:
            marks = "  ".join(d.get("reason") or f"{d['digit']} {max(d['probabilities']):.3f}" for d in r["digits"])
            print(f"{r['file']}: {r['text']}   ({marks})")
    return 2 if any("error" in r for r in results) else 0


def _threshold(answer: dict[str, Any]) -> dict[str, float]:
    """The digitness under which a mark is "not a digit", beside the scores (none without a scale)."""
    from mnistlab.ood import KEEP

    return {} if answer.get("digitness") is None else {"threshold": round(1 - KEEP, 6)}


def _digitness(value: float | None) -> str:
    return "" if value is None else f"; digit-like as {value:.1%} of validation digits are less"
