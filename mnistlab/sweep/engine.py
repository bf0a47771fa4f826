"""Running a sweep: an Optuna study in a real database, worked through by processes on one machine or many.

- The study lives in SQLite in the sweep's directory by default, or in any SQLAlchemy URL (`--storage
  postgresql://…`), so the same command started on several machines shares one study.
- A grid's points are enqueued in file order and read back from the queue, not suggested, so a grid may
  grow between runs; a search uses TPE.
- Every trial is an ordinary run directory, `OUT/trial-NNNN`, which `runs`, `evaluate` and `serve` read.
- A worker killed mid-trial stops its heartbeat; another worker (or the next run of the command) fails
  the trial and retries it, resuming from the trial's own last checkpoint. Re-running the command never
  repeats a finished trial. A trial whose training fails (say, it diverges) is kept as failed, with why.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from mnistlab.errors import MnistlabError, one_line
from mnistlab.sweep.spec import SweepSpec, encode, trial_point

SWEEP_STACK = ("optuna", "sqlalchemy")  # the `sweep` extra, by import name
HEARTBEAT_S = 1  # how often a running trial says it is alive
GRACE_S = 4  # silence after which a running trial counts as dead and is retried
IDLE_POLL_S = 0.25  # how often a worker with no trial to take looks again: it leaves soon after the last one
DONE = ("COMPLETE", "PRUNED")


def storage_url(out: str | Path, storage: str | None) -> str:
    """The study's database: the given SQLAlchemy URL, or a SQLite file in the sweep's directory."""
    return storage or f"sqlite:///{Path(out).resolve() / 'sweep.db'}"


def open_storage(url: str, heartbeat: bool = True) -> Any:
    """An RDB storage with heartbeats and retries of dead trials; an unreachable database is one clear line."""
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a stopped or failed trial is reported by us, in one line
    # Heartbeats are what make a killed worker's trial come back; Optuna still calls them experimental.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    beat = dict(heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3)) if heartbeat else {}
    kind = _sqlite_storage() if url.startswith("sqlite") else RDBStorage
    for attempt in range(3):  # machines that start at once race to create the tables; the loser tries again
        if attempt:
            time.sleep(0.5)  # the winner's tables are committed within milliseconds
        try:
            return kind(url, engine_kwargs=engine, **beat)
        except Exception as e:  # SQLAlchemy's zoo: bad URL, no driver, refused connection, bad password, a race
            error = one_line(e)
    raise MnistlabError(f"cannot open the sweep storage {redacted(url)}: {error}")


def _sqlite_storage() -> type:
    """Optuna's RDB storage, starting a queued trial under the lock file beside the database: SQLite
    ignores the row lock Optuna takes for it, so two workers could both start the same queued trial."""
    from optuna.storages import RDBStorage
    from optuna.trial import TrialState

    class SQLiteStorage(RDBStorage):
        def set_trial_state_values(self, trial_id: int, state: TrialState, values: Any = None) -> bool:
            with _file_lock(self) if state == TrialState.RUNNING else contextlib.nullcontext():
                return super().set_trial_state_values(trial_id, state, values)

    return SQLiteStorage


def open_study(spec: SweepSpec, storage: Any) -> Any:
    """The sweep's study, created or continued; its settings are stored with it, for `sweep show`."""
    import optuna

    if spec.is_search:
        # A third of the trials at random before TPE models them (Optuna's usual 10 would leave a search of a
        # dozen random). Each worker process draws its own suggestions, and counts the trials others are
        # running as done (the "constant liar"): workers seeded alike suggested the same trials twice.
        seed = zlib.crc32(f"{spec.seeds[0]} {socket.gethostname()} {os.getpid()}".encode())
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(1, spec.trials // 3)),
                                             constant_liar=True)
    else:
        sampler = optuna.samplers.GridSampler(_grid_space(spec), seed=0)
    pruner = {"none": optuna.pruners.NopPruner(),
              "median": optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
              "hyperband": optuna.pruners.HyperbandPruner()}[spec.pruner]
    study = optuna.create_study(storage=storage, study_name=spec.name, direction=spec.direction, sampler=sampler,
                                pruner=pruner, load_if_exists=True)
    recorded = study.user_attrs.get("metric")
    if recorded is not None and recorded != spec.metric:
        raise MnistlabError(f"study {spec.name!r} already measures {recorded}, not {spec.metric}: name this sweep "
                            "differently (name = \"...\") or use another --out/--storage")
    if spec.is_search:
        _check_search_space(study, spec)
    study.set_user_attr("metric", spec.metric)
    study.set_user_attr("kind", spec.kind)
    return study


def _check_search_space(study: Any, spec: SweepSpec) -> None:
    """A search continued with other choices (or seed) than it started with is refused here, before anything
    starts: Optuna fixes each parameter's distribution for the whole study, and every worker would fail."""
    import optuna
    from optuna.distributions import check_distribution_compatibility

    probe = optuna.create_study().ask()  # in memory: the distributions this spec suggests from
    spec.suggest(probe)
    recorded: dict[str, Any] = {}
    for t in study.get_trials(deepcopy=False):
        recorded = {**t.distributions, **recorded}
    for name, wanted in probe.distributions.items():
        if name not in recorded:
            continue
        try:
            check_distribution_compatibility(recorded[name], wanted)
        except ValueError:
            raise MnistlabError(
                f"study {spec.name!r} searched {name} over {_choices(recorded[name])}, not {_choices(wanted)}: a "
                "search keeps its space; name this sweep differently (name = \"...\") or use another --out/--storage"
            ) from None


def _choices(distribution: Any) -> str:
    choices = getattr(distribution, "choices", None)
    return str(list(choices)) if choices is not None else f"{distribution.low}..{distribution.high}"


