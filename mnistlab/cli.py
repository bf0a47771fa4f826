"""The `mnistlab` command: it parses arguments, calls the public API, and prints. Nothing more.

Errors a user can fix (`MnistlabError`) print as one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import typing
from typing import Any

from mnistlab.cli_reading import add_reading_commands
from mnistlab.cli_training import add_training_commands
from mnistlab.config import (
    DATASET_NAMES,
    RunConfig,
)

EXAMPLES = """examples:
  mnistlab train cnn --preset seed                 the seed notebook's CNN, 5 epochs
  mnistlab train gan --preset default --time-budget 240
  mnistlab evaluate cnn runs/cnn-seed-...          accuracy, per class, confusion matrix
  mnistlab predict runs/cnn-seed-... my_digit.png  read your own handwriting
  mnistlab generate runs/gan-default-... --out digits.png
  mnistlab read runs/cnn-best-... photo.jpg        read a written number from a photo
  mnistlab sweep experiments/cnn-seed-mnist.toml --workers 2
  mnistlab serve                                   draw digits in the browser
"""


def parse_args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """The command line as `main` reads it: `mnistlab sweep FILE.toml` is `mnistlab sweep run FILE.toml`."""
    if argv[:1] == ["sweep"] and len(argv) > 1 and argv[1] not in ("run", "show", "-h", "--help"):
        argv = [argv[0], "run", *argv[1:]]
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, list(sys.argv[1:] if argv is None else argv))
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    from mnistlab.errors import MnistlabError

    try:
        return args.handler(args) or 0
    except MnistlabError as e:
        print(f"mnistlab: error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 2)
    except KeyboardInterrupt:
        print("mnistlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `mnistlab ... | head`: the reader left; that is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


# ----------------------------------------------------------------------------------------------
# Parser


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Subcommand names measured where they are printed (argparse measures them an indent shallower)."""

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        names = [len(self._format_action_invocation(sub)) for sub in getattr(action, "_get_subactions", list)()]
        self._action_max_length = max(self._action_max_length, max(names, default=0) + self._current_indent + 2)


