"""Figures: a headless backend for the CLI, but never over one a notebook or the user chose; the mistakes grid;
FCD over training time (scripts/gan_quality_over_time.py)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # real processes, servers or training for seconds: not in make test-fast

DRAW = ("from mnistlab import plots; plots.classifier_curves([{'epoch': 1, 'train_loss': 0.5, 'test_acc': 0.9}]); "
        "import matplotlib; print(matplotlib.get_backend().lower())")
INLINE = "module://matplotlib_inline.backend_inline"


@pytest.mark.parametrize("setup, env, expected", [
    ("", {}, "agg"),  # a headless run: Agg
    ("import matplotlib; matplotlib.use('svg'); import matplotlib.pyplot", {}, "svg"),  # pyplot already set up
    ("", {"MPLBACKEND": INLINE}, INLINE),  # what a Jupyter kernel sets
], ids=["headless", "pyplot-in-use", "MPLBACKEND"])
def test_plots_choose_agg_only_when_no_backend_was_chosen(setup, env, expected):
    environ = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"} | env
    result = subprocess.run([sys.executable, "-c", f"{setup}\n{DRAW}"], capture_output=True, text=True, env=environ,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == expected.lower(), result.stdout


def test_the_mistakes_grid_titles_each_digit_true_then_predicted(tmp_path):
    from mnistlab import plots

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "mistakes.npz", images=rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
             true=np.arange(10) % 3, predicted=np.arange(10) % 3 + 1, classes=np.array(list("abcd")))
    fig = plots.mistakes_grid(tmp_path / "mistakes.npz", limit=9)
    ax, = fig.axes
    assert [t.get_text() for t in ax.texts] == [f"{'abc'[i % 3]}→{'bcd'[i % 3]}" for i in range(9)]
    assert ax.get_title() == "10 misclassified test images (true→predicted), first 9 shown"
    assert ax.images[0].get_array().shape == (2 * (28 + 12) + 12, 8 * (28 + 12) + 12)  # 2 rows of 8 tiles
    plots.save(fig, tmp_path / "mistakes.png")
    assert (tmp_path / "mistakes.png").read_bytes().startswith(b"\x89PNG")


def test_fcd_over_time_gives_the_time_to_quality_and_one_plot(gan_run, tmp_path):
    import json
    import shutil

    from mnistlab.runs import quality_over_time

    run = tmp_path / "quick"
    shutil.copytree(gan_run.dir, run)
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    template = {k: v for k, v in lines[-1].items() if k not in ("fcd", "fcd_real_floor")}
    history = [dict(template, epoch=e, time_s=t, **({"fcd": f, "fcd_real_floor": 1.5} if f is not None else {}))
               for e, (t, f) in enumerate([(10.0, 40.0), (10.0, None), (12.5, 4.6), (10.0, 4.4), (10.0, 4.9)], 1)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in history))
    curve = quality_over_time(run)
    assert curve["seconds"] == [10.0, 32.5, 42.5, 52.5] and curve["fcd"] == [40.0, 4.6, 4.4, 4.9]
    assert (curve["floor"], curve["target_fcd"], curve["seconds_to_target"]) == (1.5, 4.5, 42.5)  # 4.4 <= 3 x 1.5
    assert (curve["best_fcd"], curve["best_seconds"]) == (4.4, 42.5)
    assert quality_over_time(run, target=2.0)["seconds_to_target"] is None

    script = Path(__file__).parent.parent / "scripts" / "gan_quality_over_time.py"
    out = tmp_path / "fcd.png"
    result = subprocess.run([sys.executable, str(script), str(run), str(gan_run.dir), "--out", str(out)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = result.stdout.splitlines()
    assert rows[0].startswith("| run | real floor | seconds to FCD ≤ 3× floor | best FCD |")
    assert rows[2] == "| default (quick) | 1.50 | 42 | 4.40 | 42 | 4 |"
    assert rows[3].startswith("| default (gan) |") and "| not reached |" in rows[3]
    assert out.read_bytes().startswith(b"\x89PNG")
    refused = subprocess.run([sys.executable, str(script), str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.png")],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()
