"""The results tables, generated from committed sweep results so that no figure in the docs can drift from its data.

    python scripts/results.py export sweeps/cnn-seed-mnist --conditions "2-core x86-64 CPU, 2 workers x 1 thread"
    python scripts/results.py export sweeps/gan-seed-mnist --workers 1 --conditions "..."
    python scripts/results.py render          # rewrite every generated table in README.md and docs/*.md
    python scripts/results.py render --check  # exit 1, naming the file, when a committed table differs

`export` writes `results/<study>.json`: `mnistlab sweep show DIR --json` (every trial's value and seed; each run
directory's name, not its path), the command that ran the sweep (its experiments/ file) and one line of conditions.
A Markdown file asks for a table with a marker line, and `render` fills the lines after it up to the end marker:

    <!-- results: cnn-seed-mnist -->
    <!-- end results -->

A marker may relabel rows: `<!-- results: cnn-presets-mnist label=preset -->` shows each row by its `preset`
value alone; `epochs=true` shows the metric after each epoch instead (mean ± sd over the seeds), and
`calibration=true` the runs' temperatures, ECE and NLL (exported with --calibration), and `gan=true` a GAN
sweep's quality at each run's last scored epoch, with the real-data floor beside the FCD.

A benchmark script's committed output (`results/NAME.txt`, as the script printed it) gives its Markdown
table as it is: `<!-- results: finetune-bench.txt -->`; `table=K` takes the K-th table of the file.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"^<!-- results: (?P<name>[\w.-]+)(?P<options>(?: \w+=\S+)*) -->$")
END = "<!-- end results -->"


def export(sweep_dir: str, conditions: str, calibration: bool = False, workers: int = 2) -> Path:
    from mnistlab.sweep.report import load_sweep

    summary = load_sweep(sweep_dir)
    for row in summary["configurations"]:  # each seed's metric after every epoch, read from its run directory
        row["per_epoch"] = [[m.get(summary["metric"]) for m in map(json.loads, Path(d, "metrics.jsonl").open())]
                            for d in row["run_dirs"]]
        if summary["metric"] == "fcd":  # a GAN's last scored epoch: the floor and the other quality figures
            row["quality"] = [_last_scored(Path(d)) for d in row["run_dirs"]]
        if calibration:  # each run's test-split calibration, as `mnistlab evaluate cnn RUN --json` reports it
            from mnistlab.evaluate import evaluate_classifier

            row["calibration"] = [{k: v for k, v in evaluate_classifier(d)["calibration"].items()
                                   if not k.startswith("reliability")} for d in row["run_dirs"]]
        row["runs"] = [Path(d).name for d in row.pop("run_dirs")]  # names only: benches' outputs name their runs
    experiment = ROOT / "experiments" / f"{summary['study']}.toml"
    if not experiment.exists():
        sys.exit(f"results.py: no {experiment.relative_to(ROOT)}: a committed table needs its sweep file")
    summary["command"] = f"mnistlab sweep {experiment.relative_to(ROOT)} --workers {workers}"
    summary["conditions"] = conditions
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{summary['study']}.json"
    path.write_text(json.dumps(summary, indent=1) + "\n")
    return path


GAN_FIGURES = ("fcd", "fcd_real_floor", "inception_score", "class_entropy", "confident_fraction",
               "asked_digit_accuracy", "epoch", "elapsed_s")


def _last_scored(run_dir: Path) -> dict:
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
    scored = [m for m in metrics if m.get("fcd") is not None]
    last = scored[-1] if scored else {}
    return {k: last.get(k) for k in GAN_FIGURES}


def _number(value: float | None, metric: str) -> str:
    if value is None:
        return "–"
    return f"{value:.4f}" if metric.endswith("acc") else f"{value:.2f}"


def _spread(values: list[float], metric: str) -> str:
    mean = statistics.fmean(values)
    sd = f" ± {_number(statistics.stdev(values), metric)}" if len(values) > 1 else ""
    return f"{_number(mean, metric)}{sd}"


def _span(lo: float | int, hi: float | int, metric: str = "") -> str:
    """'lo–hi', or the one value when they are equal (a single run, or every run alike)."""
    lo, hi = (str(v) if isinstance(v, int) else _number(v, metric) for v in (lo, hi))
    return lo if lo == hi else f"{lo}–{hi}"


def table(name: str, options: dict[str, str]) -> list[str]:
    """The Markdown lines of one table: a row per configuration, then its command and conditions."""
    if name.endswith(".txt"):
        return bench_table(RESULTS / name, int(options.get("table", 1)))
    summary = json.loads((RESULTS / f"{name}.json").read_text())
    metric = summary["metric"]
    label_key = options.get("label")
    rows = summary["configurations"]
    epochs = max(len(seed) for row in rows for seed in row["per_epoch"]) if options.get("epochs") == "true" else 0
    calibration = options.get("calibration") == "true"
    if epochs:
        lines = ["| configuration | n | " + " | ".join(f"epoch {e + 1}" for e in range(epochs)) + " |",
                 "|---|---|" + "---|" * epochs]
    elif options.get("gan") == "true":
        lines = ["| configuration | n | FCD, mean ± sd | min–max | real-data floor | FCD / floor | Inception Score | "
                 "class entropy | confident share | asked digit drawn | epochs in the time |",
                 "|---|---|---|---|---|---|---|---|---|---|---|"]
    elif calibration:
        lines = ["| configuration | n | temperature | test ECE, T = 1 | test ECE, fitted T | test NLL, T = 1 | "
                 "test NLL, fitted T |", "|---|---|---|---|---|---|---|"]
    else:
        lines = [f"| configuration | n | {metric}, mean ± sd | min–max | training s (mean) |", "|---|---|---|---|---|"]
    for row in rows:
        config = row["config"]
        label = (str(config[label_key]) if label_key in config else
                 ", ".join(f"{k} = {v}" for k, v in config.items()) or summary["study"])
        if epochs:
            cells = [_spread([seed[e] for seed in row["per_epoch"] if len(seed) > e], metric) for e in range(epochs)]
            lines.append(f"| {label} | {row['n']} | " + " | ".join(cells) + " |")
            continue
        if options.get("gan") == "true":
            q = row["quality"]
            values = lambda key: [r[key] for r in q if r.get(key) is not None]  # noqa: E731
            spread = lambda key, kind="fcd": _spread(values(key), kind) if values(key) else "–"  # noqa: E731
            ratio = [r["fcd"] / r["fcd_real_floor"] for r in q if r.get("fcd") and r.get("fcd_real_floor")]
            trained = values("epoch")
            cells = [spread("fcd"), _span(row["min"], row["max"], metric),
                     spread("fcd_real_floor"), _spread(ratio, "fcd") + "×" if ratio else "–", spread("inception_score"),
                     spread("class_entropy", "acc"), spread("confident_fraction", "acc"),
                     spread("asked_digit_accuracy", "acc"), _span(min(trained), max(trained)) if trained else "–"]
            lines.append(f"| {label} | {row['n']} | " + " | ".join(cells) + " |")
            continue
        if calibration:
            runs = row["calibration"]
            cells = [_spread([r["temperature"] for r in runs], "t"),
                     *(_spread([100 * r[k] for r in runs], "t") + " %" for k in ("ece_before", "ece_after")),
                     *(_spread([r[k] for r in runs], "acc") for k in ("nll_before", "nll_after"))]
            lines.append(f"| {label} | {row['n']} | " + " | ".join(cells) + " |")
            continue
        sd = f" ± {_number(row['sd'], metric)}" if row["sd"] is not None else ""
        time = f"{row['train_s']:.0f}" if row["train_s"] is not None else "–"
        lines.append(f"| {label} | {row['n']} | {_number(row['mean'], metric)}{sd} | "
                     f"{_span(row['min'], row['max'], metric)} | {time} |")
    lines += ["", f"`{summary['command']}` · {summary['conditions']}"]
    return lines


def bench_table(path: Path, k: int) -> list[str]:
    """The k-th Markdown table (runs of lines starting with "|") in a benchmark's printed output."""
    tables: list[list[str]] = [[]]
    for line in path.read_text().splitlines():
        if line.startswith("|"):
            tables[-1].append(line)
        elif tables[-1]:
            tables.append([])
    found = [t for t in tables if t]
    if not 1 <= k <= len(found):
        raise SystemExit(f"results.py: {path.name} has {len(found)} tables, not a table {k}")
    return found[k - 1]


def render(text: str) -> str:
    """`text` with every marked table regenerated."""
    out, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        out.append(lines[i])
        match = MARKER.match(lines[i])
        i += 1
        if not match:
            continue
        options = dict(o.split("=", 1) for o in match["options"].split())
        end = lines.index(END, i)
        out += table(match["name"], options) + [END]
        i = end + 1
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("export")
    p.add_argument("sweep_dir")
    p.add_argument("--conditions", required=True, help="one line: machine class, workers and threads")
    p.add_argument("--calibration", action="store_true", help="also each CNN run's test-split calibration")
    p.add_argument("--workers", type=int, default=2, help="the --workers the sweep ran with, for its command line")
    p = commands.add_parser("render")
    p.add_argument("--check", action="store_true")
    args = parser.parse_args()
    if args.command == "export":
        print(export(args.sweep_dir, args.conditions, args.calibration, args.workers))
        return 0
    stale = []
    for page in PAGES:
        text = page.read_text()
        rendered = render(text)
        if rendered != text:
            stale.append(page)
            if not args.check:
                page.write_text(rendered)
    if args.check and stale:
        print(f"results.py: generated tables differ in {', '.join(str(p.relative_to(ROOT)) for p in stale)}; "
              "run python scripts/results.py render", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
