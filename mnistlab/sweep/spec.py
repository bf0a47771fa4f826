"""A sweep file: the base run, a grid and/or a search space, the seeds, and the metric to compare.

    name = "cnn-presets"           # the study's name (default: the file's stem)
    kind = "cnn"                   # "cnn" or "gan"
    preset = "seed"                # the base preset
    dataset = "mnist-sample"
    seeds = [0, 1, 2]              # every grid point runs once per seed
    metric = "test_acc"            # a per-epoch metric; a trial's value is its last
    direction = "maximize"
    pruner = "median"              # "none", "median" or "hyperband", on the per-epoch metric
    trials = 20                    # the budget of a [search]

    [set]                          # overrides of the base, as --set takes them
    epochs = 3

    [grid]                         # a field (or "preset") and its values: every combination runs
    preset = ["seed", "gorner", "best"]
    set = [{}, { lr = 3e-3, dropout = 0.2 }]   # or "set": recipes, each a table of overrides

    [search]                       # ranges and choices for a TPE search
    lr = { low = 1e-4, high = 1e-2, log = true }
    batch_size = { choices = [64, 128] }

A grid runs every combination once per seed (Optuna's trials are enqueued in file order); it may grow
between runs, and only its new points run. A search runs
`trials` trials at the first seed, TPE choosing each; the grid's values then become choices it picks from.
Confirm what a search found with a grid over seeds. Everything is checked here, before any trial starts.
"""

from __future__ import annotations

import itertools
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mnistlab.config import preset as preset_config
from mnistlab.config import with_overrides
from mnistlab.errors import MnistlabError

METRICS = {  # what each trainer reports per epoch, and whether more is better
    "cnn": {"test_acc": "maximize", "val_acc": "maximize", "train_loss": "minimize"},
    "gan": {"fcd": "minimize", "inception_score": "maximize", "class_entropy": "maximize",
            "confident_fraction": "maximize", "asked_digit_accuracy": "maximize", "loss_d": "minimize",
            "loss_g": "minimize"},
}
TOP_LEVEL = {"name", "kind", "preset", "dataset", "seeds", "metric", "direction", "pruner", "trials", "set", "grid",
             "search"}


class SweepError(MnistlabError):
    """A sweep file that cannot run: the message names the file, the key and what is allowed."""


@dataclass(frozen=True)
class SearchParam:
    """One dimension of a search: a number between low and high (log-scaled, stepped), or a choice."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] | None = None

    def suggest(self, trial: Any, name: str) -> Any:
        if self.choices is not None:
            return decode(trial.suggest_categorical(name, [encode(c) for c in self.choices]))
        if isinstance(self.low, int) and isinstance(self.high, int) and not isinstance(self.step, float):
            return trial.suggest_int(name, self.low, self.high, step=int(self.step or 1), log=self.log)
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)

    def corners(self) -> list[Any]:
        """The values that bound this dimension: each must make a valid config."""
        return list(self.choices) if self.choices is not None else [self.low, self.high]


@dataclass(frozen=True)
class SweepSpec:
    name: str  # the Optuna study's name
    kind: Literal["cnn", "gan"]  # which trainer every trial runs
    preset: str  # the base preset (a grid or search over "preset" replaces it)
    dataset: str | None  # None = the preset's own
    seeds: tuple[int, ...]  # each grid point runs once per seed; a search uses the first
    metric: str  # the per-epoch metric a trial reports and is judged by (its last value)
    direction: Literal["maximize", "minimize"]
    pruner: Literal["none", "median", "hyperband"]  # stops trials whose per-epoch metric lags the others'
    trials: int | None  # the search's budget of trials; None for a grid alone
    overrides: dict[str, Any] = field(default_factory=dict)  # [set]: applied to every trial
    grid: dict[str, list[Any]] = field(default_factory=dict)  # [grid]: every combination runs
    search: dict[str, SearchParam] = field(default_factory=dict)  # [search]: TPE picks within these

    @property
    def is_search(self) -> bool:
        return bool(self.search)

    def grid_points(self) -> list[dict[str, Any]]:
        """Every combination of the grid's values and the seeds, in file order, seed fastest."""
        keys, values = list(self.grid), list(self.grid.values())
        return [dict(zip(keys, combo), seed=seed) for combo in itertools.product(*values) for seed in self.seeds]

    def suggest(self, trial: Any) -> dict[str, Any]:
        """A search's parameters for one trial, as TPE chooses them, with its seed."""
        params = {k: p.suggest(trial, k) for k, p in self.search.items()}
        params["seed"] = trial.suggest_categorical("seed", [self.seeds[0]])
        return params

    def config(self, params: dict[str, Any]) -> Any:
        """The run config of one trial's parameters (a grid point or a search's suggestion, with its seed)."""
        overrides = {**self.overrides, **params.get("set", {}),
                     **{k: v for k, v in params.items() if k not in ("preset", "seed", "set")}}
        if "seed" in params:
            overrides["run.seed"] = params["seed"]
        if self.dataset is not None:
            overrides["run.dataset"] = self.dataset
        return with_overrides(preset_config(self.kind, params.get("preset", self.preset)), overrides)


