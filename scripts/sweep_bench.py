"""Sweep throughput: the same grid of seed-CNN trials with 1 worker and with 2, side by side in one run.

    python scripts/sweep_bench.py [--trials 8] [--epochs 2] [--repeats 1]

Prints trials per hour for each, their ratio, and the engine's own time per trial: each worker's wall
time less the time its runs took (process start, torch import, data loading, Optuna and the database).
It also prints the ceiling of that ratio: one worker's trials have both cores' threads, two workers'
trials one each, so 2 workers can be at most 2 x (a trial's training with 2 threads / with 1) faster.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import optuna

from mnistlab.sweep.engine import storage_url
from mnistlab.sweep.run import run_sweep


def measure(workers: int, trials: int, epochs: int, directory: Path) -> tuple[float, float, float]:
    """(trials per hour, engine seconds per trial, training seconds per trial) of one fresh sweep."""
    directory.mkdir(parents=True, exist_ok=True)
    spec = directory / f"bench-{workers}.toml"
    seeds = list(range(trials))
    spec.write_text(f'kind = "cnn"\npreset = "seed"\ndataset = "mnist-sample"\nseeds = {seeds}\n'
                    f'[set]\nepochs = {epochs}\n[grid]\nlr = [0.001]\n')
    out = directory / f"out-{workers}"
    start = time.perf_counter()
    run_sweep(spec, workers=workers, out=out, progress=False)
    wall = time.perf_counter() - start
    study = optuna.load_study(study_name=spec.stem, storage=storage_url(out, None))
    run_s = sum(t.user_attrs["run_s"] for t in study.get_trials() if t.state.name == "COMPLETE")
    return trials / wall * 3600, (wall * workers - run_s) / trials, run_s / trials


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    rows: dict[int, list[tuple[float, float, float]]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for workers in (1, 2):  # interleaved, so both see the same machine
                rows[workers].append(measure(workers, args.trials, args.epochs, Path(tmp) / f"r{r}"))
    print(f"{args.trials} seed-CNN trials of {args.epochs} epochs on mnist-sample, {args.repeats} repeat(s)")
    for workers, results in rows.items():
        rates, overheads, training = zip(*results)
        print(f"  {workers} worker(s): {statistics.median(rates):7.0f} trials/h (min {min(rates):.0f}, max "
              f"{max(rates):.0f}); engine {statistics.median(overheads):.2f} s per trial; training "
              f"{statistics.median(training):.2f} s per trial")
    ratio = statistics.median(r[0] for r in rows[2]) / statistics.median(r[0] for r in rows[1])
    ceiling = 2 * statistics.median(r[2] for r in rows[1]) / statistics.median(r[2] for r in rows[2])
    print(f"  2 workers / 1: {ratio:.2f}x trials per hour; the trials' own thread scaling allows at most "
          f"{ceiling:.2f}x ({ratio / ceiling:.0%} of it reached)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