def _grid_space(spec: SweepSpec) -> dict[str, list[Any]]:
    return {**{k: [encode(v) for v in values] for k, values in spec.grid.items()}, "seed": list(spec.seeds)}


# ----------------------------------------------------------------------------------------------
# What is done, what is left


@dataclass(frozen=True)
class Progress:
    finished: int  # trials complete or pruned (and, for a search, failed for good)
    total: int  # trials the sweep runs in all
    running: int
    waiting: int
    best: float | None


def progress(study: Any, spec: SweepSpec) -> Progress:
    trials = [t for t in study.get_trials(deepcopy=False) if "spare" not in t.user_attrs]
    state = lambda t: t.state.name  # noqa: E731
    final = [t for t in trials if state(t) in DONE or _failed_for_good(t)]
    if spec.is_search:
        finished, total = len(final), spec.trials
    else:
        done = {_point_key(trial_point(t)) for t in final}
        finished, total = sum(_point_key(p) in done for p in _encoded_points(spec)), len(spec.grid_points())
    values = [t.value for t in trials if state(t) == "COMPLETE" and t.value is not None]
    best = (max if spec.direction == "maximize" else min)(values) if values else None
    return Progress(finished, total, sum(state(t) == "RUNNING" for t in trials),
                    sum(state(t) == "WAITING" for t in trials), best)


def _failed_for_good(trial: Any) -> bool:
    """A trial whose training failed on its own terms (diverged, bad data): retrying would fail again."""
    return trial.state.name == "FAIL" and "error" in trial.user_attrs


def _point_key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True)


def _encoded_points(spec: SweepSpec) -> list[dict[str, Any]]:
    return [{k: encode(v) for k, v in point.items()} for point in spec.grid_points()]


def enqueue_missing(study: Any, spec: SweepSpec, storage: Any) -> int:
    """Enqueue each grid point that no trial has finished, is running or waits for (for a search: each
    trial that was interrupted); a point whose trial was interrupted resumes from that trial's run
    directory. Returns how many were enqueued. Machines that start the same sweep at once take turns here,
    so no point is enqueued twice."""
    if spec.is_search:
        return _retry_interrupted(study, storage)
    with _study_lock(study, storage):
        by_point: dict[str, list[Any]] = {}
        for t in study.get_trials(deepcopy=False):
            if "spare" not in t.user_attrs:  # a waiting trial's parameters are still only its queued ones
                by_point.setdefault(_point_key(trial_point(t)), []).append(t)
        enqueued = 0
        for point in _encoded_points(spec):
            trials = by_point.get(_point_key(point), [])
            if any(t.state.name in (*DONE, "RUNNING", "WAITING") or _failed_for_good(t) for t in trials):
                continue
            interrupted = [t.user_attrs["run_dir"] for t in trials if "run_dir" in t.user_attrs]
            resume = {"run_dir": interrupted[-1]} if interrupted else {}
            study.enqueue_trial(point, user_attrs={"queued": True, **resume})  # retries copy these attributes
            enqueued += 1
    return enqueued


def _retry_interrupted(study: Any, storage: Any) -> int:
    """Enqueue again, with its parameters and run directory, each search trial that Ctrl-C or SIGTERM
    stopped (failed, not on its own terms, and no other trial in its directory yet): it resumes there.
    Returns how many were enqueued."""
    with _study_lock(study, storage):
        trials = study.get_trials(deepcopy=False)
        taken = {t.user_attrs.get("run_dir") for t in trials if t.state.name in (*DONE, "RUNNING", "WAITING")}
        enqueued = 0
        for t in trials:
            run_dir = t.user_attrs.get("run_dir")
            if t.state.name == "FAIL" and not _failed_for_good(t) and run_dir and run_dir not in taken:
                study.enqueue_trial(t.params, user_attrs={"run_dir": run_dir})
                taken.add(run_dir)
                enqueued += 1
    return enqueued


@contextlib.contextmanager
def _study_lock(study: Any, storage: Any) -> Iterator[None]:
    """A lock over the whole study: a file lock beside a SQLite database, an advisory lock in PostgreSQL."""
    dialect = storage.engine.dialect.name
    if dialect == "sqlite":
        with _file_lock(storage):
            yield
        return
    if dialect != "postgresql":
        yield  # other databases: start the command on one machine first, then on the others
        return
    from sqlalchemy import text

    key = zlib.crc32(study.study_name.encode())
    with storage.engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})


@contextlib.contextmanager
def _file_lock(storage: Any) -> Iterator[None]:
    """The lock file beside a SQLite database, held exclusively."""
    with open(f"{storage.engine.url.database}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def redacted(url: str) -> str:
    """A URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest and ":" in rest.split("@", 1)[0]:
        user = rest.split("@", 1)[0].split(":", 1)[0]
        rest = f"{user}:***@{rest.split('@', 1)[1]}"
    return f"{scheme}{sep}{rest}"


def worker_threads(workers: int) -> int:
    """Compute threads for each of `workers` processes on this machine, so together they never oversubscribe it.

    An OMP_NUM_THREADS set by the user caps them, as it caps torch in any other process: a machine shared with
    other jobs is told so that way.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, cores // workers)
    cap = os.environ.get("OMP_NUM_THREADS", "")
    return min(threads, int(cap)) if cap.isdigit() and int(cap) > 0 else threads


def wait_for_stale(study: Any) -> None:
    """Fail (and so retry) trials whose worker stopped beating, once their grace period has passed."""
    from optuna.storages import fail_stale_trials

    fail_stale_trials(study)
    time.sleep(IDLE_POLL_S)
