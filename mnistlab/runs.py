"""Run directories: what one says about itself (`read_run`, a `RunInfo`: the one model of a run), groups of
them, and the runs under a folder as a table, or a few compared side by side.

A run directory is what `train_classifier` / `train_gan` write: `config.json` and `metrics.jsonl`,
and (after the first epoch) `checkpoint.safetensors`; a GAN run also `best.safetensors`. They are read
without torch: the small files, validated where they enter, and the checkpoints' JSON headers
(`mnistlab.checkpoint`), never their tensors, so listing stays fast on a folder of many runs.

    >>> from mnistlab.runs import list_runs, compare_runs
    >>> sorted((r.kind, r.headline[:8]) for r in list_runs("runs"))
    [('cnn', 'test acc'), ('gan', 'FCD ...')]
    >>> table, plot = compare_runs(["runs/cnn-seed", "runs/gan-default"], "compare.png")
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from mnistlab.checkpoint import (
    BEST_NAME,
    CHECKPOINT_NAME,
    CONFIG_SCHEMA,
    METRIC_SCHEMA,
    CheckpointHeader,
    SchemaError,
    check,
    parse_json,
    read_checkpoint_header,
)
from mnistlab.errors import MnistlabError, one_line

CONFIG_NAME = "config.json"
METRICS_NAME = "metrics.jsonl"
RUN_FILES = (CONFIG_NAME, METRICS_NAME, CHECKPOINT_NAME)


@dataclass(frozen=True)
class RunInfo:
    """One run directory as its small files and its checkpoint's header describe it.

    The listing's columns (`epochs`, `wall`, `headline`, ...) are derived from the fields, never stored beside
    them. Only `read_run(strict=False)` returns a run it could not read: `kind` "?" and `error` saying why.
    """

    path: Path  # the run directory
    name: str  # how tables show it: the path below the folder listed, or the directory's own name
    kind: str  # "cnn" or "gan"; "?" when unreadable
    preset: str  # "?" when unreadable
    dataset: str  # the dataset it trained on, "?" when nothing says
    config: dict[str, Any]
    metrics: list[dict[str, Any]]  # one dict per finished epoch
    checkpoint: CheckpointHeader | None  # None before the first epoch finished
    best: CheckpointHeader | None = None  # best.safetensors: a GAN's best generator, None when it has none
    mtime: float = 0.0  # when the run last wrote its files: listings put the newest first
    error: str | None = None  # why the run cannot be read, on one line; None when it can

    @property
    def epochs(self) -> int:
        return len(self.metrics)

    @property
    def wall_s(self) -> float:
        """Training time summed over the finished epochs."""
        return float(sum(m.get("time_s") or 0.0 for m in self.metrics))

    @property
    def wall(self) -> str:
        return _duration(self.wall_s) if self.metrics else "-"

    @property
    def init_from(self) -> str | None:
        """The run this one was fine-tuned from, when it was."""
        return self.config.get("run", {}).get("init_from")

    @property
    def best_fcd(self) -> float | None:
        return self.best.state["fcd"] if self.best else None

    @property
    def best_epoch(self) -> int | None:
        return self.best.state["epoch"] if self.best else None

    def summary(self) -> dict[str, Any]:
        """The listing's row as plain data (`mnistlab runs --json`): what it is, how far it got, its last metrics."""
        return {"path": str(self.path), "name": self.name, "kind": self.kind, "preset": self.preset,
                "dataset": self.dataset, "epochs": self.epochs, "wall_s": self.wall_s, "headline": self.headline,
                "best_fcd": self.best_fcd, "best_epoch": self.best_epoch, "init_from": self.init_from,
                "last": self.metrics[-1] if self.metrics else None, "error": self.error}

    @property
    def headline(self) -> str:
        """"test acc 0.9863" for a CNN; for a GAN its last FCD and the best one, kept in best.safetensors
        ("FCD 3.21, best 2.90 at epoch 7"), or "D(x) 0.71" without quality metrics; "unreadable: <reason>"."""
        if self.error is not None:
            return f"unreadable: {self.error}"
        if not self.metrics:
            return "no epoch finished yet"
        if self.kind == "cnn":
            acc = self.metrics[-1].get("test_acc")
            return (f"test acc {acc:.4f}" if acc is not None else "no test accuracy") + (
                f", fine-tuned from {self.init_from}" if self.init_from else "")
        quality = next((m for m in reversed(self.metrics) if m.get("fcd") is not None), None)
        best = f", best {self.best_fcd:.2f} at epoch {self.best_epoch}" if self.best_fcd is not None else ""
        if quality is not None:
            return f"FCD {quality['fcd']:.2f}{best}"
        d_x = self.metrics[-1].get("d_x")
        return f"D(x) {d_x:.2f}" if d_x is not None else "no metrics"


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


