"""The `train` commands: a CNN or a DCGAN from a preset and the flags given, a group of CNNs over seeds
(`--seeds`), or a CNN fine-tuned on a person's digits (`--from RUN --dataset images:DIR`), which starts
from the run's own settings and the measured fine-tuning recipe (`mnistlab.fine_tune`)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from mnistlab.cli_options import add_train_options, parse_seeds, train_overrides
from mnistlab.config import CONFIG_TYPES, PRESETS, preset, with_overrides
from mnistlab.errors import MnistlabError

DEFAULT_PRESETS = {"cnn": "seed", "gan": "default"}


def add_training_commands(commands: Any) -> None:
    train = commands.add_parser("train", help="train a CNN or a DCGAN", description="Train a CNN or a DCGAN.")
    train_kinds = train.add_subparsers(title="what to train", metavar="KIND")
    for kind, what, summary in (("cnn", "a CNN", "train a digit classifier"),
                                ("gan", "a DCGAN", "train a DCGAN that draws digits")):
        names = ", ".join(PRESETS[kind])
        p = train_kinds.add_parser(kind, help=summary, description=(
            f"Train {what} from a preset ({names}; the README describes each). Every setting below overrides "
            "the preset's; so do a TOML --config and --set KEY=VALUE, in that order of precedence, flags last."))
        after = "; with --from, the run's own" if kind == "cnn" else ""
        p.add_argument("--preset", metavar="NAME", help=f"one of {names} (default: {DEFAULT_PRESETS[kind]}{after})")
        add_train_options(p, CONFIG_TYPES[kind])
        if kind == "cnn":
            p.add_argument("--seeds", metavar="A-B|A,B,...", help="one run per seed, grouped in --out (or runs/cnn-"
                           "PRESET-seeds-...): the members of an ensemble, which every command reads as one")
        p.set_defaults(handler=cmd_train, kind=kind)


def cmd_train(args: argparse.Namespace) -> None:
    overrides = train_overrides(args)
    if args.resume and overrides:
        raise MnistlabError(f"--resume continues a run with its own config; drop {', '.join(sorted(overrides))}")
    if args.kind == "cnn" and "run.init_from" in overrides:
        return _fine_tune(args, overrides)
    # The config first: a wrong preset or setting is reported at once, not after importing torch.
    name = args.preset or DEFAULT_PRESETS[args.kind]
    config = None if args.resume else with_overrides(preset(args.kind, name), overrides)
    if getattr(args, "seeds", None):
        return _train_group(args, config)
    if args.kind == "cnn":
        from mnistlab.train.classifier import train_classifier as train
    else:
        from mnistlab.train.gan import train_gan as train
    run = train(config, resume=args.resume, progress=not args.no_progress)
    if int(os.environ.get("RANK", 0)) == 0:  # under torchrun, rank 0 reports
        print(run.summary())


def _fine_tune(args: argparse.Namespace, overrides: dict[str, Any]) -> None:
    """`--from RUN`: the run's network and settings, the fine-tuning recipe, then the flags given."""
    from mnistlab.train.classifier import cnn_source, fine_tune

    source, dataset = overrides.pop("run.init_from"), overrides.pop("run.dataset", None)
    if getattr(args, "seeds", None):
        raise MnistlabError("--seeds trains new runs from scratch; --from fine-tunes one run: drop one of them")
    if dataset is None:
        raise MnistlabError(f"--from {source} fine-tunes on your own digits: give them with --dataset images:DIR "
                            "(folders 0-9)")
    network = cnn_source(source).state["config"]["preset"]
    if args.preset and args.preset != network:
        raise MnistlabError(f"--from {source}: it is a {network} network, not {args.preset}; drop --preset, or "
                            f"give --preset {network}")
    print(fine_tune(source, str(dataset), progress=not args.no_progress, **overrides).summary())


def _train_group(args: argparse.Namespace, config: Any) -> None:
    from mnistlab.train.classifier import train_group

    if args.resume:
        raise MnistlabError("--seeds trains a new group; to finish an interrupted one, run the same command with "
                            "its --out: members already trained are kept")
    runs = train_group(config, parse_seeds(args.seeds), progress=not args.no_progress)
    for run in runs:
        print(run.summary())
    print(f"the group, read as one ensemble by every command: {runs[0].dir.parent}")
