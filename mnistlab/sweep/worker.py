"""One sweep worker: a process that takes trials from the study until none is left.

Started by `mnistlab sweep` (`python -m mnistlab.sweep.worker FILE STORAGE OUT THREADS`), one per share of
this machine's cores, or per GPU. Each trial is one training run in its own run directory.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from mnistlab.checkpoint import CHECKPOINT_NAME
from mnistlab.errors import MnistlabError
from mnistlab.sweep import engine
from mnistlab.sweep.spec import SweepSpec, decode, load_spec, trial_point


class TrialFailed(Exception):
    """A trial whose training failed on its own terms; the study records it as failed, with the reason."""


def objective(trial: Any, spec: SweepSpec, out: Path, data: dict[tuple, Any]) -> float:
    """Train one trial's run and return its last reported metric, reporting each epoch's to the pruner."""
    import optuna

    from mnistlab.train import classifier, gan
    from mnistlab.train.loop import Interrupted

    if not spec.is_search and "queued" not in trial.user_attrs:
        # Another worker took the last queued point between our look and our ask: this trial has no point of
        # its own, so it is set aside, untrained.
        trial.set_user_attr("spare", True)
        raise TrialFailed("spare")
    # A grid point is not suggested but read from the queue: Optuna fixes a categorical's choices for the
    # whole study, and a grid's values and seeds may grow between runs of the same sweep.
    params = spec.suggest(trial) if spec.is_search else \
        trial_point(trial.study.get_trials(deepcopy=False)[trial.number])
    config = spec.config({k: decode(v) for k, v in params.items()})
    # A retried trial carries the run directory of the one it retries, and resumes from its checkpoint.
    run_dir = Path(trial.user_attrs.get("run_dir") or out / f"{spec.name}-trial-{trial.number:04d}")
    trial.set_user_attr("run_dir", str(run_dir))
    trainer = classifier if spec.kind == "cnn" else gan
    key = (spec.kind, config.run.dataset, config.run.data_root, getattr(config.train, "val_size", 0))
    if key not in data:  # every trial of a worker trains on the same data: load it once
        data[key] = trainer.load_data(config)

    def report(metrics: dict[str, Any]) -> None:
        value = metrics.get(spec.metric)
        if value is not None:
            trial.report(value, metrics["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned(f"epoch {metrics['epoch']}: {spec.metric} {value:.4g}")

    train = trainer.train_classifier if spec.kind == "cnn" else trainer.train_gan
    resume = run_dir if (run_dir / CHECKPOINT_NAME).exists() else None
    started = time.perf_counter()
    try:
        if resume is not None:
            run = train(dataset=data[key], resume=resume, callback=report, progress=False)
        else:
            run = train(config, data[key], callback=report, progress=False, out=str(run_dir))
    except (Interrupted, optuna.TrialPruned):
        raise
    except MnistlabError as e:
        trial.set_user_attr("error", str(e))
        print(f"mnistlab sweep: trial {trial.number} failed: {e}", file=sys.stderr)
        raise TrialFailed(str(e)) from None
    values = [m[spec.metric] for m in run.metrics if m.get(spec.metric) is not None]
    if not values:
        trial.set_user_attr("error", f"the run reported no {spec.metric}")
        raise TrialFailed(f"the run reported no {spec.metric}")
    trial.set_user_attr("train_s", round(sum(m["time_s"] for m in run.metrics), 3))
    trial.set_user_attr("run_s", round(time.perf_counter() - started, 3))  # the whole run, as the engine sees it
    return values[-1]


def work(spec_path: str, url: str, out: str, threads: int) -> int:
    """Take trials until the sweep is done, or until only trials running elsewhere (or failed) are left."""
    import torch

    torch.set_num_threads(threads)
    spec = load_spec(spec_path)
    study = engine.open_study(spec, engine.open_storage(url))
    data: dict[tuple, Any] = {}
    while True:
        state = engine.progress(study, spec)
        if state.finished >= state.total:
            return 0
        # A grid's points are all enqueued; a search's budget may be spent by the trials running elsewhere.
        spent = state.waiting == 0 if not spec.is_search else state.finished + state.running >= state.total
        if spent:
            if state.running == 0:
                return 0  # points left have failed trials: the next `mnistlab sweep` enqueues them again
            engine.wait_for_stale(study)  # running elsewhere, or dead: then failed and retried
            continue
        study.optimize(lambda t: objective(t, spec, Path(out), data), n_trials=1, catch=(TrialFailed,))


def main(argv: list[str]) -> int:
    from mnistlab.train.loop import Interrupted

    spec_path, url, out, threads = argv
    try:
        return work(spec_path, url, out, int(threads))
    except Interrupted as e:
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except MnistlabError as e:
        print(f"mnistlab sweep worker: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # Every trial is committed to the study by now; skipping the interpreter's teardown (torch's takes
    # ~0.7 s) lets the sweep end as soon as its last trial does.
    os._exit(code)