# ----------------------------------------------------------------------------------------------
# One run directory


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and any((path / name).is_file() for name in RUN_FILES)


def read_run(path: str | Path, strict: bool = True) -> RunInfo:
    """A run directory (or its checkpoint file): its kind, preset, dataset, config and metrics per epoch.

    The kind comes from config.json, or for runs older than that field from the checkpoint's header.
    A path that is not a run directory at all raises `MnistlabError`. A run directory whose files are broken
    raises it too with `strict`; without, it comes back with `kind` "?" and its `error`.

    >>> read_run("runs/cnn-seed").headline
    'test acc 0...'
    """
    run_dir = Path(path)
    if run_dir.is_file() and run_dir.name == CHECKPOINT_NAME:
        run_dir = run_dir.parent
    if not is_run_dir(run_dir):  # not even broken: not a run at all, whatever `strict` says
        if run_dir.is_dir():
            raise MnistlabError(f"{path} is not a run directory (no {CONFIG_NAME}, {METRICS_NAME} or "
                                f"{CHECKPOINT_NAME} in it)")
        if run_dir.exists():
            raise MnistlabError(f"{path} is a file, not a run directory; give the folder a run wrote")
        raise MnistlabError(f"{path} does not exist; give a run directory such as runs/cnn-seed-...")
    name, mtime = run_dir.name or str(run_dir), _mtime(run_dir)
    try:
        return _read_files(run_dir, name, mtime)
    except MnistlabError as e:
        if strict:
            raise MnistlabError(f"cannot read run {run_dir}: {one_line(e)}") from None
        return RunInfo(run_dir, name, "?", "?", "?", {}, [], None, mtime=mtime, error=one_line(e))


def _read_files(run_dir: Path, name: str, mtime: float) -> RunInfo:
    has = {file: (run_dir / file).is_file() for file in RUN_FILES}
    header = read_checkpoint_header(run_dir / CHECKPOINT_NAME) if has[CHECKPOINT_NAME] else None
    if has[CONFIG_NAME]:
        config = _json_file(run_dir / CONFIG_NAME, CONFIG_SCHEMA)
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
    return RunInfo(run_dir, name, kind, config["preset"], dataset, config, metrics, header, best, mtime)


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except UnicodeDecodeError:
        raise MnistlabError(f"{path.name}: not UTF-8 text") from None
    except OSError as e:
        raise MnistlabError(f"cannot read {path}: {e.strerror or one_line(e)}") from None


def _json_file(path: Path, schema: Any) -> Any:
    try:
        data = parse_json(_read_text(path), path.name)
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
                metrics.append(parse_json(line, where))
                check(metrics[-1], METRIC_SCHEMA, where)
            except (SchemaError, RecursionError) as e:
                raise MnistlabError(f"{one_line(e)} (one JSON object per epoch)") from None
    return metrics


# ----------------------------------------------------------------------------------------------
# The runs under a folder, as a table

# Per-epoch fields that describe speed, not results: left out of comparisons' metric rows.
_TIMING = ("time_s", "elapsed_s", "images_per_s")


