"""What both trainers share: device and precision, seeding and data order, run directories,
interruption, divergence checks, and the distributed set-up for torchrun."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.distributed as dist
from tqdm import tqdm

import mnistlab
from mnistlab.checkpoint import atomic_write_text, check_writable
from mnistlab.errors import MnistlabError, TrainingDiverged

# ----------------------------------------------------------------------------------------------
# Device and precision


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise MnistlabError("--device cuda, but PyTorch sees no CUDA GPU; use --device cpu or install a CUDA build")
    if name == "mps" and not torch.backends.mps.is_available():
        raise MnistlabError("--device mps, but this PyTorch has no MPS backend; use --device cpu")
    if name == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device(name)


def cpu_has_fast_bf16() -> bool:
    """AVX-512-BF16 or AMX: bf16 convolutions run faster than fp32 on such CPUs."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype for `precision` on `device`, or None for plain fp32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":  # fp16 would need a GradScaler; GPUs without bf16 train in fp32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if device.type == "cpu" and cpu_has_fast_bf16():
        return torch.bfloat16
    return None


def memory_format(channels_last: bool) -> torch.memory_format:
    return torch.channels_last if channels_last else torch.contiguous_format


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def adam(params, device: torch.device, **kwargs: Any) -> torch.optim.AdamW:
    """AdamW with the fused kernel where torch has one for `device`: one kernel for all parameters
    instead of a handful per tensor, which matters when the network is as small as the seed's."""
    fast = {"fused": True} if device.type in ("cpu", "cuda") else {"foreach": True}
    return torch.optim.AdamW(params, **kwargs, **fast)


def load_optimizer(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Restore a checkpointed optimiser, its moments laid out like their parameters again.

    Checkpoints store tensors contiguous; the fused kernel walks a parameter and its moments as flat
    memory, so a channels_last weight with contiguous moments would silently get the wrong update."""
    optimizer.load_state_dict(state)
    for group in optimizer.param_groups:
        for param in group["params"]:
            moments = optimizer.state[param]
            for name, value in moments.items():
                if torch.is_tensor(value) and value.shape == param.shape:
                    moments[name] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def seed_everything(seed: int, deterministic: bool) -> None:
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=False)
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


@contextlib.contextmanager
def restores_torch_settings() -> Iterator[None]:
    """Put back the process-wide settings `seed_everything` may switch (deterministic algorithms, cuDNN
    autotuning) when the block ends, however it ends. Trainers wear it as a decorator,
    `@common.restores_torch_settings()`, so a notebook's later work runs as fast as before."""
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.benchmark)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.benchmark = saved[2]


def epoch_order(n: int, seed: int, epoch: int, device: torch.device) -> torch.Tensor:
    """The shuffled sample order of one epoch, a pure function of (seed, epoch): resume needs no state for it."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator).to(device)


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------------------------
# Distributed data parallel (torchrun)


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    owns_group: bool = False  # we started the process group, so we end it

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, indices: torch.Tensor) -> torch.Tensor:
        """This rank's share of a global batch: every world-th index, so the global batch is unchanged."""
        return indices[self.rank :: self.world]

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum a tensor over ranks (a no-op in a single process)."""
        if self.world > 1:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor


def init_distributed(device: torch.device) -> Dist:
    """Join the process group torchrun describes in the environment; a plain run is rank 0 of 1."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world == 1:
        return Dist()
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), owns)


def decorrelate_ranks(world: Dist, seed: int, step: int) -> None:
    """Give each rank its own random stream (noise, augmentation, dropout) once the weights are identical."""
    if world.world > 1:
        torch.manual_seed(seed * 1_000_003 + step * 1009 + world.rank)


def finish_distributed(world: Dist) -> None:
    if world.owns_group:
        dist.barrier()
        dist.destroy_process_group()


def average_gradients(module: torch.nn.Module, world: Dist) -> None:
    """Average gradients over ranks by hand, for the GAN whose two networks take turns (see train/gan.py)."""
    if world.world == 1:
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world.world
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


# ----------------------------------------------------------------------------------------------
# Starting (or resuming) a run


@dataclass
class RunStart:
    """Everything a trainer needs before its loop: the config, where to write, how to compute, the data."""

    config: Any  # ClassifierConfig or GANConfig
    state: dict[str, Any] | None  # the checkpoint being resumed, if any
    run_dir: Path
    device: torch.device
    world: Dist
    dtype: torch.dtype | None  # autocast dtype, None for fp32
    memory_format: torch.memory_format
    dataset: Any  # data.datasets.Dataset
    say: Callable[[str], None]  # a line for the terminal (rank 0, when progress is on)

    def metrics_line(self, history: list[dict[str, Any]]) -> None:
        """Rewrite metrics.jsonl from the history, atomically: after a resume it matches the checkpoint."""
        atomic_write_text(self.run_dir / "metrics.jsonl", "".join(json.dumps(m) + "\n" for m in history))


