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
table as it is: `<!-- results: finetune-bench.txt -->`; `table=K` takes the K-th table of the file (-1: the last).
A benchmark run on several runs of a sweep is summarised per configuration, mean ± sd at the precision printed,
with `by=STUDY` (the sweep whose results/STUDY.json names the runs): `columns=1,2` keeps those columns,
`sections=true` summarises the table under each run's `## RUN` heading row by row, and `answers=true` reads
scripts/ood_bench.py's lines of figures. `<!-- results: headline -->` is the README's table of results.
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
    if name == "headline":
        return headline()
    if name.endswith(".txt") and "by" in options:
        return bench_summary(RESULTS / name, options)
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


def bench_table(path: Path, k: int, text: str | None = None) -> list[str]:
    """The k-th Markdown table (runs of lines starting with "|"; k = -1: the last) in a benchmark's printed
    output, or in `text`, a part of it."""
    tables: list[list[str]] = [[]]
    for line in (path.read_text() if text is None else text).splitlines():
        if line.startswith("|"):
            tables[-1].append(line)
        elif tables[-1]:
            tables.append([])
    found = [t for t in tables if t]
    if not 1 <= abs(k) <= len(found) or k == 0:
        raise SystemExit(f"results.py: {path.name} has {len(found)} tables, not a table {k}")
    return found[k - 1 if k > 0 else k]


# ----------------------------------------------------------------------------------------------
# Benchmarks run on several runs of a sweep: mean ± sd per preset

NUMBER = re.compile(r"\d+\.\d+")

# What scripts/ood_bench.py says of each run as it answers, in its lines under `## RUN`: (column, pattern).
OOD_ANSWERS = [
    ("test digits kept", r"digits kept (\S+);"),
    ("Fashion-MNIST refused", r"not a digit: Fashion-MNIST (\S+),"),
    ("framed", r"framed as an upload (\S+),"),
    ("marks refused", r"scribbles (\S+), uniform"),
    ("noise refused", r"uniform noise (\S+),"),
    ("specks refused", r"specks, framed (\S+)$"),
    ("digit photos: a digit named", r"a digit named (\S+),"),
    ("right", r"the right one (\S+);"),
    ("non-digit photos refused", r"no digit named at all (\S+)$"),
    ("non-digit photos refused, threshold moved to keep 98 % of digit photos", r"photos refused (\S+)$"),
]


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _presets(study: str) -> dict[str, str]:
    """{run directory name: its configuration's label} for a sweep's committed results (the study's name for
    a sweep of one configuration, as its table shows it)."""
    summary = json.loads((RESULTS / f"{study}.json").read_text())
    return {run: ", ".join(str(v) for v in row["config"].values()) or summary["study"]
            for row in summary["configurations"] for run in row["runs"]}


def _summarise(cells: list[str]) -> str:
    """One column's cells over several runs: each number as mean ± sd at the precision it was printed with
    ("0.9848 / 0.032" → "0.9850 ± 0.0003 / 0.030 ± 0.002"); text alike in every run as it is, else "–"."""
    numbers = [NUMBER.findall(c) for c in cells]
    template = NUMBER.sub("{}", cells[0])
    if any(NUMBER.sub("{}", c) != template or len(n) != len(numbers[0]) for c, n in zip(cells, numbers)):
        return "–"
    if not numbers[0] or len(set(cells)) == 1:
        return cells[0]
    spreads = []
    for column in zip(*numbers):
        digits = len(column[0].split(".")[1])
        values = [float(v) for v in column]
        sd = f" ± {statistics.stdev(values):.{digits}f}" if len(values) > 1 else ""
        spreads.append(f"{statistics.fmean(values):.{digits}f}{sd}")
    return template.format(*spreads)


def _sections(path: Path) -> dict[str, str]:
    """A benchmark's output cut at its `## RUN` headings: {run directory name: the text under it}."""
    parts = re.split(r"^## (\S+)\n", path.read_text(), flags=re.M)
    return {Path(run).name: text for run, text in zip(parts[1::2], parts[2::2])}


def _group(names: list[str], presets: dict[str, str]) -> dict[str, list[int]]:
    """Row indices by preset, for rows named by a run; "ensemble of A + B + C" rows by their members' presets."""
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        run = Path(name).name
        if run in presets:
            label = f"one `{presets[run]}` run"
        elif name.startswith("ensemble of "):
            members = [presets.get(Path(m).name, "?") for m in name.removeprefix("ensemble of ").split(" + ")]
            label = "ensemble of " + " + ".join(f"{members.count(p)} `{p}`" for p in dict.fromkeys(members))
        else:
            raise SystemExit(f"results.py: {name} is not a run of the sweep given with by=")
        groups.setdefault(label, []).append(i)
    return groups


