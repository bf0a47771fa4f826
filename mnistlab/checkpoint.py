"""Checkpoints: one safetensors file per run, written atomically, loaded without ever unpickling; the whole
format is here, and reading a header needs no torch.

A run's last checkpoint is a plain nested dict (model weights, optimiser state, RNG state, epoch, step,
config, metrics so far), as nanoGPT keeps it. `pack` splits it into the tensors, stored as safetensors, and
a JSON skeleton that points at them, stored in the file's metadata under "mnistlab" as
`{"format_version", "kind", "state"}` (and `"role": "best"` in a GAN run's best.safetensors, the generator
that scored the best FCD at its quality evaluations). In the skeleton an object is `{"__dict__": [[key,
value], ...]}` (an int key as `{"int": k}`), a tensor is `{"__tensor__": name}`, lists and scalars are
themselves. `decode` reads it back and `STATE_SCHEMA` says what each kind must hold; everything is
validated where it enters, and anything broken raises a one-line `CheckpointError`.

    >>> read_checkpoint_header("runs/cnn-seed/checkpoint.safetensors").kind
    'cnn'
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnistlab.errors import CheckpointError, MnistlabError, one_line
from mnistlab.files import atomic_write_bytes

if TYPE_CHECKING:
    import torch

FORMAT_VERSION = 1
KINDS = frozenset({"cnn", "gan"})
CHECKPOINT_NAME = "checkpoint.safetensors"
BEST_NAME = "best.safetensors"
CHECKPOINT_FILES = {"last": CHECKPOINT_NAME, "best": BEST_NAME}  # a run's checkpoints, by role
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


# ----------------------------------------------------------------------------------------------
# Schemas: a compact notation for "what JSON must look like here"
#
# A type is an isinstance check (float: any number; bool is never a number); a tuple is "any of these";
# a frozenset is "one of these values"; [item] is an array of items; a dict is an object with these
# keys ("key?" optional, "*" every other key, "+" every other key and at least one), extra keys allowed
# unless "*" or "+" constrains them.

_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "a boolean", list: "an array",
          dict: "an object", type(None): "null", TensorRef: "a tensor"}

CONFIG_SCHEMA = {"preset": str, "kind?": KINDS, "model?": dict, "train?": dict, "run?": {"dataset?": str}}
METRIC_SCHEMA = {"epoch": int, "time_s?": float, "test_acc?": (float, None), "fcd?": (float, None),
                 "d_x?": (float, None), "fcd_real_floor?": (float, None)}
_TENSORS = {"+": TensorRef}  # a network's weights: never none
_OPTIMIZER = {"state": dict, "param_groups": [dict]}
_STATE_COMMON = {
    "config": CONFIG_SCHEMA, "model": _TENSORS, "rng": {"torch": TensorRef}, "epoch": int, "step_in_epoch": int,
    "metrics": [METRIC_SCHEMA], "dataset": {"name": str, "files": {"*": str}}, "environment?": dict,
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
    "gan-best": {"config": CONFIG_SCHEMA, "generator": _TENSORS, "epoch": int, "fcd": float, "metrics": [METRIC_SCHEMA],
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
            if key in ("*", "+"):
                others = value.keys() - {k.removesuffix("?") for k in schema}
                if key == "+" and not others:
                    raise SchemaError(f"{where} is empty")
                for other in others:
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
# Checkpoint files: finding, reading headers, decoding, writing


def resolve_checkpoint(path: str | Path, which: str | None = "last") -> Path:
    """A run directory or a checkpoint file → the checkpoint file.

    In a run directory, `which` picks the file: "last" (checkpoint.safetensors), "best" (best.safetensors,
    a GAN's best generator; an error when the run has none) or None: best when the run kept one, else last.
    A file is taken as given; `load_checkpoint` checks that it is the one asked for.
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
        header = parse_json(metadata[METADATA_KEY], "metadata")
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

    The one decoder of the format `pack` writes; raises `SchemaError` where it is broken.
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


def parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as e:
        raise SchemaError(f"{what} is not valid JSON ({one_line(e)})") from None


def pack(obj: Any, tensors: dict[str, torch.Tensor], path: str = "") -> Any:
    """The JSON skeleton of `obj` (the format above); its tensors go into `tensors` under their dotted path."""
    import torch

    if isinstance(obj, torch.Tensor):
        tensors[path] = obj.detach().cpu().contiguous().clone()
        return {TENSOR_MARK: path}
    if isinstance(obj, dict):
        return {DICT_MARK: [[_key(k), pack(v, tensors, f"{path}.{k}" if path else str(k))] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [pack(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]
    return obj


def _key(k: Any) -> Any:
    # Optimiser state is keyed by int parameter ids; JSON would turn them into strings.
    return {INT_KEY: k} if isinstance(k, int) else k


def _with_tensors(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """A decoded state with each `TensorRef` replaced by its tensor."""
    if isinstance(value, TensorRef):
        return tensors[value.name]
    if isinstance(value, dict):
        return {k: _with_tensors(v, tensors) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_tensors(v, tensors) for v in value]
    return value


def save_checkpoint(path: str | Path, kind: str, state: dict[str, Any], role: str = "last") -> None:
    """Save `state` (a nested dict holding tensors) as a `kind` ("cnn" or "gan") checkpoint, atomically;
    `role` "best" marks a GAN's best generator (its state as `STATE_SCHEMA["gan-best"]`)."""
    from safetensors.torch import save as save_tensors

    tensors: dict[str, torch.Tensor] = {}
    skeleton = pack(state, tensors)
    header = {"format_version": FORMAT_VERSION, "kind": kind, **({} if role == "last" else {"role": role}),
              "state": skeleton}
    atomic_write_bytes(path, save_tensors(tensors, metadata={METADATA_KEY: json.dumps(header)}))


def load_checkpoint(path: str | Path, kind: str | None = None, which: str | None = "last") -> dict[str, Any]:
    """Load a checkpoint's state dict, checking its kind and format version. Never executes code.

    `which` ("last", "best" or None for either, as `resolve_checkpoint`) picks the file in a run directory,
    and a file given must be that one: only the last checkpoint resumes. The state gets "kind" and "role".
    The metadata is validated (`parse_checkpoint_metadata`) before any tensor is read;
    anything damaged raises a one-line `CheckpointError`.
    """
    from safetensors import SafetensorError, safe_open

    path = resolve_checkpoint(path, which)
    try:
        with safe_open(str(path), framework="pt") as f:
            header = parse_checkpoint_metadata(f.metadata(), f.keys(), path)
            if kind is not None and header.kind != kind:
                raise CheckpointError(f"{path} is a {header.kind} checkpoint, but a {kind} checkpoint is needed here")
            if which is not None and header.role != which:
                raise CheckpointError(f"{path} is its run's {header.role} checkpoint, but the {which} one is needed "
                                      f"here ({CHECKPOINT_NAME} is the last, {BEST_NAME} the best generator)")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise not_a_checkpoint(path, e) from None
    state = _with_tensors(header.state, tensors)
    state["kind"], state["role"] = header.kind, header.role
    return state


def load_weights(module: torch.nn.Module, weights: dict[str, torch.Tensor], path: str | Path, state: dict) -> None:
    """Load a checkpoint's weights into the model its config builds, or name the first tensor that differs
    and both sides: what saved the checkpoint, and this mnistlab."""
    import mnistlab

    try:
        module.load_state_dict(weights)  # modules rename what older checkpoints called otherwise (SameConv2d)
        return
    except RuntimeError:
        pass
    expected = module.state_dict()
    differs = [n for n in sorted(set(expected) | set(weights))
               if n not in weights or n not in expected or weights[n].shape != expected[n].shape] or ["?"]
    name, saved_by = differs[0], state.get("environment", {}).get("mnistlab_version", "?")
    raise CheckpointError(
        f"{path} holds a different architecture: the checkpoint ({state['kind']}/{state['config']['preset']}, "
        f"mnistlab {saved_by}) has {_described(name, weights)}, the model this mnistlab {mnistlab.__version__} "
        f"builds from its config has {_described(name, expected)}")


def _described(name: str, tensors: dict[str, torch.Tensor]) -> str:
    return f"{name} {tuple(tensors[name].shape)}" if name in tensors else "no such tensor"


