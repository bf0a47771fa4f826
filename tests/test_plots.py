"""Figures pick a headless backend for the CLI, and leave alone one a notebook or the user already chose."""

import os
import subprocess
import sys

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