def _ood_answers(path: Path, presets: dict[str, str]) -> list[str]:
    """scripts/ood_bench.py's figures for each run as saved (its threshold), mean ± sd per preset."""
    groups: dict[str, list[list[str]]] = {}
    for run, text in _sections(path).items():
        cells = []
        for column, pattern in OOD_ANSWERS:
            found = re.search(pattern, text, flags=re.M)
            if found is None:
                raise SystemExit(f"results.py: {path.name}, {run}: no {column!r}")
            cells.append(found[1])
        groups.setdefault(presets[run], []).append(cells)
    out = ["| preset | n | " + " | ".join(c for c, _ in OOD_ANSWERS) + " |", "|---|---|" + "---|" * len(OOD_ANSWERS)]
    for preset, runs in groups.items():
        out.append(f"| `{preset}` | {len(runs)} | " + " | ".join(_summarise(list(c)) for c in zip(*runs)) + " |")
    return out


def bench_summary(path: Path, options: dict[str, str]) -> list[str]:
    """A benchmark's per-run figures as mean ± sd per preset (`by=STUDY` names the sweep whose runs it measured).

    The rows of its table `table=K` (first column: the run) are grouped; or, with `sections=true`, the table K
    under each run's `## RUN` heading, row by row (one row per scorer, say), grouped by preset too.
    `columns=2,3` keeps only those columns (1 is the first after the run's name).
    """
    presets, k = _presets(options["by"]), int(options.get("table", 1))
    if options.get("answers") == "true":
        return _ood_answers(path, presets)
    if options.get("sections") == "true":  # one output row per (preset, row label)
        per_run = {run: bench_table(path, k, text) for run, text in _sections(path).items()}
        header = _cells(next(iter(per_run.values()))[0])
        rows, groups = [], {}
        for run, lines in per_run.items():
            for cells in map(_cells, lines[2:]):
                groups.setdefault(f"`{presets[run]}`: {cells[0]}", []).append(len(rows))
                rows.append(cells)
    else:
        lines = bench_table(path, k)
        header, rows = ["reader", *_cells(lines[0])[1:]], [_cells(line) for line in lines[2:]]
        groups = _group([r[0] for r in rows], presets)
    keep = [int(c) for c in options["columns"].split(",")] if "columns" in options else range(1, len(header))
    out = ["| " + " | ".join([header[0], "n", *(header[c] for c in keep)]) + " |", "|---|---|" + "---|" * len(keep)]
    for label, indices in groups.items():
        out.append(f"| {label} | {len(indices)} | " + " | ".join(_summarise([rows[i][c] for i in indices])
                                                              for c in keep) + " |")
    return out


# ----------------------------------------------------------------------------------------------
# The README's headline table: a row per result, each from its committed data, with its command


def _study(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text())


def _row(study: dict, **config) -> dict:
    return next(r for r in study["configurations"] if r["config"] == config)


def _pct(values: list[float], digits: int = 1) -> str:
    return f"{100 * statistics.fmean(values):.{digits}f} %"


def _bench_rows(path: Path, k: int = 1) -> dict[str, list[str]]:
    """A benchmark table's rows by their first cell."""
    return {cells[0]: cells for cells in map(_cells, bench_table(path, k)[2:])}


