"""`mnistlab sweep FILE`: check the file and the storage, enqueue what is left, start the workers, watch."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

from mnistlab.errors import MnistlabError, require_extra
from mnistlab.sweep import engine, report
from mnistlab.sweep.engine import SWEEP_STACK
from mnistlab.sweep.spec import load_spec


class SweepStopped(MnistlabError):
    """Ctrl-C (or SIGTERM) stopped the sweep; its trials checkpointed and the same command continues it."""

    def __init__(self, command_hint: str, exit_code: int = 130):
        super().__init__(f"sweep stopped; finished trials are kept. Continue with: {command_hint}")
        self.exit_code = exit_code


def run_sweep(path: str | Path, workers: int | None = None, storage: str | None = None,
              out: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Run (or continue) the sweep that `path` describes; returns its summary (see `report.summarize`).

    `workers` processes share this machine's cores (default: one per GPU, else 1); `storage` is a
    SQLAlchemy URL shared by every machine's workers (default: SQLite in `out`, `sweeps/<name>`).
    """
    given_out = out
    spec, out, url, study = open_sweep(path, out, storage)
    gpus = _gpu_count()
    workers = workers or max(1, gpus)
    if workers < 1:
        raise MnistlabError(f"--workers must be at least 1, got {workers}")
    threads = engine.worker_threads(workers)
    hint = f"mnistlab sweep {path}" + (f" --workers {workers}" if workers > 1 else "") + \
        (f" --storage {engine.redacted(url)}" if storage else "") + (f" --out {given_out}" if given_out else "")
    procs = [start_worker(path, url, out, threads, i, gpus) for i in range(workers)]
    try:
        with _terminate_as_interrupt():
            _watch(study, spec, procs, progress)
    except _Stop as stop:
        _stop(procs, stop.signum)
        raise SweepStopped(hint, 128 + stop.signum) from None
    codes = [p.wait() for p in procs]
    summary = report.summarize(study)
    state = engine.progress(study, spec)
    if state.finished < state.total and state.running == 0:
        left = state.total - state.finished
        stopped = [c for c in codes if c]
        why = f"a worker exited with status {stopped[0]}" if stopped else "their trials failed"
        raise MnistlabError(f"{left} of {state.total} trials are not done ({why}); continue with: {hint}")
    report.plot(summary, out / "sweep.png")
    return summary


def open_sweep(path: str | Path, out: str | Path | None = None,
               storage: str | None = None) -> tuple[Any, Path, str, Any]:
    """Check the sweep file, open its study in the storage and enqueue what is left of it: (spec, out, the
    storage's URL, study). An unreachable database fails here, before any worker starts."""
    require_extra("mnistlab sweep", "sweep", SWEEP_STACK)
    spec = load_spec(path)
    out = Path(out or Path("sweeps") / spec.name)
    url = engine.storage_url(out, storage)
    database = engine.open_storage(url)
    study = engine.open_study(spec, database)
    engine.enqueue_missing(study, spec, database)
    return spec, out, url, study


def start_worker(path: str | Path, url: str, out: Path, threads: int, index: int = 0,
                 gpus: int = 0) -> subprocess.Popen:
    """Worker `index`: a process that takes the sweep's trials until none is left (mnistlab/sweep/worker.py)."""
    return subprocess.Popen([sys.executable, "-m", "mnistlab.sweep.worker", str(path), url, str(out), str(threads)],
                            env=_worker_env(index, threads, gpus))


def _watch(study: Any, spec: Any, procs: list[subprocess.Popen], progress: bool) -> None:
    """A bar over the trials, with the best so far, until every worker has exited."""
    from tqdm import tqdm

    with tqdm(total=engine.progress(study, spec).total, desc=f"sweep {spec.name}", unit="trial",
              disable=True if not progress else None) as bar:
        while running := [p for p in procs if p.poll() is None]:
            with contextlib.suppress(subprocess.TimeoutExpired):
                running[0].wait(timeout=1.0)  # back once a second, or as soon as the last worker exits
            state = engine.progress(study, spec)
            bar.update(state.finished - bar.n)
            if state.best is not None:
                bar.set_postfix_str(f"best {spec.metric} {state.best:.4g}, {state.running} running")


class _Stop(Exception):
    def __init__(self, signum: int):
        self.signum = signum


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Ctrl-C and SIGTERM both stop the sweep the same way: the workers checkpoint their trials, then exit."""
    def stop(signum: int, frame: Any) -> None:
        raise _Stop(signum)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _stop(procs: list[subprocess.Popen], signum: int) -> None:
    """Let each worker checkpoint its trial and exit (they got Ctrl-C too, as our process group); wait for them."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signum)
    deadline = time.monotonic() + 60
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()


def _gpu_count() -> int:
    """GPUs torch sees, asked in a way that does not import torch into a process that otherwise needs none."""
    if not os.environ.get("CUDA_VISIBLE_DEVICES", "x") or not Path("/dev/nvidiactl").exists():
        return 0
    import torch

    return torch.cuda.device_count()


def _worker_env(index: int, threads: int, gpus: int) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = str(index % gpus)  # one worker per GPU
    return env
