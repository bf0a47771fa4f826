"""Kill training with SIGKILL at random moments, resume it each time, and check nothing was lost.

    python scripts/fault_injection.py --kind cnn --kills 20
    python scripts/fault_injection.py --kind gan --kills 20

For each kind: one uninterrupted reference run (in this process); then the same run (same seed,
--deterministic, CPU) killed `--kills` times at random moments and resumed with `--resume` after each
kill, then resumed to the end. Reports the runs resumed, the checkpoints found corrupt after a kill (must
be 0), and whether the final weights and metrics equal the reference run's bit for bit.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from mnistlab.checkpoint import CHECKPOINT_NAME, load_checkpoint

TIMING = ("time_s", "images_per_s", "elapsed_s")  # wall-clock fields differ from run to run by nature
MNISTLAB = [sys.executable, "-m", "mnistlab"]  # a training process of its own, for the runs that are killed


def train_args(kind: str, dataset: str, out: Path, resume: bool) -> list[str]:
    """`mnistlab`'s arguments for the run, or for resuming it."""
    base = ["train", kind, "--no-progress"]
    if resume:
        return base + ["--resume", str(out)]
    settings = ["--epochs", "3" if kind == "gan" else "12", "--checkpoint-every", "3", "--deterministic",
                "--precision", "fp32", "--seed", "1"]
    if kind == "gan":
        settings += ["--batch-size", "50", "--set", "eval_every=0"]
    return base + ["--dataset", dataset, "--out", str(out)] + settings


def run_to_end(kind: str, dataset: str, out: Path, resume: bool) -> None:
    subprocess.run([*MNISTLAB, *train_args(kind, dataset, out, resume)], check=True, capture_output=True,
                   timeout=600)


def run_reference(kind: str, dataset: str, out: Path) -> None:
    """The uninterrupted run: the same command through the CLI's `main`, in this process (a start fewer)."""
    from mnistlab.cli import main

    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(train_args(kind, dataset, out, resume=False))
    if code:
        raise RuntimeError(f"the reference run exited with status {code}: {err.getvalue()}")


def kill_once(kind: str, dataset: str, out: Path, rng: random.Random, window: float) -> bool:
    """Start (or resume) the run and SIGKILL it at a random moment within `window` seconds of its first
    checkpoint write (so the kill lands in training, not in Python's start-up); True if it was killed."""
    checkpoint = out / CHECKPOINT_NAME
    resume = checkpoint.exists()
    last_write = checkpoint.stat().st_mtime_ns if resume else 0
    proc = subprocess.Popen([*MNISTLAB, *train_args(kind, dataset, out, resume)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    while proc.poll() is None and not (checkpoint.exists() and checkpoint.stat().st_mtime_ns != last_write):
        time.sleep(0.005)
    time.sleep(rng.uniform(0, window))
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


def final_state(out: Path) -> tuple[dict[str, torch.Tensor], list[dict]]:
    state = load_checkpoint(out)
    metrics = [{k: v for k, v in m.items() if k not in TIMING} for m in state["metrics"]]
    weights = {k: v for k, v in state["model"].items()}
    return weights, metrics


def same_result(a: Path, b: Path) -> bool:
    (wa, ma), (wb, mb) = final_state(a), final_state(b)
    return ma == mb and wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def inject(kind: str, dataset: str, kills: int, seed: int, window: float, workdir: Path) -> dict:
    reference, victim = workdir / f"{kind}-reference", workdir / f"{kind}-killed"
    run_reference(kind, dataset, reference)
    training_s = sum(m["time_s"] for m in load_checkpoint(reference)["metrics"])
    rng = random.Random(seed)
    killed = corrupt = 0
    for _ in range(kills):
        # A window of half the training time over the kills lets all of them land before the run can end.
        if not kill_once(kind, dataset, victim, rng, window or training_s / (2 * kills)):
            break  # it finished before the kill came
        killed += 1
        if (victim / CHECKPOINT_NAME).exists():
            try:
                load_checkpoint(victim)
            except Exception:  # noqa: BLE001 - any failure to load is a corrupt checkpoint
                corrupt += 1
                break
    if corrupt == 0:
        run_to_end(kind, dataset, victim, resume=(victim / CHECKPOINT_NAME).exists())
    return {"kind": kind, "kills": killed, "corrupt_checkpoints": corrupt,
            "leftover_temp_files": len(list(victim.glob(".*.tmp"))),
            "identical_to_uninterrupted": corrupt == 0 and same_result(reference, victim)}


def tiny_idx_dataset(directory: Path, n_train: int = 1200, n_test: int = 300) -> str:
    """Real digits from mnist-sample written as IDX files: small enough for many kills in minutes."""
    from mnistlab.data.datasets import load_dataset
    from mnistlab.data.idx import write_idx

    data = load_dataset("mnist-sample", val_size=0)
    for stem, split, n in (("train", data.train, n_train), ("t10k", data.test, n_test)):
        write_idx(directory / f"{stem}-images-idx3-ubyte.gz", split.images[:n].numpy())
        write_idx(directory / f"{stem}-labels-idx1-ubyte.gz", split.labels[:n].numpy().astype("uint8"))
    return f"idx:{directory}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=["cnn", "gan", "both"], default="both")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill moments")
    parser.add_argument("--window", type=float, default=0.0,
                        help="kill within this many seconds of a (re)start's first checkpoint "
                             "(default: the reference run's training time / (2 x kills))")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        dataset = tiny_idx_dataset(Path(tmp))
        for kind in (["cnn", "gan"] if args.kind == "both" else [args.kind]):
            print(json.dumps(inject(kind, dataset, args.kills, args.seed, args.window, Path(tmp))), flush=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
