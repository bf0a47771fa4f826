"""What a run directory says about itself, read without torch and without loading a single tensor.

A run directory holds `config.json`, `metrics.jsonl` and (after the first epoch) `checkpoint.safetensors`,
the last checkpoint; a GAN run also keeps `best.safetensors`, the generator that scored the best FCD at its
quality evaluations. The JSON header carries mnistlab's own metadata: `{"format_version", "kind", "state"}`
(and `"role": "best"` in best.safetensors),
where `state` is the skeleton `mnistlab.checkpoint.pack` writes: an object is `{"__dict__": [[key,
value], ...]}` (an int key as `{"int": k}`), a tensor is `{"__tensor__": name}`, lists and scalars
are themselves. Everything read here is validated where it enters, and anything broken raises a
one-line `MnistlabError` (`CheckpointError` for the checkpoint); listing runs, choosing the runs to
serve and loading a checkpoint (`mnistlab.checkpoint.load_checkpoint`) all go through it.

    >>> read_checkpoint_header("runs/cnn-seed/checkpoint.safetensors").kind
    'cnn'
    >>> read_run_info("runs/gan-default").preset
    'default'
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnistlab.errors import CheckpointError, MnistlabError, one_line

FORMAT_VERSION = 1
KINDS = frozenset({"cnn", "gan"})
CHECKPOINT_NAME = "checkpoint.safetensors"
BEST_NAME = "best.safetensors"
CHECKPOINT_FILES = {"last": CHECKPOINT_NAME, "best": BEST_NAME}  # a run's checkpoints, by role
CONFIG_NAME = "config.json"
METRICS_NAME = "metrics.jsonl"
RUN_FILES = (CONFIG_NAME, METRICS_NAME, CHECKPOINT_NAME)
METADATA_KEY = "mnistlab"  # the safetensors metadata entry that holds mnistlab's JSON header
TENSOR_MARK, DICT_MARK, INT_KEY = "__tensor__", "__dict__", "int"  # the skeleton's markers, see above


@dataclass(frozen=True)
class TensorRef:
    """Where a decoded skeleton holds a tensor: its name in the safetensors file."""

    name: str


@dataclass(frozen=True)
class CheckpointHeader:
    """A checkpoint's validated metadata; `state` is the decoded skeleton, each tensor a `TensorRef`."""

    path: Path
    format_version: int
    kind: str
    state: dict[str, Any]
    role: str = "last"  # "last" (checkpoint.safetensors, resumable) or "best" (best.safetensors, a generator)


@dataclass(frozen=True)
class RunInfo:
    """One run directory as its small files and its checkpoint's header describe it."""

    path: Path  # the run directory
    kind: str  # "cnn" or "gan"
    preset: str
    dataset: str  # the dataset it trained on, "?" when nothing says
    config: dict[str, Any]
    metrics: list[dict[str, Any]]  # one dict per finished epoch
    checkpoint: CheckpointHeader | None  # None before the first epoch finished
    best: CheckpointHeader | None = None  # best.safetensors: a GAN's best generator, None when it has none


# ----------------------------------------------------------------------------------------------
# Schemas: a compact notation for "what JSON must look like here"
#
# A type is an isinstance check (float: any number; bool is never a number); a tuple is "any of these";
# a frozenset is "one of these values"; [item] is an array of items; a dict is an object with these
# keys ("key?" optional, "*" every other key), extra keys allowed unless "*" constrains them.

_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "a boolean", list: "an array",
          dict: "an object", type(None): "null", TensorRef: "a tensor"}

_CONFIG = {"preset": str, "kind?": KINDS, "model?": dict, "train?": dict, "run?": {"dataset?": str}}
_METRIC = {"epoch": int, "time_s?": float, "test_acc?": (float, None), "fcd?": (float, None), "d_x?": (float, None),
           "fcd_real_floor?": (float, None)}