def encode(value: Any) -> Any:
    """Optuna's parameters are scalars; a list value (filters = [8, 16, 32]) travels as its JSON."""
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def decode(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        return json.loads(value)
    return value


def trial_point(trial: Any) -> dict[str, Any]:
    """A trial's encoded parameters: those its search suggested, or the grid point it was queued with."""
    return trial.params or trial.system_attrs.get("fixed_params", {})


def load_spec(path: str | Path) -> SweepSpec:
    """Read and check a sweep file; every problem is one `SweepError` line naming the file and the key."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise SweepError(f"cannot read sweep file {path}: {getattr(e, 'strerror', None) or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise SweepError(f"{path} is not valid TOML: {e}") from None
    try:
        spec = _parse(data, path.stem)
        _check_configs(spec)
    except MnistlabError as e:
        raise SweepError(f"{path}: {e}") from None
    return spec


def _parse(data: dict[str, Any], stem: str) -> SweepSpec:
    unknown = sorted(set(data) - TOP_LEVEL)
    if unknown:
        raise MnistlabError(f"unknown key {unknown[0]!r}; a sweep file has: {', '.join(sorted(TOP_LEVEL))}")
    kind = _get(data, "kind", str, None)
    if kind not in METRICS:
        raise MnistlabError(f"kind must be one of cnn, gan; got {kind!r}")
    metric = _get(data, "metric", str, "test_acc" if kind == "cnn" else "fcd")
    if metric not in METRICS[kind]:
        raise MnistlabError(f"metric {metric!r} is not one a {kind} run reports; choose one of "
                            f"{', '.join(METRICS[kind])}")
    direction = _get(data, "direction", str, METRICS[kind][metric])
    pruner = _get(data, "pruner", str, "none")
    for key, value, allowed in (("direction", direction, ("maximize", "minimize")),
                                ("pruner", pruner, ("none", "median", "hyperband"))):
        if value not in allowed:
            raise MnistlabError(f"{key} must be one of {', '.join(allowed)}; got {value!r}")
    seeds = _get(data, "seeds", list, [0])
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise MnistlabError(f"seeds must be a non-empty list of integers >= 0; got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise MnistlabError(f"seeds repeat a seed: {seeds!r}")
    grid = _get(data, "grid", dict, {})
    for key, values in grid.items():
        if key == "seed":
            raise MnistlabError("grid.seed: list the seeds in seeds = [...], not in the grid")
        if not isinstance(values, list) or not values:
            raise MnistlabError(f"grid.{key} must be a non-empty list of values; got {values!r}")
        if key == "set" and not all(isinstance(v, dict) for v in values):
            raise MnistlabError(f"grid.set is a list of recipes, each a table of overrides; got {values!r}")
    search = {key: _search_param(key, value) for key, value in _get(data, "search", dict, {}).items()}
    if set(search) & set(grid):
        raise MnistlabError(f"{sorted(set(search) & set(grid))[0]!r} is both in [grid] and [search]")
    trials = _get(data, "trials", int, None)
    if search and (trials is None or trials < 1):
        raise MnistlabError("a [search] needs a budget: trials = N (N >= 1)")
    if trials is not None and not search:
        raise MnistlabError("trials = N is the budget of a [search], and this file has none; a grid runs every point")
    if not grid and not search and "grid" in data:
        raise MnistlabError("[grid] is empty: give at least one field and its list of values")
    if search:  # the grid's values become choices the search picks from
        search = {**{k: SearchParam(choices=tuple(v)) for k, v in grid.items()}, **search}
        grid = {}
    return SweepSpec(
        name=_get(data, "name", str, stem), kind=kind, preset=_get(data, "preset", str, "seed" if kind == "cnn"
                                                                   else "default"),
        dataset=_get(data, "dataset", str, None), seeds=tuple(seeds), metric=metric, direction=direction,
        pruner=pruner, trials=trials, overrides=_get(data, "set", dict, {}), grid=grid, search=search,
    )


def _search_param(key: str, value: Any) -> SearchParam:
    if not isinstance(value, dict):
        raise MnistlabError(f"search.{key} must be a table: {{ low = .., high = .. }} or {{ choices = [..] }}")
    unknown = sorted(set(value) - {"low", "high", "log", "step", "choices"})
    if unknown:
        raise MnistlabError(f"search.{key} has unknown key {unknown[0]!r}; allowed: low, high, log, step, choices")
    if "choices" in value:
        if set(value) != {"choices"} or not isinstance(value["choices"], list) or not value["choices"]:
            raise MnistlabError(f"search.{key}.choices must be a non-empty list, alone")
        return SearchParam(choices=tuple(value["choices"]))
    low, high = value.get("low"), value.get("high")
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (low, high)) or not low < high:
        raise MnistlabError(f"search.{key} needs numbers low < high; got low={low!r}, high={high!r}")
    if value.get("log") and low <= 0:
        raise MnistlabError(f"search.{key}: a log scale needs low > 0; got {low!r}")
    return SearchParam(low=low, high=high, log=bool(value.get("log", False)), step=value.get("step"))


def _check_configs(spec: SweepSpec) -> None:
    """Build the config of every grid point, and of every corner of the search space: a value the config
    refuses fails now, naming the setting, not in a worker an hour in."""
    if spec.is_search:
        base = {k: p.corners()[0] for k, p in spec.search.items()}
        points = [dict(base, **{k: v}, seed=spec.seeds[0]) for k, p in spec.search.items() for v in p.corners()]
    else:
        points = spec.grid_points()
    for params in points:
        spec.config(params)


def _get(data: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    value = data.get(key, default)
    if value is not None and not (isinstance(value, kind) and not (kind is int and isinstance(value, bool))):
        raise MnistlabError(f"{key} must be a {'table' if kind is dict else kind.__name__}; got {value!r}")
    return value