def _command(commands: Any, name: str, summary: str) -> argparse.ArgumentParser:
    """A subcommand whose `-h` description is its one-line summary."""
    return commands.add_parser(name, help=summary, description=summary[0].upper() + summary[1:] + ".")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mnistlab", description="Deep learning on MNIST-style digits: train, evaluate, predict, generate, serve.",
        epilog=EXAMPLES, formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mnistlab {_version()}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    data = commands.add_parser("data", help="list or download datasets", description="List or download datasets.")
    data_commands = data.add_subparsers(title="data commands", metavar="ACTION")
    p = _command(data_commands, "list", "datasets available locally, their sizes and where they are")
    p.add_argument("--data-root", help="dataset cache (default: $MNISTLAB_DATA or ~/.cache/mnistlab)")
    p.set_defaults(handler=cmd_data_list)
    p = _command(data_commands, "download", "download a dataset and check its MD5s")
    p.add_argument("name", choices=["mnist", "fashion-mnist"])
    p.add_argument("--data-root", help="dataset cache (default: $MNISTLAB_DATA or ~/.cache/mnistlab)")
    p.set_defaults(handler=cmd_data_download)

    add_training_commands(commands)

    evaluate = commands.add_parser("evaluate", help="measure a trained model", description="Measure a trained model.")
    eval_kinds = evaluate.add_subparsers(title="what to evaluate", metavar="KIND")
    p = _command(eval_kinds, "cnn", "accuracy, per-class accuracy, confusion matrix on a test split")
    _add_checkpoint_options(p, dataset_help="test on this dataset instead of the one the run was trained on")
    p.set_defaults(handler=cmd_evaluate_cnn)
    p = _command(eval_kinds, "gan", "FCD, Inception Score and mode coverage of generated digits")
    p.add_argument("--classifier", metavar="CNN_RUN",
                   help="CNN run used as the feature extractor (default: the evaluator shipped with mnistlab)")
    p.add_argument("-n", type=int, default=10000, help="number of generated samples (default: 10000)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default: 0)")
    _add_checkpoint_options(p, dataset_help="real data to compare against (default: the GAN's training dataset)")
    _add_checkpoint_choice(p)
    p.set_defaults(handler=cmd_evaluate_gan)

    add_reading_commands(commands, _command)

    p = commands.add_parser("generate", help="draw new digits with a trained DCGAN", description=(
        "Draw digits with a trained generator. --out FILE.png writes a grid, --out FILE.npy a uint8 array "
        "(N, 28, 28) with 0 = background and 255 = ink; --out-dir writes one PNG per digit."))
    p.add_argument("checkpoint", metavar="RUN_OR_CHECKPOINT")
    p.add_argument("-n", type=int, default=64, help="how many digits (default: 64)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default: 0)")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", metavar="FILE", help="FILE.png (a grid) or FILE.npy (an array)")
    target.add_argument("--out-dir", metavar="DIR", help="one PNG per digit")
    p.add_argument("--digit", type=int, metavar="D",
                   help="draw only this digit, 0-9 (a conditional GAN such as the default preset's)")
    p.add_argument("--interpolate", action="store_true",
                   help="instead, a strip of n steps walking the latent space between two random points")
    _add_checkpoint_choice(p)
    p.set_defaults(handler=cmd_generate)

    p = _command(commands, "serve", "web app: draw a digit and watch it read; watch the generator draw")
    p.add_argument("--cnn", metavar="RUN_OR_CHECKPOINT", help="classifier (default: newest CNN run under runs/)")
    p.add_argument("--gan", metavar="RUN_OR_CHECKPOINT", help="generator (default: newest GAN run under runs/)")
    p.add_argument("--runs-dir", default="runs", help="where to look for the newest runs (default: runs)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    _add_checkpoint_choice(p, "--gan's ")
    p.set_defaults(handler=cmd_serve)

    p = _command(commands, "export", "export a CNN or a GAN generator to ONNX, or as a page that needs no server")
    p.add_argument("checkpoint", metavar="RUN_OR_CHECKPOINT")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--onnx", metavar="FILE.onnx", help="where to write the ONNX model")
    target.add_argument("--web", metavar="DIR", help="a new or empty directory for the static site: it "
                        "reads digits in the browser with onnxruntime-web, offline, from file:// or any host")
    p.add_argument("--gan", metavar="RUN_OR_CHECKPOINT", help="with --web and a CNN run: the generator's grid "
                   "and walk on the page too")
    _add_checkpoint_choice(p)
    p.set_defaults(handler=cmd_export)

    p = _command(commands, "calibrate", "fit a CNN run's temperature and digitness scale (not on its test split)")
    p.add_argument("checkpoint", metavar="RUN_OR_CHECKPOINT")
    p.add_argument("--data-root", help="dataset cache (default: $MNISTLAB_DATA or ~/.cache/mnistlab)")
    p.set_defaults(handler=cmd_calibrate)

    p = _command(commands, "speedrun", "train from scratch to 99 percent on MNIST's test split, as fast as it goes")
    p.add_argument("--dataset", default="auto", help="dataset (default: auto, full MNIST where it can be had)")
    p.add_argument("--data-root", help="dataset cache (default: $MNISTLAB_DATA or ~/.cache/mnistlab)")
    p.add_argument("--seed", type=int, default=0, help="the first run's seed; run k has seed + k (default: 0)")
    p.add_argument("--runs", type=int, default=1, help="how many runs, one after another (default: 1)")
    p.add_argument("--out", metavar="DIR", help="keep the run directory (several runs: DIR/seed-N each)")
    p.add_argument("--json", action="store_true", help="one JSON object per run, a line each")
    p.set_defaults(handler=cmd_speedrun)

    runs = commands.add_parser("runs", help="list runs as a table (runs list [DIR...]), or compare some",
                               description="List runs (the default action), or compare some side by side.")
    runs_commands = runs.add_subparsers(title="runs commands", metavar="ACTION")
    runs.set_defaults(handler=cmd_runs_list, dirs=["runs"], json=False)  # `mnistlab runs` alone lists runs/
    p = _command(runs_commands, "list", "every run at or below each DIR (default: runs), newest first")
    p.add_argument("dirs", nargs="*", default=["runs"], metavar="DIR")
    p.add_argument("--json", action="store_true", help="one JSON object per run, a line each")
    p.set_defaults(handler=cmd_runs_list)
    p = _command(runs_commands, "compare", "runs side by side: their final metrics, and one plot of their progress")
    p.add_argument("paths", nargs="+", metavar="RUN")
    p.add_argument("--plot", metavar="FILE.png", default="runs-compare.png",
                   help="where to write the comparison plot (default: runs-compare.png)")
    p.set_defaults(handler=cmd_runs_compare)
    sweep = commands.add_parser("sweep", help="run a sweep file (sweep [run] FILE.toml), or show one's results",
                                description="Run or continue a sweep over presets, options and seeds (Optuna), on "
                                "one machine or many; or show its results grouped by configuration.")
    sweep_commands = sweep.add_subparsers(title="sweep commands", metavar="ACTION")
    p = _command(sweep_commands, "run", "run, or continue, the sweep that a TOML file describes")
    p.add_argument("file", metavar="FILE.toml")
    p.add_argument("--workers", type=int, help="worker processes on this machine, sharing its cores "
                   "(default: one per GPU, else 1)")
    p.add_argument("--storage", metavar="URL", help="SQLAlchemy URL of the study's database, shared by every "
                   "machine's workers, e.g. postgresql+psycopg://user@host/db (default: SQLite in --out)")
    p.add_argument("--out", metavar="DIR", help="where the trials' run directories go (default: sweeps/NAME)")
    p.set_defaults(handler=cmd_sweep_run)
    p = _command(sweep_commands, "show", "a sweep's trials grouped by configuration: n, mean ± sd, min–max, time")
    p.add_argument("dir", nargs="?", metavar="DIR", help="the sweep's --out directory (its sweep.db)")
    p.add_argument("--storage", metavar="URL", help="the study's database instead of DIR's")
    p.add_argument("--study", metavar="NAME", help="which study, when the database holds several")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(handler=cmd_sweep_show)
    return parser


def _add_checkpoint_options(p: argparse.ArgumentParser, dataset_help: str) -> None:
    """What both `evaluate` commands take: the run, the data to measure it on, the device, and --json."""
    p.add_argument("checkpoint", metavar="RUN_OR_CHECKPOINT")
    p.add_argument("--dataset", help=f"{dataset_help}: {', '.join(DATASET_NAMES[1:])}, idx:PATH or images:PATH")
    p.add_argument("--data-root", help="dataset cache")
    devices = typing.get_args(typing.get_type_hints(RunConfig)["device"])
    p.add_argument("--device", default="auto", help=f"{', '.join(devices)} (default: auto)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _add_checkpoint_choice(p: argparse.ArgumentParser, whose: str = "") -> None:
    p.add_argument("--checkpoint", dest="which", choices=("best", "last"), help=(
        f"which of the {whose}GAN run's files: best (best.safetensors, the generator with the best FCD of its "
        "evaluations) or last (checkpoint.safetensors); default: best when the run kept one, else last"))


def _chosen(run_or_checkpoint: str, which: str | None) -> str:
    """The file a command read, and which of its run's checkpoints it is (best or last), for its output."""
    from mnistlab.checkpoint import describe_checkpoint, read_checkpoint_header, resolve_checkpoint

    return describe_checkpoint(read_checkpoint_header(resolve_checkpoint(run_or_checkpoint, which)))


# ----------------------------------------------------------------------------------------------
# Handlers


def cmd_data_list(args: argparse.Namespace) -> None:
    from mnistlab.data.datasets import list_datasets

    rows = [[d["name"], "yes" if d["available"] else "no", _size(d.get("size_bytes")),
             str(d.get("n_train") or "-"), str(d.get("n_test") or "-"), str(d.get("where") or "-")]
            for d in list_datasets(args.data_root)]
    _table(["dataset", "available", "size", "train", "test", "where"], rows)


def cmd_data_download(args: argparse.Namespace) -> None:
    from mnistlab.data.datasets import download_dataset

    for path in download_dataset(args.name, args.data_root):
        print(path)


def cmd_evaluate_cnn(args: argparse.Namespace) -> None:
    from mnistlab.evaluate import evaluate_classifier

    report = evaluate_classifier(args.checkpoint, args.dataset, args.data_root, args.device)
    if args.json:
        print(json.dumps(report))
        return
    what = f"an ensemble of {len(report['members'])} runs" if "members" in report else report["checkpoint"]
    print(f"{what} on {report['dataset']} test ({report['n']} images)")
    calibration = report["calibration"]
    print(f"accuracy {report['accuracy']:.4f}   calibration: temperature {calibration['temperature']:.3f}, "
          f"ECE {100 * calibration['ece_before']:.2f} % -> {100 * calibration['ece_after']:.2f} %, "
          f"NLL {calibration['nll_before']:.4f} -> {calibration['nll_after']:.4f}")
    _table(["class", "accuracy"], [[c, f"{a:.4f}"] for c, a in report["per_class"].items()])
    print("confusion matrix (rows: true, columns: predicted)")
    rows = [[c] + [str(v) for v in row] for c, row in zip(report["classes"], report["confusion"])]
    _table([""] + report["classes"], rows)
    for mistake in report.get("mistakes", []):
        print(f"misread: {mistake['file']}  {mistake['true']} read as {mistake['predicted']}")


def cmd_evaluate_gan(args: argparse.Namespace) -> None:
    from mnistlab.evaluate import evaluate_gan

    report = evaluate_gan(args.checkpoint, classifier=args.classifier, n=args.n, dataset=args.dataset,
                          data_root=args.data_root, seed=args.seed, device=args.device, checkpoint=args.which)
    if args.json:
        print(json.dumps(report))
        return
    print(f"{_chosen(report['checkpoint'], None)}: {report['n']} samples vs {report['dataset']}; "
          f"features: {report['feature_extractor']}"
          f" ({report['feature_dim']}-d)")
    print(f"FCD {report['fcd']:.3f}   (real-data floor {report['fcd_real_floor']:.3f}, "
          f"{report['fcd'] / max(report['fcd_real_floor'], 1e-9):.1f}x)")
    print(f"Inception Score {report['inception_score']:.3f}   (real test set {report['inception_score_real']:.3f})")
    print(f"class entropy {report['class_entropy']:.3f} of ln 10 = 2.303;  confident (p >= 0.9) "
          f"{report['confident_fraction']:.3f}")
    print("predicted digits: " + "  ".join(f"{d}:{c}" for d, c in enumerate(report["class_histogram"])))
    if "asked_digit_accuracy" in report:
        print(f"conditional: the digit read is the digit asked for in {report['asked_digit_accuracy']:.3f} of samples")


def cmd_sweep_run(args: argparse.Namespace) -> None:
    import mnistlab
    from mnistlab.sweep.report import table

    summary = mnistlab.run_sweep(args.file, workers=args.workers, storage=args.storage, out=args.out)
    print(table(summary))


def cmd_sweep_show(args: argparse.Namespace) -> None:
    import mnistlab
    from mnistlab.sweep.report import table

    summary = mnistlab.load_sweep(args.dir, storage=args.storage, study=args.study)
    print(json.dumps(summary, indent=1) if args.json else table(summary))


def cmd_generate(args: argparse.Namespace) -> None:
    from mnistlab.generate import write_samples

    for path in write_samples(args.checkpoint, n=args.n, seed=args.seed, out=args.out, out_dir=args.out_dir,
                              interpolate=args.interpolate, digit=args.digit, checkpoint=args.which):
        print(path)
    print(f"mnistlab: drawn by {_chosen(args.checkpoint, args.which)}", file=sys.stderr)


def cmd_serve(args: argparse.Namespace) -> None:
    from mnistlab.serve.app import serve

    serve(cnn=args.cnn, gan=args.gan, runs_dir=args.runs_dir, host=args.host, port=args.port,
          gan_checkpoint=args.which)


def cmd_export(args: argparse.Namespace) -> None:
    import mnistlab
    from mnistlab.errors import MnistlabError

    if args.gan and not args.web:
        raise MnistlabError("--gan puts a generator on the page: it goes with --web")
    if args.web:
        from mnistlab.static_site import export_web

        site = export_web(args.checkpoint, args.web, gan=args.gan, checkpoint=args.which)
        print(f"wrote {site['out']}/ with onnxruntime-web {site['ort_web']}: open {site['out']}/index.html")
        for role, model in (("reader", site["reader"]), ("generator", site["generator"])):
            if model:
                figures = [f"{m['name']} {m['bytes'] / 1024:.0f} KB" + (f", test {m['test_acc']:.4f}" if "test_acc"
                           in m else "") for m in model.get("models", [model])]
                left_out = f"; no int8: {model['int8_left_out']}" if model.get("int8_left_out") else ""
                print(f"  {role}: {model['source']} ({'; '.join(figures)}){left_out}")
        return
    result = mnistlab.export_onnx(args.checkpoint, args.onnx, checkpoint=args.which)
    print(f"wrote {result['path']} ({result['kind']}, input {result['input']}, output {result['output']}) "
          f"from {_chosen(result['source'], None)}; "
          f"onnxruntime max |difference| vs PyTorch: {result['max_abs_diff']:.2e}")


def cmd_calibrate(args: argparse.Namespace) -> None:
    from mnistlab.evaluate import calibrate

    result = calibrate(args.checkpoint, args.data_root)
    print(f"{result['checkpoint']}: temperature {result['temperature']:.3f}, fitted on {result['n_val']} validation "
          f"images (NLL {result['nll_before']:.4f} -> {result['nll_after']:.4f})"
          + ("; digitness scale fitted" if result["digitness"] else ""))


def cmd_speedrun(args: argparse.Namespace) -> None:
    from mnistlab.speedrun import describe, speedruns

    for result in speedruns(args.runs, args.seed, args.out, dataset=args.dataset, data_root=args.data_root):
        print(json.dumps(result) if args.json else describe(result), flush=True)


def cmd_runs_list(args: argparse.Namespace) -> None:
    import mnistlab

    rows = [run for directory in args.dirs for run in mnistlab.list_runs(directory)]
    if args.json:
        for run in rows:
            print(json.dumps(run.summary()))
        return
    _table(["kind", "preset", "dataset", "epochs", "headline", "wall", "path"],
           [[r.kind, r.preset, r.dataset, str(r.epochs), r.headline, r.wall, str(r.path)]
            for r in rows])


def cmd_runs_compare(args: argparse.Namespace) -> None:
    import mnistlab

    table, plot = mnistlab.compare_runs(args.paths, args.plot)
    _table(table[0], table[1:])
    print(f"plot: {plot}")


# Printing


def _table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)] if rows else [len(h) for h in header]
    for row in [header] + rows:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())


def _size(n: int | None) -> str:
    return f"{n / 2**20:.1f} MiB" if n else "-"


def _version() -> str:
    from mnistlab import __version__

    return __version__
