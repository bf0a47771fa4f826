"""Checkpoints: one safetensors file per run, written atomically, loaded without ever unpickling.

A run's last checkpoint is a plain nested dict (model weights, optimiser state, RNG state, epoch, step, config,
metrics so far), as nanoGPT keeps it. `pack` splits it into the tensors, stored as safetensors, and
a JSON skeleton that points at them, stored in the file's metadata. Loading reverses that: the torch-free
`mnistlab.run_info` validates and decodes the metadata, and this module puts the tensors in. A GAN run's
best.safetensors is written the same way, with the role "best" in its header (`mnistlab.run_info`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as save_tensors

from mnistlab.errors import CheckpointError, MnistlabError, one_line
from mnistlab.run_info import (
    BEST_NAME,
    CHECKPOINT_NAME,
    DICT_MARK,
    FORMAT_VERSION,
    INT_KEY,
    METADATA_KEY,
    TENSOR_MARK,
    TensorRef,
    not_a_checkpoint,
    parse_checkpoint_metadata,
    resolve_checkpoint,
)

__all__ = ["BEST_NAME", "CHECKPOINT_NAME", "FORMAT_VERSION", "atomic_write_bytes", "atomic_write_text",
           "check_writable", "load_checkpoint", "load_weights", "pack", "resolve_checkpoint", "save_checkpoint"]

_UMASK = os.umask(0o22)
os.umask(_UMASK)


def pack(obj: Any, tensors: dict[str, torch.Tensor], path: str = "") -> Any:
    """The JSON skeleton of `obj` (format: `mnistlab.run_info`); its tensors go into `tensors` under their
    dotted path."""
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


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, fsync, then rename: a crash leaves the old file or the new."""
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the permissions open() would
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):  # a full disk, a read-only or vanished directory: one clear line, old file kept
            kept = "; the previous file is intact" if path.exists() else ""
            raise MnistlabError(f"cannot write {path}: {e.strerror or one_line(e)}{kept}") from None
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def save_checkpoint(path: str | Path, kind: str, state: dict[str, Any], role: str = "last") -> None:
    """Save `state` (a nested dict holding tensors) as a `kind` ("cnn" or "gan") checkpoint, atomically;
    `role` "best" marks a GAN's best generator (its state as `mnistlab.run_info.STATE_SCHEMA["gan-best"]`)."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = pack(state, tensors)
    header = {"format_version": FORMAT_VERSION, "kind": kind, **({} if role == "last" else {"role": role}),
              "state": skeleton}
    atomic_write_bytes(path, save_tensors(tensors, metadata={METADATA_KEY: json.dumps(header)}))


def load_checkpoint(path: str | Path, kind: str | None = None, which: str | None = "last") -> dict[str, Any]:
    """Load a checkpoint's state dict, checking its kind and format version. Never executes code.

    `which` ("last", "best" or None for either, as `resolve_checkpoint`) picks the file in a run directory,
    and a file given must be that one: only the last checkpoint resumes. The state gets "kind" and "role".
    The metadata is validated (`mnistlab.run_info.parse_checkpoint_metadata`) before any tensor is read;
    anything damaged raises a one-line `CheckpointError`.
    """
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


def check_writable(directory: str | Path, need_bytes: int = 50 * 2**20) -> Path:
    """Create `directory` if needed and fail fast when it cannot be written or the disk is nearly full."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=directory, prefix=".write-test-")
        probe.close()
    except OSError as e:
        raise MnistlabError(f"cannot write to {directory}: {e.strerror or e}; choose another --out") from None
    free = shutil.disk_usage(directory).free
    if free < need_bytes:
        raise MnistlabError(
            f"only {free / 2**20:.0f} MiB free at {directory}; a run needs about {need_bytes / 2**20:.0f} MiB"
        )
    return directory

