"""ONNX export of the real tiny runs, rerun with onnxruntime against PyTorch, and how it fails."""

import os
import subprocess
import sys

import numpy as np
import onnxruntime
import pytest
import torch

from mnistlab import export
from mnistlab.cli import main
from mnistlab.errors import MnistlabError
from mnistlab.export import export_onnx
from mnistlab.inference import classify, load
from mnistlab.pixels import to_uint8

pytestmark = pytest.mark.slow  # real processes, servers or training for seconds: not in make test-fast


def session(path):
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_cnn_export_from_the_cli_reads_real_digits_as_pytorch_does(cnn_run, tiny_data, tmp_path, capsys):
    path = tmp_path / "cnn.onnx"
    assert main(["export", str(cnn_run.dir), "--onnx", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"wrote {path} (cnn" in out and "max |difference| vs PyTorch: " in out
    assert float(out.rsplit(": ", 1)[1]) <= 1e-4

    images = tiny_data.test.images[:100]
    logits, _ = classify(cnn_run.model, images, "cpu", None)  # fp32, as exported
    expected = logits / load(cnn_run.dir).temperature  # calibrated: softmax gives what predict gives
    onnx = session(path)
    (input_,) = onnx.get_inputs()
    assert input_.name == "images" and input_.shape == ["N", 1, 28, 28]
    for batch in (1, 100):  # the batch axis is dynamic
        x = images[:batch].float().div(255).view(-1, 1, 28, 28).numpy()
        logits = onnx.run(None, {"images": x})[0]
        assert logits.shape == (batch, 10)
        assert np.abs(logits - expected[:batch].numpy()).max() < 1e-4
    assert (logits.argmax(1) == expected.argmax(1).numpy()).all()

    # The second output is the digitness `predict` gives (fp32), for digits, noise and a blank alike.
    assert [o.name for o in onnx.get_outputs()] == ["logits", "digitness"]
    inputs = np.concatenate([images[:20].numpy(), np.random.default_rng(0).integers(0, 256, (5, 28, 28)),
                             np.zeros((1, 28, 28))]).astype(np.uint8)
    _, digitness = onnx.run(None, {"images": inputs[:, None].astype(np.float32) / 255})
    _, expected_digitness = load(cnn_run.dir, precision="fp32").assess(inputs)
    assert np.abs(digitness - np.array(expected_digitness)).max() <= 1e-4  # float32 here, float64 there
    assert digitness[:20].min() > 0.005 and digitness[20:].max() == 0.0  # digits, and then not


def test_a_run_made_before_the_digitness_scale_exports_its_logits_alone(cnn_run, tmp_path):
    from mnistlab.checkpoint import load_checkpoint, save_checkpoint

    state = load_checkpoint(cnn_run.dir)
    del state["digitness"]
    save_checkpoint(tmp_path / "old.safetensors", "cnn", {k: v for k, v in state.items() if k != "kind"})
    result = export_onnx(tmp_path / "old.safetensors", tmp_path / "old.onnx")
    assert [o.name for o in session(tmp_path / "old.onnx").get_outputs()] == ["logits"]
    assert "digitness" not in result["output"]


def test_gan_export_draws_the_generators_digits(gan_run, tmp_path):
    result = export_onnx(gan_run.dir, tmp_path / "gan.onnx")
    generator = load(gan_run.dir)
    assert (result["kind"], result["path"]) == ("gan", str(tmp_path / "gan.onnx"))
    assert result["source"] == str(gan_run.dir / "best.safetensors") == str(generator.path)  # the best, by default
    last = export_onnx(gan_run.dir, tmp_path / "last.onnx", checkpoint="last")
    assert last["source"] == str(gan_run.dir / "checkpoint.safetensors")
    assert result["max_abs_diff"] <= 1e-4
    assert result["input"].startswith(f"z float32 [N,{generator.gan.latent_dim}]") and "[-1,1]" in result["output"]

    z = generator.gan.noise(6, generator=torch.Generator().manual_seed(5))
    images = session(tmp_path / "gan.onnx").run(None, {"z": z.numpy()})[0]
    assert images.shape == (6, 1, 28, 28) and images.min() >= -1 and images.max() <= 1
    pixels = to_uint8(torch.from_numpy(images[:, 0]), generator.real_range)  # the mapping `output` states
    assert np.abs(pixels.astype(int) - generator.generate(6, seed=5).astype(int)).max() <= 1


def test_a_failed_check_leaves_the_existing_file_alone(cnn_run, tmp_path, monkeypatch):
    path = tmp_path / "cnn.onnx"
    path.write_bytes(b"a good model")
    monkeypatch.setattr(export, "TOLERANCE", -1.0)  # any difference at all now fails the check
    with pytest.raises(MnistlabError, match="differs from PyTorch .* nothing was written"):
        export_onnx(cnn_run.dir, path)
    assert path.read_bytes() == b"a good model"
    assert [p.name for p in tmp_path.iterdir()] == ["cnn.onnx"]  # no temporary file left behind


def test_unwritable_paths_fail_with_one_line(cnn_run, tmp_path, capsys):
    (tmp_path / "taken.onnx").mkdir()  # a directory where the file should go: only the final rename fails
    with pytest.raises(MnistlabError, match="cannot write .*taken.onnx: ") as error:
        export_onnx(cnn_run.dir, tmp_path / "taken.onnx")
    assert "\n" not in str(error.value)
    assert [p.name for p in tmp_path.iterdir()] == ["taken.onnx"]

    assert main(["export", str(cnn_run.dir), "--onnx", str(tmp_path / "missing" / "cnn.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mnistlab: error: cannot write") and "no directory" in err and "\n" not in err


def test_export_without_the_onnx_extra_names_what_to_install(cnn_run, tmp_path):
    hidden = tmp_path / "hidden" / "onnx"  # earlier on the path than the installed onnx, and broken
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    result = subprocess.run([sys.executable, "-m", "mnistlab", "export", str(cnn_run.dir), "--onnx",
                             str(tmp_path / "cnn.onnx")], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(tmp_path / "hidden")})
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == ("mnistlab: error: ONNX export needs onnx, which is not installed: "
                             "pip install 'mnistlab[onnx]'\n")
    assert not (tmp_path / "cnn.onnx").exists()