def list_runs(directory: str | Path = "runs") -> list[RunInfo]:
    """Every run directory at or below `directory`, newest first, each named by its path below `directory`.

    A missing or empty directory gives []; a run directory that cannot be read is listed with its `error`
    (headline "unreadable: <reason>").

    >>> for run in sorted(list_runs("runs"), key=lambda r: r.path):
    ...     print(run.kind, run.preset, run.headline[:8], run.path)
    cnn seed test acc runs/cnn-seed
    gan default FCD ... runs/gan-default
    """
    root = Path(directory)
    if not root.exists():
        return []
    if not root.is_dir():
        raise MnistlabError(f"{root} is not a directory; give a folder of runs (default: runs)")
    found = []
    for run_dir in _run_dirs(root):
        name = run_dir.relative_to(root).as_posix()
        found.append(dataclasses.replace(read_run(run_dir, strict=False),
                                         name=name if name != "." else run_dir.resolve().name))
    found.sort(key=lambda r: (r.mtime, str(r.path)), reverse=True)
    return found


def quality_over_time(path: str | Path, target: float = 3.0) -> dict[str, Any]:
    """A GAN run's FCD at each of its evaluations against its training seconds, and its time to quality.

    Keys: `name`, `preset`, `seconds` (training seconds, summed over epochs up to each evaluation), `fcd`
    (one per evaluation), `floor` (the real data's FCD, `fcd_real_floor`), `target_fcd` (`target` × floor),
    `seconds_to_target` (the first evaluation at or below it; None when never), `best_fcd`, `best_seconds`.
    A run that is not a GAN, or that never measured FCD, raises `MnistlabError`.

    >>> quality_over_time("runs/gan-default")["seconds_to_target"] is None  # 3 steps: far from the floor
    True
    """
    run = read_run(path)
    if run.kind != "gan":
        raise MnistlabError(f"{path} is a {run.kind} run; FCD over time is a GAN run's")
    seconds, fcds, floors, elapsed = [], [], [], 0.0
    for m in run.metrics:
        elapsed += m.get("time_s") or 0.0
        if m.get("fcd") is not None and m.get("fcd_real_floor") is not None:
            seconds.append(elapsed)
            fcds.append(m["fcd"])
            floors.append(m["fcd_real_floor"])
    if not fcds:
        raise MnistlabError(f"{path} measured no FCD (metrics.jsonl has no fcd and fcd_real_floor): train it with "
                            "train.eval_every > 0 and a quality judge")
    target_fcd = target * floors[-1]
    reached = next((s for s, f in zip(seconds, fcds) if f <= target_fcd), None)
    best = fcds.index(min(fcds))
    return {"name": run.name, "preset": run.preset, "seconds": seconds, "fcd": fcds, "floor": floors[-1],
            "target_fcd": target_fcd, "seconds_to_target": reached, "best_fcd": fcds[best],
            "best_seconds": seconds[best]}


def compare_runs(
    paths: Sequence[str | Path], plot_path: str | Path | None = "runs-compare.png"
) -> tuple[list[list[str]], Path | None]:
    """Runs side by side: a table of their final metrics, and one plot of their progress per epoch.

    The table's first row is the header ("metric", then one column per run); then one row each for
    kind, preset, dataset, epochs, wall time, headline and (with a GAN run) best FCD, then one per metric
    any run recorded, with the last value the run recorded for it ("-" where it has none). The plot,
    written to `plot_path` (skipped when None), shows test accuracy per epoch for CNN runs and FCD per
    epoch for GAN runs (D(x) when no GAN run measured FCD); with runs of both kinds, the two panels side
    by side.
    Returns (table, plot path). A path that is not a readable run raises `MnistlabError`.

    >>> table, plot = compare_runs(["runs/cnn-seed", "runs/gan-default"], "compare.png")
    >>> table[0]
    ['metric', 'cnn-seed', 'gan-default']
    """
    if not paths:
        raise MnistlabError("compare needs at least one run directory: mnistlab runs compare RUN [RUN ...]")
    runs = [read_run(p, strict=True) for p in paths]
    runs = [dataclasses.replace(run, name=name) for run, name in zip(runs, _unique_names([r.path for r in runs]))]

    finals = [_final(run.metrics) for run in runs]
    keys: list[str] = []
    for final in finals:
        keys += [k for k in final if k not in keys and k != "epoch" and k not in _TIMING]
    table = [["metric"] + [r.name for r in runs]]
    for field in ("kind", "preset", "dataset", "epochs", "wall", "headline"):
        table.append([field] + [str(getattr(r, field)) for r in runs])
    if any(r.kind == "gan" for r in runs):
        table.append(["best FCD"] + [f"{r.best_fcd:.4f} (epoch {r.best_epoch})" if r.best_fcd is not None
                                     else "-" for r in runs])
    for key in keys:
        table.append([key] + [_format_value(final.get(key)) for final in finals])

    if plot_path is not None:
        plot_path = Path(plot_path)
        plot_path.parent.mkdir(parents=True, exist_ok=True)
        _write_plot(runs, plot_path)
    return table, plot_path


