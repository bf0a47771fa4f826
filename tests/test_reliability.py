"""Kill it, resume it, get the same answer; and data-parallel training under torchrun."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_cli import run_cli

from mnistlab.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow  # real processes, servers or training for seconds: not in make test-fast

ROOT = Path(__file__).resolve().parents[1]


def _fault_injection():
    spec = importlib.util.spec_from_file_location("fault_injection", ROOT / "scripts" / "fault_injection.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def idx_dataset(tmp_path_factory):
    return _fault_injection().tiny_idx_dataset(tmp_path_factory.mktemp("idx"), n_train=600, n_test=200)


def test_sigkill_at_a_random_moment_then_resume_is_bit_identical(idx_dataset, tmp_path):
    # The CNN: one kill, three processes. Both trainers write checkpoints through the same atomic files, and the
    # GAN's resume is held bit-exact by test_train_gan; `scripts/fault_injection.py --kind both --kills 20` is
    # the long check of both kinds.
    result = _fault_injection().inject("cnn", idx_dataset, kills=1, seed=3, window=0.0, workdir=tmp_path)
    assert result["kills"] >= 1, result  # at least one kill landed mid-training
    assert result["corrupt_checkpoints"] == 0, result
    assert result["identical_to_uninterrupted"], result


def test_torchrun_two_cpu_processes_match_one_process_with_the_same_global_batch(idx_dataset, tmp_path):
    settings = ["train", "cnn", "--dataset", idx_dataset, "--epochs", "2", "--precision", "fp32", "--deterministic",
                "--no-progress"]
    ddp = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                            "-m", "mnistlab", *settings, "--out", str(tmp_path / "two")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    single = run_cli(*settings, "--out", tmp_path / "one")  # meanwhile, in this process: one process start fewer
    stdout, stderr = ddp.communicate(timeout=300)
    assert single.returncode == 0, single.stderr
    assert ddp.returncode == 0, stderr[-2000:]
    one, two = (load_checkpoint(tmp_path / name) for name in ("one", "two"))
    assert two["environment"]["world_size"] == 2
    # The seed CNN has no batch norm or augmentation: only the order of float sums differs.
    for a, b in zip(one["metrics"], two["metrics"]):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["test_acc"] == pytest.approx(b["test_acc"], abs=1 / 200)
    for key in one["model"]:
        assert torch.allclose(one["model"][key], two["model"][key], atol=1e-5), key
    assert stdout.count("trained cnn/seed") == 1  # only rank 0 reports


def test_resume_refuses_data_other_than_the_run_started_on(tiny_data, idx_dataset, tmp_path):
    from mnistlab.errors import MnistlabError
    from mnistlab.train.classifier import train_classifier

    run = train_classifier("seed", tiny_data, epochs=1, out=str(tmp_path / "run"), progress=False)
    config_before = (run.dir / "config.json").read_bytes()
    with pytest.raises(MnistlabError, match=r"was trained on mnist-sample .*this data is idx:"):
        train_classifier(resume=run.dir, dataset=idx_dataset, progress=False)
    assert (run.dir / "config.json").read_bytes() == config_before


def test_a_checkpoint_of_another_architecture_names_both_sides(gan_run, tmp_path):
    from mnistlab.checkpoint import save_checkpoint
    from mnistlab.errors import CheckpointError
    from mnistlab.inference import load

    state = load_checkpoint(gan_run.dir)
    state["config"]["model"]["g_width"] = 32  # the weights stay those of g_width 128
    save_checkpoint(tmp_path / "other.safetensors", "gan", {k: v for k, v in state.items() if k != "kind"})
    with pytest.raises(CheckpointError, match=r"different architecture: the checkpoint \(gan/default, mnistlab .*\) "
                                              r"has netG\.\S+ \(\d+.*the model this mnistlab .* has netG"):
        load(tmp_path / "other.safetensors")


def test_a_full_disk_while_checkpointing_is_one_clear_error_and_keeps_the_old_file(tmp_path):
    import resource
    import signal

    from mnistlab.errors import MnistlabError
    from mnistlab.files import atomic_write_bytes

    target = tmp_path / "checkpoint.safetensors"
    target.write_bytes(b"the previous good checkpoint")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    try:
        with pytest.raises(MnistlabError, match=r"cannot write .*checkpoint.safetensors: .*previous file is intact"):
            atomic_write_bytes(target, b"x" * 100_000)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_handler)
    assert target.read_bytes() == b"the previous good checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.safetensors"]  # no half-written file left


@pytest.mark.parametrize("signum, status", [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_signal_mid_training_checkpoints_says_how_to_resume_and_exits_128_plus_signal(
        signum, status, idx_dataset, tmp_path):
    import signal
    import time

    out = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "mnistlab", "train", "cnn", "--dataset", idx_dataset, "--epochs",
                                "500", "--checkpoint-every", "2", "--no-progress", "--out", str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.safetensors").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(getattr(signal, signum))
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == status, stderr
    assert f"--resume {out}" in stdout + stderr and "Traceback" not in stderr
    assert load_checkpoint(out)["kind"] == "cnn"
