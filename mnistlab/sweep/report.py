"""What a sweep measured: its trials grouped by configuration, with n, mean ± sd, min–max and time."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from mnistlab.errors import MnistlabError, require_extra
from mnistlab.sweep import engine
from mnistlab.sweep.spec import decode, trial_point


def summarize(study: Any) -> dict[str, Any]:
    """Every configuration (a trial's parameters less its seed), best first, with the spread over its seeds."""
    metric, direction = study.user_attrs.get("metric", "value"), study.direction.name.lower()
    groups: dict[str, dict[str, Any]] = {}
    for t in study.get_trials(deepcopy=False):
        if "spare" in t.user_attrs or t.state.name in ("WAITING", "RUNNING"):
            continue
        point = trial_point(t)
        config = {k: decode(v) for k, v in sorted(point.items()) if k != "seed"}
        group = groups.setdefault(json.dumps(config, sort_keys=True), {
            "config": config, "values": [], "seeds": [], "train_s": [], "run_dirs": [], "pruned": 0, "failed": []})
        if t.state.name == "COMPLETE":
            group["values"].append(t.value)
            group["seeds"].append(point.get("seed"))
            group["train_s"].append(t.user_attrs.get("train_s"))
            group["run_dirs"].append(t.user_attrs.get("run_dir"))
        elif t.state.name == "PRUNED":
            group["pruned"] += 1
        elif "error" in t.user_attrs:
            group["failed"].append(t.user_attrs["error"])
    rows = [_row(g) for g in groups.values()]
    sign = -1 if direction == "maximize" else 1
    rows.sort(key=lambda r: (r["mean"] is None, sign * (r["mean"] or 0.0)))
    return {"study": study.study_name, "metric": metric, "direction": direction, "configurations": rows}


def _row(group: dict[str, Any]) -> dict[str, Any]:
    values, times = group["values"], [s for s in group["train_s"] if s is not None]
    return {
        "config": group["config"], "n": len(values),
        "mean": statistics.fmean(values) if values else None,
        "sd": statistics.stdev(values) if len(values) > 1 else None,
        "min": min(values, default=None), "max": max(values, default=None),
        "train_s": statistics.fmean(times) if times else None,
        "seeds": group["seeds"], "values": values, "run_dirs": group["run_dirs"],
        "pruned": group["pruned"], "failed": group["failed"],
    }


def load_sweep(directory: str | Path | None = None, storage: str | None = None,
                 study: str | None = None) -> dict[str, Any]:
    """The summary of the sweep in `directory` (its sweep.db), or of `study` in the database at `storage`."""
    require_extra("mnistlab sweep show", "sweep", engine.SWEEP_STACK)
    import optuna

    if directory is None and storage is None:
        raise MnistlabError("name a sweep directory, or --storage URL with --study NAME")
    if directory is not None and storage is None and not (Path(directory) / "sweep.db").exists():
        raise MnistlabError(f"{directory} holds no sweep.db: is it a sweep's --out directory?")
    url = engine.storage_url(directory or ".", storage)
    names = [s.study_name for s in optuna.get_all_study_summaries(engine.open_storage(url, heartbeat=False))]
    if study is None:
        if len(names) != 1:
            raise MnistlabError(f"{engine.redacted(url)} holds {len(names)} studies; name one with --study "
                                f"({', '.join(names) or 'none'})")
        study = names[0]
    if study not in names:
        raise MnistlabError(f"no study {study!r} in {engine.redacted(url)}; it has: {', '.join(names) or 'none'}")
    return summarize(optuna.load_study(study_name=study, storage=engine.open_storage(url, heartbeat=False)))


def table(summary: dict[str, Any]) -> str:
    """The summary as a text table, best configuration first."""
    lines = [f"sweep {summary['study']}: {summary['metric']} ({summary['direction']}), grouped by configuration",
             f"  {'n':>3}  {'mean':>9}  {'sd':>8}  {'min':>9}  {'max':>9}  {'train s':>8}  configuration"]
    for r in summary["configurations"]:
        number = lambda x, w: f"{x:>{w}.4f}" if x is not None else f"{'-':>{w}}"  # noqa: E731
        extra = "".join([f"  ({r['pruned']} pruned)" if r["pruned"] else "",
                         f"  ({len(r['failed'])} failed: {r['failed'][0]})" if r["failed"] else ""])
        time = f"{r['train_s']:>8.1f}" if r["train_s"] is not None else f"{'-':>8}"
        lines.append(f"  {r['n']:>3}  {number(r['mean'], 9)}  {number(r['sd'], 8)}  {number(r['min'], 9)}  "
                     f"{number(r['max'], 9)}  {time}  {_label(r['config'])}{extra}")
    return "\n".join(lines)


def _label(config: dict[str, Any]) -> str:
    return ", ".join(f"{k}={json.dumps(v) if isinstance(v, (list, dict)) else v}" for k, v in config.items()) or "base"


def plot(summary: dict[str, Any], path: str | Path) -> Path:
    """The metric of each configuration, mean with sd error bars, written as a PNG."""
    from mnistlab import plots

    plots.save(plots.sweep_errorbars(summary, _label), Path(path))
    return Path(path)
