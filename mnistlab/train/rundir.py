"""A run directory: created and checked before training, its provenance, and its optional TensorBoard log."""

from __future__ import annotations

import datetime
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

import mnistlab
from mnistlab.errors import MnistlabError
from mnistlab.files import check_writable
from mnistlab.train.distributed import Dist


def new_run_dir(kind: str, preset: str, out: str | None) -> Path:
    """The run directory, created and checked writable before any training starts."""
    if out is None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = f"runs/{kind}-{preset}-{stamp}"
    path = Path(out)
    if (path / "checkpoint.safetensors").exists():
        raise MnistlabError(f"{path} already holds a run; resume it with --resume {path} or choose another --out")
    return check_writable(path)


def remove_stale_temp_files(run_dir: Path) -> None:
    """Drop half-written temporary files a killed process left beside its checkpoint (see atomic_write_bytes)."""
    for stale in Path(run_dir).glob(".*.tmp"):
        stale.unlink(missing_ok=True)


def check_same_data(run: str | Path, trained_on: dict[str, Any], now: dict[str, Any]) -> None:
    """A resumed run must see the files it started on, wherever they live now (compared by MD5)."""
    if sorted(trained_on["files"].values()) != sorted(now["files"].values()):
        raise MnistlabError(f"{run} was trained on {trained_on['name']} ({_md5s(trained_on)}); this data is "
                            f"{now['name']} ({_md5s(now)}): resume it on the same files")


def _md5s(provenance: dict[str, Any]) -> str:
    return ", ".join(f"{Path(p).name} md5 {md5[:8]}" for p, md5 in sorted(provenance["files"].items()))


def environment(device: torch.device, precision: torch.dtype | None, group: Dist) -> dict[str, Any]:
    """What a reader needs to reproduce a run: versions, commit, device."""
    return {
        "mnistlab_version": mnistlab.__version__,
        "git_commit": _git_commit(),
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
        or platform.machine(),
        "precision": str(precision).replace("torch.", "") if precision else "float32",
        "threads": torch.get_num_threads(),
        "world_size": group.world_size,
    }


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


class TensorBoard:
    """Optional TensorBoard logging of each epoch's scalars and images (`pip install mnistlab[tensorboard]`)."""

    def __init__(self, run_dir: Path, enabled: bool):
        self.writer = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise MnistlabError(
                    "--tensorboard needs the tensorboard package: pip install 'mnistlab[tensorboard]'"
                ) from None
            self.writer = SummaryWriter(str(Path(run_dir) / "tensorboard"))

    def log(self, metrics: dict[str, Any], image: Any = None) -> None:
        if self.writer is None:
            return
        for key, value in metrics.items():
            if isinstance(value, (int, float)) and key != "epoch" and value is not None:
                self.writer.add_scalar(key, value, metrics["epoch"])
        if image is not None:  # a PIL grid
            import numpy as np

            self.writer.add_image("samples", np.asarray(image)[None], metrics["epoch"])
        self.writer.flush()
