"""The training flags, derived from the config dataclasses (one per field, its help the field's comment),
and the overrides they, --config and --set give."""

from __future__ import annotations

import argparse
import typing
from dataclasses import fields
from typing import Any

from mnistlab.config import SECTIONS, load_toml, parse_assignment
from mnistlab.errors import MnistlabError
from mnistlab.fields import Typed, describe, field_help


def add_train_options(p: argparse.ArgumentParser, config_type: type) -> None:
    """One flag per config field (`train.batch_size` → --batch-size), in a group per section, its help the
    field's comment; then the ways to override many at once, and --resume."""
    for section in SECTIONS:
        section_type = typing.get_type_hints(config_type)[section]
        group = p.add_argument_group(f"{section} settings", section_type.__doc__)
        hints, comments = typing.get_type_hints(section_type, include_extras=True), field_help(section_type)
        for f in fields(section_type):
            flag, hint, comment = "--" + f.name.replace("_", "-"), hints[f.name], comments.get(f.name, "")
            if hint is bool:
                group.add_argument(flag, dest=f"{section}.{f.name}", action=argparse.BooleanOptionalAction,
                                   default=argparse.SUPPRESS, help=comment)
                continue
            choices = typing.get_args(hint) if typing.get_origin(hint) is typing.Literal else ()
            metavar = "{" + ",".join(choices) + "}" if choices else f.name.upper()
            allowed = "" if choices else f" [{describe(hint)}]"
            group.add_argument(flag, dest=f"{section}.{f.name}", type=Typed, default=argparse.SUPPRESS,
                               metavar=metavar, help=(comment + allowed).replace("%", "%%"))
    if "init_from" in {f.name for f in fields(typing.get_type_hints(config_type)["run"])}:
        p.add_argument("--from", dest="run.init_from", type=Typed, default=argparse.SUPPRESS, metavar="RUN",
                       help="fine-tune: start from this CNN run's weights (= --init-from)")
    p.add_argument("--config", metavar="FILE.toml", help="TOML overrides: [model], [train] and [run] tables")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any setting, e.g. --set filters=[8,16,32] --set model.batch_norm=true")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue that run from its checkpoint, with its own config")
    p.add_argument("--no-progress", action="store_true", help="no progress bars or per-epoch lines")


def train_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given: a TOML --config, then each --set, then the flags (later wins)."""
    overrides: dict[str, Any] = {}
    for source in (load_toml(args.config).items() if args.config else (), map(parse_assignment, args.set),
                   ((key, value) for key, value in vars(args).items() if "." in key)):  # flags' dests: section.name
        for key, value in source:
            overrides.pop(key, None)  # to the end: with_overrides applies "fc" and "model.fc" in this order
            overrides[key] = value
    return overrides


def parse_seeds(spec: str) -> list[int]:
    """"0-4" or "0,2,7" -> the seeds."""
    try:
        if "-" in spec:
            first, last = (int(v) for v in spec.split("-"))
            seeds = list(range(first, last + 1))
        else:
            seeds = [int(v) for v in spec.split(",")]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0:
        raise MnistlabError(f"--seeds takes A-B or A,B,... with seeds 0 or more, got {spec!r}")
    return seeds