_TENSORS = {"*": TensorRef}
_OPTIMIZER = {"state": dict, "param_groups": [dict]}
_STATE_COMMON = {
    "config": _CONFIG, "model": _TENSORS, "rng": {"torch": TensorRef}, "epoch": int, "step_in_epoch": int,
    "metrics": [_METRIC], "dataset": {"name": str, "files": {"*": str}}, "environment?": dict,
}
STATE_SCHEMA = {
    # epoch_stats: (steps, 1) since the one training loop; CNN runs before it wrote epoch_losses (steps,)
    "cnn": {**_STATE_COMMON, "optimizer": _OPTIMIZER, "epoch_stats?": TensorRef, "epoch_losses?": TensorRef,
            "elapsed_s?": float, "classes": [str], "temperature?": float,
            "digitness?": {"method": frozenset(("msp", "energy", "mahalanobis", "gda")), "quantiles": TensorRef,
                           "means?": TensorRef, "precisions?": TensorRef, "log_dets?": TensorRef}},
    "gan": {**_STATE_COMMON, "optimizer_d": _OPTIMIZER, "optimizer_g": _OPTIMIZER, "ema?": _TENSORS,
            "epoch_stats": TensorRef, "elapsed_s": float, "best_fcd?": float},
    # best.safetensors: the weights that drew the samples of its best evaluation (G, or its EMA), that epoch's
    # metrics and FCD; no optimiser, so nothing resumes from it
    "gan-best": {"config": _CONFIG, "generator": _TENSORS, "epoch": int, "fcd": float, "metrics": [_METRIC],
                 "dataset": _STATE_COMMON["dataset"], "environment?": dict},
}


class SchemaError(ValueError):
    """A value that does not match its schema; the message names where and what was expected."""


def check(value: Any, schema: Any, where: str) -> None:
    """Raise `SchemaError` unless `value` matches `schema` (the notation above)."""
    if isinstance(schema, dict):
        _expect(value, dict, where)
        for key, sub in schema.items():
            name = key.removesuffix("?")
            if key == "*":
                for other in value.keys() - {k.removesuffix("?") for k in schema}:
                    check(value[other], sub, f"{where}.{other}")
            elif name in value:
                check(value[name], sub, f"{where}.{name}")
            elif not key.endswith("?"):
                raise SchemaError(f"{where} has no {name!r}")
    elif isinstance(schema, list):
        _expect(value, list, where)
        for i, item in enumerate(value):
            check(item, schema[0], f"{where}[{i}]")
    elif isinstance(schema, frozenset):
        if not isinstance(value, str) or value not in schema:
            raise SchemaError(f"{where} is {_shown(value)}, not one of {', '.join(sorted(schema))}")
    else:
        _expect(value, schema, where)


def _expect(value: Any, types: Any, where: str) -> None:
    options = types if isinstance(types, tuple) else (types,)
    options = tuple(type(None) if t is None else t for t in options)
    if not any(_is(value, t) for t in options):
        expected = " or ".join(_NAMES[t] for t in options)
        raise SchemaError(f"{where} should be {expected}, not {_shown(value)}")


def _is(value: Any, t: type) -> bool:
    if t is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, t) and not (t is int and isinstance(value, bool))


def _shown(value: Any) -> str:
    if isinstance(value, str):
        text = json.dumps(value[:40] + ("..." if len(value) > 40 else ""))
        return f"the string {text}"
    name = next((n for t, n in _NAMES.items() if t is not float and _is(value, t)), None)
    return name or (f"the number {value}" if isinstance(value, (int, float)) else type(value).__name__)


# ----------------------------------------------------------------------------------------------
# Checkpoint headers


GROUP_FILE = "group.json"  # a group of runs trained together (`train cnn --seeds`): {"members": [NAME, ...]}