# ----------------------------------------------------------------------------------------------
# Reading


def _run_dirs(root: Path) -> list[Path]:
    """Run directories at or below `root`; a run's own subfolders (samples/) are not searched."""
    found, seen = [], set()
    # Symlinked folders are followed (people link runs in from elsewhere), each real folder once.
    for current, subdirs, _files in os.walk(root, onerror=lambda _e: None, followlinks=True):
        here = Path(current)
        real = os.path.realpath(here)
        if real in seen:
            subdirs.clear()
            continue
        seen.add(real)
        if is_run_dir(here):
            found.append(here)
            subdirs.clear()
        else:
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
    return found


def _mtime(run_dir: Path) -> float:
    """When the run last wrote its files (the folder's own time when it has none)."""
    times = []
    for name in RUN_FILES:
        try:
            times.append((run_dir / name).stat().st_mtime)
        except OSError:
            pass
    if not times:
        try:
            times.append(run_dir.stat().st_mtime)
        except OSError:
            pass
    return max(times, default=0.0)


def _final(metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """Each metric's last recorded (non-null) value: a GAN measures quality only every few epochs."""
    final: dict[str, Any] = {}
    for m in metrics:
        final.update({k: v for k, v in m.items() if v is not None})
    return final


# ----------------------------------------------------------------------------------------------
# Formatting and plotting


def _duration(seconds: float) -> str:
    """42.3 → "42s", 83 → "1m23s", 3725 → "1h02m"."""
    s = int(round(seconds))
    if s < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _format_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if value != 0 and abs(value) < 1e-3:
        return f"{value:.2e}"
    if abs(value) < 10:
        return f"{value:.4f}"
    return f"{value:.2f}" if abs(value) < 1e4 else f"{value:.0f}"


def _unique_names(dirs: list[Path]) -> list[str]:
    """The shortest path suffixes that tell the runs apart: cnn, or quickstart-1/cnn vs quickstart-2/cnn."""
    parts = [d.resolve().parts for d in dirs]
    for depth in range(1, max(len(p) for p in parts) + 1):
        names = ["/".join(p[-depth:]) for p in parts]
        if len(set(names)) == len(names):
            return names
    return [str(d) for d in dirs]  # the same run given twice


def _write_plot(runs: list[RunInfo], path: Path) -> None:
    from mnistlab import plots

    figures = []
    cnn = [r for r in runs if r.kind == "cnn"]
    gan = [r for r in runs if r.kind == "gan"]
    if cnn:
        figures.append(plots.compare_runs(cnn, "test_acc", "test accuracy"))
    if gan:
        has_fcd = any(m.get("fcd") is not None for r in gan for m in r.metrics)
        figures.append(plots.compare_runs(gan, "fcd", "FCD (lower is better)") if has_fcd
                       else plots.compare_runs(gan, "d_x", "D(x)"))
    if len(figures) == 1:
        plots.save(figures[0], path)
    else:  # both kinds: the two figures side by side in one PNG
        plots.save_side_by_side(figures, path)
