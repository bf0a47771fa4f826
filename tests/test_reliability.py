"""Kill it, resume it, get the same answer; and data-parallel training under torchrun."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mnistlab.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def _fault_injection():
    spec = importlib.util.spec_from_file_location("fault_injection", ROOT / "scripts" / "fault_injection.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def idx_dataset(tmp_path_factory):
    return _fault_injection().tiny_idx_dataset(tmp_path_factory.mktemp("idx"), n_train=600, n_test=200)


@pytest.mark.parametrize("kind", ["cnn", "gan"])
def test_sigkill_at_a_random_moment_then_resume_is_bit_identical(kind, idx_dataset, tmp_path):
    fi = _fault_injection()
    result = fi.inject(kind, idx_dataset, kills=2, seed=3, window=0.0, workdir=tmp_path)
    assert result["kills"] >= 1, result  # at least one kill landed mid-training
    assert result["corrupt_checkpoints"] == 0
    assert result["identical_to_uninterrupted"], result


def test_torchrun_two_cpu_processes_match_one_process_with_the_same_global_batch(idx_dataset, tmp_path):
    settings = ["train", "cnn", "--dataset", idx_dataset, "--epochs", "2", "--precision", "fp32", "--deterministic",
                "--no-progress"]
    single = subprocess.run([sys.executable, "-m", "mnistlab", *settings, "--out", str(tmp_path / "one")],
                            capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "mnistlab", *settings, "--out", str(tmp_path / "two")],
                         capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    one, two = (load_checkpoint(tmp_path / name) for name in ("one", "two"))
    assert two["environment"]["world_size"] == 2
    # The seed CNN has no batch norm or augmentation: only the order of float sums differs.
    for a, b in zip(one["metrics"], two["metrics"]):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["test_acc"] == pytest.approx(b["test_acc"], abs=1 / 200)
    for key in one["model"]:
        assert torch.allclose(one["model"][key], two["model"][key], atol=1e-5), key
    assert ddp.stdout.count("trained cnn/seed") == 1  # only rank 0 reports
