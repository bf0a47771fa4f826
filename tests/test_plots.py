"""Figures: a headless backend for the CLI, but never over one a notebook or the user chose; the mistakes grid."""

import os
import subprocess
import sys

import numpy as np
import pytest

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