def headline() -> list[str]:
    """The README's table of results: a row per result, its figure, n and command (a figure with a
    validation accuracy beside it also names the bench that measured that)."""
    seed, presets = _study("cnn-seed-mnist"), _study("cnn-presets-mnist")
    gan, gan_seed = _study("gan-mnist-600s"), _study("gan-seed-mnist")
    best_runs = [run for run, preset in _presets("cnn-presets-mnist").items() if preset == "best"]
    rows = []

    row = _row(seed, precision="auto")
    rows.append(("the seed notebook's CNN, 5 epochs (notebook: 0.9863)",
                 f"test accuracy {_spread(row['values'], 'acc')} ({_span(row['min'], row['max'], 'acc')})", row["n"],
                 seed["command"]))
    members = _bench_rows(RESULTS / "ensemble-bench.txt")
    for preset, epochs in (("gorner", 10), ("best", 20), ("photo", 20)):
        row = _row(presets, preset=preset)
        figure = _spread(row["values"], "acc")
        if preset == "best":  # and its validation accuracy, where the recipe below was chosen
            figure += f" (validation {_spread([float(members[run][1]) for run in best_runs], 'acc')})"
        command = presets["command"] if preset == "gorner" else "the same"
        rows.append((f"`{preset}`, {epochs} epochs", figure, row["n"],
                     [command, "python scripts/ensemble_bench.py RUN... --ensembles 3 5"] if preset == "best"
                     else command))
    rotated = _study("cnn-best-rotate-mnist")
    (row,) = rotated["configurations"]
    validation = [float(_bench_rows(RESULTS / "ensemble-bench-rotate.txt")[run][1]) for run in row["runs"]]
    rows.append(("`best`, 30 epochs, rotations up to 8°",
                 f"**{_spread(row['values'], 'acc')}** (validation {_spread(validation, 'acc')})", row["n"],
                 [rotated["command"], "python scripts/ensemble_bench.py RUN RUN RUN --ensembles 3"]))
    fits = _row(presets, preset="best")["calibration"]
    rows.append(("`best`, calibrated: expected calibration error",
                 f"{_pct([f['ece_before'] for f in fits], 2)} → **{_pct([f['ece_after'] for f in fits], 2)}** "
                 f"(T = {statistics.fmean(f['temperature'] for f in fits):.2f}, fitted on validation)", len(fits),
                 "mnistlab evaluate cnn RUN"))

    ensemble = next(cells for name, cells in members.items()
                    if name.startswith("ensemble of") and sorted(name.split()[2::2]) == sorted(best_runs))
    rows.append((f"an ensemble of the {len(best_runs)} `best` runs", f"{ensemble[2]} (validation {ensemble[1]})", 1,
                 "python scripts/ensemble_bench.py RUN... --ensembles 3 5"))

    ood = [text for run, text in _sections(RESULTS / "ood-bench-test.txt").items() if run in best_runs]
    mahalanobis = [next(_cells(line) for line in bench_table(RESULTS / "ood-bench-test.txt", 1, text)
                        if line.startswith("| mahalanobis")) for text in ood]
    auroc = lambda column: _summarise([cells[column].split(" / ")[0] for cells in mahalanobis])  # noqa: E731
    answers = dict(OOD_ANSWERS)
    answer = lambda column: [float(re.search(answers[column], t, flags=re.M)[1]) for t in ood]  # noqa: E731
    rows.append(("`best` knowing a non-digit: AUROC, digits against Fashion-MNIST / hand-drawn letters, shapes, "
                 "scribbles", f"{auroc(1)} / {auroc(3)}; photos of non-digits refused "
                 f"{_pct(answer('non-digit photos refused'), 0)} while "
                 f"{_pct(answer('digit photos: a digit named'))} of digit photos are read", len(ood),
                 "python scripts/ood_bench.py --runs RUN... --split test"))

    ours = _bench_rows(RESULTS / "speedrun-bench.txt")["ours"]
    ratio = re.search(r"fast GPU recipe / ours: ([\d.]+)x", (RESULTS / "speedrun-bench.txt").read_text())[1]
    rows.append(("speedrun: 99 % in one epoch", f"{ours[5]} in **{ours[2]} s** of training; "
                 f"{float(ratio):.1f}× faster than the fast GPU recipe on this CPU", ours[1],
                 "python scripts/speedrun_bench.py"))

    for preset in ("default", "unconditional"):
        q = _row(gan, preset=preset)["quality"]
        fcd = (f"{_spread([r['fcd'] for r in q], 'fcd')} "
               f"({statistics.fmean(r['fcd'] / r['fcd_real_floor'] for r in q):.1f}× the floor)")
        if preset == "default":
            floor = statistics.fmean(r["fcd_real_floor"] for r in q)
            rows.append((f"`default` DCGAN, 600 s of training: FCD (real-data floor {floor:.2f})",
                         f"{fcd}; the digit asked for drawn {_pct([r['asked_digit_accuracy'] for r in q])}", len(q),
                         gan["command"]))
        else:
            rows.append(("`unconditional` DCGAN (no labels), 600 s", f"FCD {fcd}", len(q), "the same"))

    photos = [cells for name, cells in _bench_rows(RESULTS / "photo-bench-mnist-seed0.txt", -1).items()
              if Path(name).name in best_runs]
    rounded = lambda column, digits: _summarise([f"{float(p[column]):.{digits}f}" for p in photos])  # noqa: E731
    blanks = {p[6] for p in photos}
    rows.append(("`best` reading photos of official test digits (1 MP, pen or pencil, lined paper, shadows)",
                 f"single digits {rounded(2, 3)}; 2–5 digit numbers exact {rounded(3, 2)}; blank pages read as a "
                 f"number {blanks.pop() if len(blanks) == 1 else '–'}", len(photos),
                 "python scripts/photo_bench.py --runs RUN... --seed 0"))

    q = gan_seed["configurations"][0]["quality"][0]
    rows.append((f"the seed notebook's DCGAN, its {q['epoch']} epochs ({q['elapsed_s'] / 60:.0f} min)",
                 f"FCD {q['fcd']:.2f} ({q['fcd'] / q['fcd_real_floor']:.0f}× the floor); the evaluator sure of "
                 f"{_pct([q['confident_fraction']], 0)} of its digits", 1, gan_seed["command"]))

    def shown(commands: str | list[str]) -> str:  # a row's command, or its commands (the sweep's, then a bench's)
        return "; ".join(c if c == "the same" else f"`{c}`" for c in ([commands] if isinstance(commands, str)
                                                                      else commands))

    return ["| what | figure | n | command |", "|---|---|---|---|"] + [
        f"| {what} | {figure} | {n} | {shown(commands)} |" for what, figure, n, commands in rows]

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
