"""The command line on real runs: evaluate, predict, generate, and every kind of bad input.

Bad input must give one line on stderr, exit status 2, no traceback, and leave good files alone.
"""

import contextlib
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from mnistlab.cli import main
from mnistlab.data.datasets import Split
from mnistlab.inference import classify


def run_cli(*args):
    """Run the CLI's `main` in this process (a process start costs ~2 s of torch import; `test_data_list...`
    and tests/test_reliability.py run real processes): its exit status and what it printed. An exception
    escaping `main` fails the test, as a traceback would."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # argparse's usage errors
            code = e.code
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def assert_clean_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mnistlab: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_evaluate_json(cnn_run, capsys):
    assert main(["evaluate", "cnn", str(cnn_run.dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 1000 and report["dataset"] == "mnist-sample"  # the run's own dataset's test split
    assert 0 <= report["accuracy"] <= 1 and set(report["per_class"]) == {str(d) for d in range(10)}
    assert sum(map(sum, report["confusion"])) == 1000


def test_evaluate_on_an_idx_directory_with_only_the_test_pair(cnn_run, tiny_data, tmp_path, capsys):
    from mnistlab.data.idx import write_idx

    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", tiny_data.test.images.numpy())
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", tiny_data.test.labels.numpy().astype(np.uint8))
    assert main(["evaluate", "cnn", str(cnn_run.dir / "checkpoint.safetensors"), "--dataset", f"idx:{tmp_path}",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    logits, _ = classify(cnn_run.model, tiny_data.test.images, "cpu", None)
    assert report["n"] == 500
    direct = (logits.argmax(1) == tiny_data.test.labels).float().mean().item()
    assert report["accuracy"] == pytest.approx(direct, abs=0.01)


def as_a_person_would_write_it(digit: np.ndarray, size: int, offset: tuple[int, int], dark_on_light: bool):
    """A real MNIST digit redrawn the way a photo or scan would have it: bigger, off-centre, maybe inverted."""
    ink = Image.fromarray(digit).resize((size, size), Image.BICUBIC)
    canvas = Image.new("L", (size * 2, size * 2), 0)
    canvas.paste(ink, offset)
    array = np.array(canvas)
    return Image.fromarray(255 - array if dark_on_light else array)


def test_predict_reads_digits_as_people_make_them(cnn_run, tiny_data, tmp_path, capsys):
    logits, _ = classify(cnn_run.model, tiny_data.test.images, "cpu", None)
    confident = (logits.softmax(1).max(1).values > 0.99).nonzero().view(-1)[:4]
    files, expected = [], []
    for i, index in enumerate(confident.tolist()):
        image = as_a_person_would_write_it(tiny_data.test.images[index].numpy(), 140 + 40 * i, (15 * i, 90 - 20 * i),
                                           dark_on_light=i % 2 == 0)
        path = tmp_path / f"digit{i}.{'jpg' if i == 3 else 'png'}"
        image.convert("RGB").save(path)
        files.append(str(path))
        expected.append(int(logits[index].argmax()))
    assert main(["predict", str(cnn_run.dir), *files, "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["file"] for r in results] == files
    assert [r["digit"] for r in results] == expected
    assert all(abs(sum(r["probabilities"]) - 1) < 1e-4 for r in results)


def test_generate_writes_png_grid_npy_array_one_png_per_digit_and_a_walk(gan_run, tmp_path):
    assert main(["generate", str(gan_run.dir), "-n", "10", "--seed", "3", "--out", str(tmp_path / "g.npy")]) == 0
    array = np.load(tmp_path / "g.npy")
    assert array.shape == (10, 28, 28) and array.dtype == np.uint8
    assert main(["generate", str(gan_run.dir), "-n", "10", "--seed", "3", "--out", str(tmp_path / "again.npy")]) == 0
    assert np.array_equal(array, np.load(tmp_path / "again.npy"))  # same seed, same digits
    assert main(["generate", str(gan_run.dir), "-n", "9", "--out", str(tmp_path / "g.png")]) == 0
    assert Image.open(tmp_path / "g.png").size == (2 * (3 * 30 + 2),) * 2  # 3x3 tiles of 28 + 2 px, scaled 2x
    assert main(["generate", str(gan_run.dir), "-n", "3", "--out-dir", str(tmp_path / "each")]) == 0
    assert sorted(p.name for p in (tmp_path / "each").iterdir()) == ["digit_0000.png", "digit_0001.png",
                                                                      "digit_0002.png"]
    assert main(["generate", str(gan_run.dir), "-n", "8", "--interpolate", "--out", str(tmp_path / "walk.png")]) == 0
    assert Image.open(tmp_path / "walk.png").size == (2 * (8 * 30 + 2), 2 * 32)


def test_generate_digit_asks_a_conditional_generator_for_that_digit(gan_run, tmp_path):
    from mnistlab.inference import load

    assert main(["generate", str(gan_run.dir), "-n", "6", "--seed", "4", "--digit", "7",
                 "--out", str(tmp_path / "sevens.npy")]) == 0
    generator = load(gan_run.dir)
    latent = generator.gan.noise(6, generator=torch.Generator().manual_seed(4), digits=torch.full((6,), 7))
    assert np.array_equal(np.load(tmp_path / "sevens.npy"), generator.images(latent))
    assert not np.array_equal(np.load(tmp_path / "sevens.npy"), generator.generate(6, seed=4, digit=1))
    assert_clean_error(run_cli("generate", gan_run.dir, "--digit", "10", "--out", tmp_path / "x.png"), "0..9")
    assert_clean_error(run_cli("generate", gan_run.dir, "--digit", "3", "--interpolate", "--out",
                               tmp_path / "x.png"), "do not combine")


def test_an_unconditional_generator_refuses_a_digit(tiny_data, tmp_path):
    from mnistlab.train.gan import train_gan

    few = replace(tiny_data, train=Split(tiny_data.train.images[:200], tiny_data.train.labels[:200]))
    run = train_gan("default", few, epochs=1, batch_size=100, eval_every=0, conditional=False,
                    out=str(tmp_path / "plain"), progress=False)
    assert_clean_error(run_cli("generate", run.dir, "--digit", "3", "--out", tmp_path / "x.png"),
                       "unconditional", "conditional=true")
    assert not (tmp_path / "x.png").exists()
    assert main(["generate", str(run.dir), "-n", "4", "--out", str(tmp_path / "any.npy")]) == 0


# ----------------------------------------------------------------------------------------------
# Bad input


def test_unknown_preset_and_dataset_and_setting(tmp_path):
    assert_clean_error(run_cli("train", "cnn", "--preset", "huge", "--out", tmp_path / "a"),
                       "unknown cnn preset 'huge'",
                       "seed, gorner, best")
    assert_clean_error(run_cli("train", "cnn", "--dataset", "cifar", "--out", tmp_path / "b"), "cifar")
    assert_clean_error(run_cli("train", "cnn", "--set", "fliters=[1]", "--out", tmp_path / "c"), "unknown setting")
    assert_clean_error(run_cli("train", "cnn", "--set", "epochs=many", "--out", tmp_path / "d"),
                       "bad value for train.epochs: 'many'", "an integer >= 1")


def test_a_wrong_preset_or_setting_is_reported_before_torch_is_imported():
    probe = ("import sys; from mnistlab.cli import main; "
             "codes = [main(['train', kind, *args]) for kind in ('cnn', 'gan') for args in "
             "(['--preset', 'huge'], ['--set', 'epochs=many'])]; print(codes, 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip().splitlines()[-1] == "[2, 2, 2, 2] False", result.stdout + result.stderr


def test_corrupt_dataset_files(tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x01" + b"\x00" * 20)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x02\x01\x02")
    before = (tmp_path / "t10k-images-idx3-ubyte").read_bytes()
    assert_clean_error(run_cli("evaluate", "cnn", "mnistlab/assets/evaluator-v1.safetensors", "--dataset",
                               f"idx:{tmp_path}"), "t10k-images-idx3-ubyte")
    assert (tmp_path / "t10k-images-idx3-ubyte").read_bytes() == before


def test_a_pickle_crafted_to_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = tmp_path / "checkpoint.pt"
    evil.write_bytes(pickle.dumps({"model": Exploit()}))
    commands = (["evaluate", "cnn", evil], ["predict", evil, evil], ["generate", evil, "--out", tmp_path / "x.png"])
    for command in commands:
        assert_clean_error(run_cli(*command), "never unpickles")
    assert not marker.exists()


def test_wrong_kind_and_newer_format_name_both_sides(cnn_run, gan_run, tmp_path, monkeypatch):
    assert_clean_error(run_cli("generate", cnn_run.dir, "--out", tmp_path / "x.png"), "is a cnn checkpoint",
                       "a gan checkpoint is needed")
    assert_clean_error(run_cli("predict", gan_run.dir, "x.png"), "is a gan checkpoint", "a cnn checkpoint")
    import mnistlab.checkpoint as ckpt

    state = ckpt.load_checkpoint(cnn_run.dir)
    current = ckpt.FORMAT_VERSION
    monkeypatch.setattr(ckpt, "FORMAT_VERSION", 99)  # as a future mnistlab would write it
    ckpt.save_checkpoint(tmp_path / "future.safetensors", "cnn", state)
    monkeypatch.undo()  # this mnistlab reads it back
    assert_clean_error(run_cli("evaluate", "cnn", tmp_path / "future.safetensors"), "format 99", f"({current})",
                       "upgrade")


def test_unreadable_images_and_bad_counts_and_paths(cnn_run, gan_run, tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    assert_clean_error(run_cli("predict", cnn_run.dir, tmp_path / "notes.png"), "cannot read image")
    assert_clean_error(run_cli("predict", cnn_run.dir, tmp_path / "missing.png"), "cannot read image")
    assert_clean_error(run_cli("generate", gan_run.dir, "-n", "0", "--out", tmp_path / "x.png"),
                       "-n must be at least 1")
    assert_clean_error(run_cli("generate", gan_run.dir, "--out", tmp_path / "x.gif"), ".png", ".npy")
    blocker = tmp_path / "file"
    blocker.write_text("a file where a directory should be")
    assert_clean_error(run_cli("generate", gan_run.dir, "--out", blocker / "x.png"), "cannot write")
    assert_clean_error(run_cli("train", "cnn", "--out", blocker / "run"), "cannot write")
    assert_clean_error(run_cli("evaluate", "cnn", tmp_path / "nowhere"), "no checkpoint at")


def test_an_existing_run_is_never_overwritten_and_resume_takes_no_settings(cnn_run):
    before = (cnn_run.dir / "checkpoint.safetensors").read_bytes()
    assert_clean_error(run_cli("train", "cnn", "--out", cnn_run.dir), "already holds a run", "--resume")
    assert_clean_error(run_cli("train", "cnn", "--resume", cnn_run.dir, "--lr", "0.1"), "drop train.lr")
    assert (cnn_run.dir / "checkpoint.safetensors").read_bytes() == before


@pytest.mark.slow
def test_data_list_and_a_failed_download(tmp_path, dead_mirror):
    listing = run_cli("data", "list", "--data-root", tmp_path)
    assert listing.returncode == 0, listing.stderr
    rows = {line.split()[0]: line.split()[1] for line in listing.stdout.splitlines()[1:]}
    assert rows["mnist"] == "no" and rows["mnist-sample"] == "yes"
    env = {**os.environ, "MNISTLAB_MIRRORS": dead_mirror}
    failed = subprocess.run([sys.executable, "-m", "mnistlab", "data", "download", "mnist", "--data-root",
                             str(tmp_path)], capture_output=True, text=True, timeout=120, env=env)
    assert_clean_error(failed, "Connection refused")
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # nothing half-downloaded left behind


@pytest.mark.slow
def test_a_toml_config_overrides_the_preset_and_the_flags_override_it(tmp_path):
    config = tmp_path / "my.toml"
    config.write_text('[model]\nfilters = [6, 12, 18]\nbias_init = "constant"\n[train]\nepochs = 1\nlr = 0.002\n')
    result = run_cli("train", "cnn", "--config", config, "--lr", "0.003", "--dataset", "mnist-sample",
                     "--set", "val_size=0", "--no-progress", "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["model"]["filters"] == [6, 12, 18] and saved["model"]["bias_init"] == "constant"
    assert saved["train"]["epochs"] == 1 and saved["train"]["lr"] == 0.003
    assert saved["model"]["kernels"] == [5, 4, 4]  # the rest is the seed preset's
    config.write_text("[model]\nfilters = [6, 12]\n")
    assert_clean_error(run_cli("train", "cnn", "--config", config, "--out", tmp_path / "bad"),
                       "one entry per conv layer")


def test_runs_list_takes_any_directory_even_one_named_compare(cnn_run, tmp_path, capsys):
    shutil.copytree(cnn_run.dir, tmp_path / "compare" / "cnn-seed")
    assert main(["runs", "list", str(tmp_path / "compare"), str(tmp_path / "nowhere")]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert len(rows) == 1 and rows[0].startswith("cnn") and rows[0].endswith(str(tmp_path / "compare" / "cnn-seed"))
    assert_clean_error(run_cli("runs", "compare", tmp_path / "compare" / "cnn-seed", tmp_path / "nowhere"), "nowhere")


# ----------------------------------------------------------------------------------------------
# --checkpoint best|last


def test_gan_commands_read_the_best_generator_by_default_and_say_which(gan_run, tmp_path):
    assert (gan_run.dir / "best.safetensors").is_file()  # the fixture evaluated at its last epoch
    drawn = run_cli("generate", gan_run.dir, "-n", "4", "--out", tmp_path / "best.npy")
    assert drawn.returncode == 0 and f"{gan_run.dir / 'best.safetensors'} (best: epoch 2, FCD " in drawn.stderr
    drawn = run_cli("generate", gan_run.dir, "-n", "4", "--checkpoint", "last", "--out", tmp_path / "last.npy")
    assert drawn.returncode == 0 and f"{gan_run.dir / 'checkpoint.safetensors'} (last: epoch 2" in drawn.stderr
    # the best was measured at the last epoch, and the default preset has no EMA: the same generator
    assert np.array_equal(np.load(tmp_path / "best.npy"), np.load(tmp_path / "last.npy"))
    evaluated = run_cli("evaluate", "gan", gan_run.dir, "-n", "50", "--checkpoint", "best")
    assert evaluated.returncode == 0, evaluated.stderr
    assert evaluated.stdout.startswith(f"{gan_run.dir / 'best.safetensors'} (best: epoch 2, FCD ")
    for command in (["generate"], ["evaluate", "gan"], ["export"], ["serve"]):
        assert "default: best when the run kept one, else last" in " ".join(run_cli(*command, "-h").stdout.split())


@pytest.mark.slow
def test_a_missing_or_damaged_best_is_one_line(gan_run, cnn_run, tmp_path):
    run = tmp_path / "gan"
    shutil.copytree(gan_run.dir, run)
    (run / "best.safetensors").unlink()
    assert_clean_error(run_cli("generate", run, "--checkpoint", "best", "--out", tmp_path / "x.png"),
                       "has no best.safetensors", "eval_every")
    assert_clean_error(run_cli("export", cnn_run.dir, "--checkpoint", "best", "--onnx", tmp_path / "x.onnx"),
                       "has no best.safetensors")
    assert main(["generate", str(run), "-n", "2", "--out", str(tmp_path / "falls-back.npy")]) == 0

    good = (gan_run.dir / "best.safetensors").read_bytes()
    (run / "best.safetensors").write_bytes(good[: len(good) // 2])  # truncated
    for command in (["generate", run, "--out", tmp_path / "x.png"], ["evaluate", "gan", run, "-n", "50"],
                    ["export", run, "--onnx", tmp_path / "x.onnx"]):
        assert_clean_error(run_cli(*command), "best.safetensors is not a mnistlab safetensors checkpoint")
    header_length = int.from_bytes(good[:8], "little")
    header = json.loads(good[8 : 8 + header_length])
    metadata = json.loads(header["__metadata__"]["mnistlab"])
    metadata["state"] = {"__dict__": [["fcd", "low"]]}  # a valid file whose mnistlab state is broken
    header["__metadata__"]["mnistlab"] = json.dumps(metadata)
    encoded = json.dumps(header).encode()
    (run / "best.safetensors").write_bytes(len(encoded).to_bytes(8, "little") + encoded + good[8 + header_length:])
    assert_clean_error(run_cli("generate", run, "--out", tmp_path / "x.png"), "best.safetensors: damaged checkpoint")
    assert_clean_error(run_cli("runs", "compare", run, "--plot", tmp_path / "c.png"), "best.safetensors")
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "x.onnx").exists()
