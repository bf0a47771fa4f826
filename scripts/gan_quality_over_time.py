"""GAN sample quality over training time, in one picture and one table: FCD against training seconds.

    python scripts/gan_quality_over_time.py RUN [RUN ...] --out PLOT.png [--target 3]

Each RUN is a GAN run directory trained with quality evaluations (train.eval_every > 0); its metrics.jsonl
gives the FCD at each evaluation, its real floor (fcd_real_floor) and each epoch's training seconds
(time_s, summed up to the evaluation; the evaluations' own time is not counted). The plot has one line per
run, labelled by its preset (and its folder, when two runs share a preset), on a log FCD axis, with the real
floor and the target drawn in. The Markdown table is the time to quality: the training seconds until the
FCD is at most --target times the floor ("not reached" when it never is), and the best FCD and when.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from mnistlab import plots
from mnistlab.errors import MnistlabError
from mnistlab.runs import quality_over_time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", metavar="RUN", help="GAN run directories")
    parser.add_argument("--out", required=True,  # no default: a run must not replace the README's plot by accident
                        help="where to write the plot (PNG)")
    parser.add_argument("--target", type=float, default=3.0, help="quality target, × the real floor (default: 3)")
    args = parser.parse_args(argv)
    try:
        curves = [quality_over_time(run, args.target) for run in args.runs]
        presets = Counter(c["preset"] for c in curves)
        for c in curves:
            c["label"] = c["preset"] if presets[c["preset"]] == 1 else f"{c['preset']} ({c['name']})"
        plots.save(plots.fcd_over_time(curves), args.out)
    except MnistlabError as e:
        print(f"gan_quality_over_time: error: {e}", file=sys.stderr)
        return 2
    print(table(curves, args.target))
    print(f"\nplot: {args.out}")
    return 0


def table(curves: list[dict], target: float) -> str:
    """The time-to-quality table, Markdown, one row per run."""
    rows = [f"| run | real floor | seconds to FCD ≤ {target:g}× floor | best FCD | at (s) | evaluations |",
            "|---|---|---|---|---|---|"]
    for c in curves:
        reached = f"{c['seconds_to_target']:.0f}" if c["seconds_to_target"] is not None else "not reached"
        rows.append(f"| {c['label']} | {c['floor']:.2f} | {reached} | {c['best_fcd']:.2f} | "
                    f"{c['best_seconds']:.0f} | {len(c['fcd'])} |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