def group_members(path: str | Path) -> list[Path] | None:
    """The run directories of the group at `path` (a directory holding GROUP_FILE), or None when it is not
    one. Members are names of folders inside the group, nothing else: a group cannot point elsewhere."""
    path = Path(path)
    listing = path / GROUP_FILE
    if not path.is_dir() or not listing.is_file():
        return None
    try:
        members = json.loads(listing.read_text())["members"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        members = None
    if (not isinstance(members, list) or not members
            or not all(isinstance(m, str) and m and Path(m).name == m and m not in (".", "..") for m in members)):
        raise MnistlabError(f"{listing} is not a group listing: it must be {{\"members\": [\"seed-0\", ...]}}, "
                            "folder names inside the group")
    return [path / m for m in members]


def resolve_checkpoint(path: str | Path, which: str | None = "last") -> Path:
    """A run directory or a checkpoint file → the checkpoint file.

    In a run directory, `which` picks the file: "last" (checkpoint.safetensors), "best" (best.safetensors,
    a GAN's best generator; an error when the run has none) or None: best when the run kept one, else last.
    A file is taken as given; `mnistlab.checkpoint.load_checkpoint` checks that it is the one asked for.
    """
    if which not in (None, *CHECKPOINT_FILES):
        raise MnistlabError(f"checkpoint must be 'best' or 'last' (or None: best when the run has one), not {which!r}")
    path = Path(path)
    if path.is_dir():
        has_best = (path / BEST_NAME).is_file()
        if which == "best" and not has_best:
            raise CheckpointError(f"{path} has no {BEST_NAME}: a GAN run keeps one from its first quality "
                                  "evaluation (train.eval_every > 0); ask for the last checkpoint instead")
        path = path / CHECKPOINT_FILES[which or ("best" if has_best else "last")]
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; give a run directory or its {CHECKPOINT_NAME}")
    return path


def read_checkpoint_header(path: str | Path) -> CheckpointHeader:
    """A checkpoint's validated mnistlab header (kind, format, state skeleton), without reading any tensor.

    Cheap on a folder of many runs: safetensors parses only the file's JSON header, and numpy, not torch.
    """
    from safetensors import SafetensorError, safe_open

    path = resolve_checkpoint(path)
    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata, tensor_names = f.metadata(), f.keys()
    except (SafetensorError, OSError) as e:  # a truncated, foreign or unreadable file
        raise not_a_checkpoint(path, e) from None
    return parse_checkpoint_metadata(metadata, tensor_names, path)


def not_a_checkpoint(path: Path, error: BaseException) -> CheckpointError:
    return CheckpointError(
        f"{path} is not a mnistlab safetensors checkpoint ({one_line(error)}); "
        "mnistlab never unpickles files, so .pt/.pkl files from elsewhere cannot be loaded"
    )


def parse_checkpoint_metadata(
    metadata: dict[str, str] | None, tensor_names: Iterable[str], path: Path
) -> CheckpointHeader:
    """Validate a safetensors file's metadata as a mnistlab header whose tensors are all in the file."""
    if not metadata or METADATA_KEY not in metadata:
        raise CheckpointError(f"{path} is a safetensors file but not a mnistlab checkpoint (no mnistlab metadata)")
    try:
        header = _json(metadata[METADATA_KEY], "metadata")
        check(header, {"format_version": int}, "metadata")
        if header["format_version"] > FORMAT_VERSION:
            raise CheckpointError(
                f"{path} has checkpoint format {header['format_version']}, newer than this mnistlab reads "
                f"({FORMAT_VERSION}); upgrade mnistlab")
        if header["format_version"] < 1:
            raise SchemaError(f"format_version {header['format_version']} was never written by mnistlab")
        check(header, {"kind": KINDS, "role?": frozenset({"best"}), "state": dict}, "metadata")
        role = header.get("role", "last")
        schema = header["kind"] + ("" if role == "last" else f"-{role}")
        if schema not in STATE_SCHEMA:
            raise SchemaError(f"metadata.role is {role!r}, but a {header['kind']} checkpoint has no such role")
        tensors: list[tuple[str, str]] = []
        state = decode(header["state"], "state", tensors)
        check(state, STATE_SCHEMA[schema], "state")
    except (SchemaError, RecursionError) as e:
        raise _damaged(path, one_line(e)) from None
    present = set(tensor_names)
    for where, name in tensors:
        if name not in present:
            raise _damaged(path, f"{where} refers to tensor {name!r}, which the file does not hold")
    return CheckpointHeader(path, header["format_version"], header["kind"], state, role)


def describe_checkpoint(header: CheckpointHeader) -> str:
    """Which checkpoint of its run a file is, for the line a command prints: "runs/g/best.safetensors (best:
    epoch 7, FCD 2.91)" or "runs/g/checkpoint.safetensors (last: epoch 30, FCD 3.05)"."""
    metrics = header.state.get("metrics") or []
    fcd = header.state["fcd"] if header.role == "best" else next(
        (m["fcd"] for m in reversed(metrics) if m.get("fcd") is not None), None)
    epoch = f"epoch {metrics[-1]['epoch']}" if metrics else "no epoch finished"
    return f"{header.path} ({header.role}: {epoch}" + (f", FCD {fcd:.2f})" if fcd is not None else ")")


def _damaged(path: Path, detail: str) -> CheckpointError:
    return CheckpointError(f"{path}: damaged checkpoint: {detail}; restore it from a good copy or train the run again")


def decode(skeleton: Any, where: str, tensors: list[tuple[str, str]]) -> Any:
    """A skeleton as plain values, each tensor a `TensorRef`, whose (where, name) is appended to `tensors`.

    The one decoder of the format `mnistlab.checkpoint.pack` writes; raises `SchemaError` where it is broken.
    """
    if isinstance(skeleton, list):
        return [decode(v, f"{where}[{i}]", tensors) for i, v in enumerate(skeleton)]
    if not isinstance(skeleton, dict):
        return skeleton
    if skeleton.keys() == {TENSOR_MARK}:
        check(skeleton[TENSOR_MARK], str, f"{where} tensor name")
        tensors.append((where, skeleton[TENSOR_MARK]))
        return TensorRef(skeleton[TENSOR_MARK])
    if skeleton.keys() != {DICT_MARK}:
        raise SchemaError(f"{where} is an object with keys {sorted(skeleton)[:4]}, neither "
                          f'{{"{TENSOR_MARK}": name}} nor {{"{DICT_MARK}": [[key, value], ...]}}')
    check(skeleton[DICT_MARK], [list], where)
    decoded = {}
    for i, pair in enumerate(skeleton[DICT_MARK]):
        if len(pair) != 2:
            raise SchemaError(f"{where} entry {i} has {len(pair)} items, not [key, value]")
        key = pair[0][INT_KEY] if isinstance(pair[0], dict) and pair[0].keys() == {INT_KEY} else pair[0]
        check(key, (str, int), f"{where} entry {i} key")
        decoded[key] = decode(pair[1], f"{where}.{key}", tensors)
    return decoded


# ----------------------------------------------------------------------------------------------
# Run directories


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and any((path / name).is_file() for name in RUN_FILES)


def read_run_info(path: str | Path) -> RunInfo:
    """A run directory (or its checkpoint file): its kind, preset, dataset, config and metrics per epoch.

    The kind comes from config.json, or for runs older than that field from the checkpoint's header.
    Raises `MnistlabError` (`CheckpointError` for the checkpoint) when anything in it is broken.
    """
    run_dir = Path(path)
    if run_dir.is_file() and run_dir.name == CHECKPOINT_NAME:
        run_dir = run_dir.parent
    has = {name: (run_dir / name).is_file() for name in RUN_FILES}
    if not has[CONFIG_NAME] and not has[CHECKPOINT_NAME]:
        raise MnistlabError(f"{run_dir} has no {CONFIG_NAME} and no {CHECKPOINT_NAME}")
    header = read_checkpoint_header(run_dir / CHECKPOINT_NAME) if has[CHECKPOINT_NAME] else None
    if has[CONFIG_NAME]:
        config = _json_file(run_dir / CONFIG_NAME, _CONFIG)
    else:
        config = header.state["config"]
    kind = config.get("kind") or (header.kind if header else None)
    if kind is None:
        raise MnistlabError(f"{run_dir / CONFIG_NAME} has no kind and there is no {CHECKPOINT_NAME} to tell")
    if header and header.kind != kind:
        raise MnistlabError(f"{run_dir}: {CONFIG_NAME} says {kind} but {CHECKPOINT_NAME} is a {header.kind} "
                            "checkpoint; the files are from different runs")
    if has[METRICS_NAME]:
        metrics = _metrics_file(run_dir / METRICS_NAME)
    else:
        metrics = header.state["metrics"] if header else []
    dataset = header.state["dataset"]["name"] if header else config.get("run", {}).get("dataset", "?")
    best = read_checkpoint_header(run_dir / BEST_NAME) if (run_dir / BEST_NAME).is_file() else None
    return RunInfo(run_dir, kind, config["preset"], dataset, config, metrics, header, best)


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except UnicodeDecodeError:
        raise MnistlabError(f"{path.name}: not UTF-8 text") from None
    except OSError as e:
        raise MnistlabError(f"cannot read {path}: {e.strerror or one_line(e)}") from None


def _json_file(path: Path, schema: Any) -> Any:
    try:
        data = _json(_read_text(path), path.name)
        check(data, schema, path.name)
    except (SchemaError, RecursionError) as e:
        raise MnistlabError(one_line(e)) from None
    return data


def _metrics_file(path: Path) -> list[dict[str, Any]]:
    metrics = []
    for number, line in enumerate(_read_text(path).splitlines(), 1):
        if line.strip():
            where = f"{path.name} line {number}"
            try:
                metrics.append(_json(line, where))
                check(metrics[-1], _METRIC, where)
            except (SchemaError, RecursionError) as e:
                raise MnistlabError(f"{one_line(e)} (one JSON object per epoch)") from None
    return metrics


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as e:
        raise SchemaError(f"{what} is not valid JSON ({one_line(e)})") from None

