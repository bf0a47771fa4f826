"""Golden figures: the restructure of the trainers must change no result, bit for bit on CPU.

`tests/golden/training.json` was recorded from the code before the restructure (commit 2c384b6, the test
added in e9b6b65) with `MNISTLAB_RECORD_GOLDEN=1 pytest tests/test_golden.py`. The weights are hashed as
values in the model's order, not by name: SameConv2d renamed the odd-padded convs' tensors
(`features.3.1.weight` → `features.3.weight`) without changing a bit of them; that hash too was recorded
from the old code. The AMD EPYC figures were recorded later the same way, from this test run on the
code of e9b6b65 in a worktree, and today's code matched them bit for bit. Each case trains a few
deterministic steps on a fixed slice of mnist-sample and compares every epoch's metrics and a hash of
every final weight exactly. Floating-point kernels differ between CPU instruction sets, so the figures
are keyed by the machine's torch version, CPU capability, vendor and AMX; on another machine the test
is skipped and says so.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch

GOLDEN = Path(__file__).parent / "golden" / "training.json"
RECORD = os.environ.get("MNISTLAB_RECORD_GOLDEN") == "1"


def _vendor() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("vendor_id")), "unknown vendor")


# oneDNN picks its kernels by instruction set and vendor (an AMD EPYC and an Intel Xeon both say AVX512,
# and their bits differ), so each kind of machine has its own figures.
MACHINE = (f"torch {torch.__version__}, cpu {torch.backends.cpu.get_cpu_capability()}, {_vendor()}, "
           f"AMX {torch.cpu._is_amx_tile_supported()}")

CASES = {
    "cnn-seed-fp32": ("cnn", "seed", dict(epochs=2, batch_size=50, precision="fp32")),
    "cnn-seed-auto": ("cnn", "seed", dict(epochs=2, batch_size=50, lr_schedule="exp-decay", decay_steps=3)),
    "cnn-best": ("cnn", "best", dict(epochs=2, batch_size=50, augment_rotate=10.0, augment_erase=0.5)),
    "gan-default": ("gan", "default", dict(epochs=2, batch_size=50, eval_every=2, eval_samples=100)),
    "gan-seed": ("gan", "seed", dict(epochs=2, batch_size=25, eval_every=0)),
    "gan-default-unconditional-ema": ("gan", "default", dict(epochs=1, batch_size=50, conditional=False, ema=0.9,
                                                             augment_shift=2, eval_every=0)),
}
VOLATILE = ("time_s", "images_per_s", "elapsed_s")


@pytest.fixture(autouse=True)
def one_compute_thread():
    """The figures were recorded with one thread, as `make test` runs: more threads split oneDNN's sums."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def golden_data(first_digits):
    return first_digits(200, 50, 100)


def _figures(run, model: torch.nn.Module) -> dict:
    values = hashlib.sha256()  # the tensors alone, in the model's order: independent of what layers are named
    for tensor in model.state_dict().values():
        values.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    metrics = [{k: v for k, v in m.items() if k not in VOLATILE} for m in run.metrics]
    return {"metrics": metrics, "values_sha256": values.hexdigest()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_training_matches_the_golden_figures(case, golden_data, tmp_path):
    from mnistlab import train_classifier, train_gan

    kind, preset, overrides = CASES[case]
    settings = dict(overrides, seed=3, deterministic=True, out=str(tmp_path / case), progress=False)
    if kind == "cnn":
        run = train_classifier(preset, golden_data, **settings)
        figures = _figures(run, run.model)
    else:
        run = train_gan(preset, golden_data, **settings)
        figures = _figures(run, run.gan)
    figures = json.loads(json.dumps(figures))  # floats as JSON keeps them: repr round-trips exactly

    recorded = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    if RECORD:
        recorded.setdefault(MACHINE, {})[case] = figures
        GOLDEN.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
        return
    if MACHINE not in recorded:
        pytest.skip(f"golden figures were recorded on {', '.join(recorded)}; this machine is {MACHINE}")
    assert figures == recorded[MACHINE][case]