def start_run(
    kind: str, config: Any, overrides: dict[str, Any], resume: str | Path | None, dataset: Any, progress: bool,
    load_data: Callable[[Any], Any],
) -> RunStart:
    """Resolve the config (a preset name, a config, or the resumed run's own), set up device, precision,
    seeds and torchrun, load the data with `load_data(config)` unless given (a Dataset, or a dataset name
    taken as the `run.dataset` override), and create the run directory."""
    from mnistlab.checkpoint import load_checkpoint
    from mnistlab.config import from_dict, preset, to_json, with_overrides

    if isinstance(dataset, str):  # a dataset name, as in train_classifier(dataset="mnist-sample")
        overrides, dataset = {**overrides, "run.dataset": dataset}, None
    state = None
    if resume is not None:
        state = load_checkpoint(resume, kind=kind)
        remove_stale_temp_files(Path(resume))
        config = from_dict(kind, state["config"])
        # Resume on the data the run started on, whatever `auto` finds now; a dataset named here is checked.
        name = overrides.get("run.dataset") or (
            state["dataset"]["name"] if config.run.dataset == "auto" else config.run.dataset)
        config = with_overrides(config, {"run.dataset": name})
    else:
        config = with_overrides(preset(kind, config) if isinstance(config, str) else config, overrides)
    device = resolve_device(config.run.device)
    world = init_distributed(device)
    seed_everything(config.run.seed, config.run.deterministic)
    say = tqdm.write if progress and world.is_main else (lambda _msg: None)
    if dataset is None:
        dataset = load_data(config)
    if dataset.notice:
        say(f"NOTE: {dataset.notice}")
    if resume is not None:
        _check_same_data(resume, state["dataset"], dataset.provenance)
        run_dir = Path(resume)
        say(f"resuming {run_dir} at epoch {state['epoch'] + 1}, step {state['step_in_epoch']}")
    elif world.is_main:
        run_dir = new_run_dir(kind, config.preset, config.run.out)
    else:
        run_dir = Path(config.run.out or ".")
    if world.is_main:
        atomic_write_text(run_dir / "config.json", to_json(config))
    return RunStart(config, state, run_dir, device, world, autocast_dtype(device, config.run.precision),
                    memory_format(config.run.channels_last), dataset, say)


# ----------------------------------------------------------------------------------------------
# Run directories and provenance


def _check_same_data(run: str | Path, trained_on: dict[str, Any], now: dict[str, Any]) -> None:
    """A resumed run must see the files it started on, wherever they live now (compared by MD5)."""
    if sorted(trained_on["files"].values()) != sorted(now["files"].values()):
        raise MnistlabError(f"{run} was trained on {trained_on['name']} ({_md5s(trained_on)}); this data is "
                            f"{now['name']} ({_md5s(now)}): resume it on the same files")


def _md5s(provenance: dict[str, Any]) -> str:
    return ", ".join(f"{Path(p).name} md5 {md5[:8]}" for p, md5 in sorted(provenance["files"].items()))


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


def environment(device: torch.device, precision: torch.dtype | None, world: Dist) -> dict[str, Any]:
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
        "world_size": world.world,
    }


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


# ----------------------------------------------------------------------------------------------
# Interruption and divergence


class Interrupted(MnistlabError):
    """Training stopped on SIGINT/SIGTERM after writing a checkpoint; `exit_code` is 130 or 143."""

    def __init__(self, kind: str, run_dir: Path, signum: int):
        super().__init__(f"interrupted; checkpoint saved. Resume with: mnistlab train {kind} --resume {run_dir}")
        self.exit_code = 130 if signum == signal.SIGINT else 143


@contextlib.contextmanager
def stop_on_signals() -> Iterator[dict[str, int]]:
    """Turn Ctrl-C and SIGTERM into a flag the loop checks between steps, so it can checkpoint first."""
    flag: dict[str, int] = {}

    def handler(signum: int, frame: Any) -> None:
        flag["signal"] = signum

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def check_finite(losses: torch.Tensor, first_step: int, what: str = "loss") -> None:
    """Raise TrainingDiverged naming the first step whose loss is NaN or infinite."""
    bad = (~torch.isfinite(losses)).nonzero()
    if len(bad):
        row = int(bad[0, 0])
        raise TrainingDiverged(
            f"{what} became {losses[row].tolist()} at step {first_step + row}; training stopped and the last "
            "good checkpoint is kept (try a lower learning rate or --precision fp32)"
        )
