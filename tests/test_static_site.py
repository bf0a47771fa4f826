"""The page that needs no server: `mnistlab export RUN --web DIR --gan RUN`, opened from file:// in Chromium
with every request that would leave the machine blocked, reads digits as `mnistlab predict` does and draws
them as the generator does."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from PIL import Image
from test_browser import CHROMIUM
from test_cli import assert_clean_error, run_cli

from mnistlab import ood
from mnistlab.inference import load
from mnistlab.photo.frame import to_mnist

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (`make browser` gets it)"),
]


@pytest.fixture(scope="module")
def site(cnn_run, gan_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("site") / "web"
    done = run_cli("export", cnn_run.dir, "--web", out, "--gan", gan_run.dir)
    assert done.returncode == 0, done.stderr
    return out


def test_the_page_reads_and_draws_offline_from_file_as_predict_and_generate_do(site, cnn_run, gan_run, tiny_data,
                                                                                tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (2, 28, 28), dtype=np.uint8)  # not digits
    digits = np.concatenate([tiny_data.test.images[:8].numpy(), noise])
    reader = load(cnn_run.dir, precision="fp32")  # fp32, as the ONNX model is
    expected = reader.probabilities(digits)  # calibrated
    assessed = reader.assess(digits)
    answers = [dict(zip(("label", "reason"), ood.answer(d, p, reader.classes))) for p, d in zip(*assessed)]
    answers = [{"label": reader.classes[a["label"]] if a["label"] is not None else None, "reason": a["reason"]}
               for a in answers]
    np.save(tmp_path / "digits.npy", digits)
    photo = tmp_path / "seven.png"
    Image.fromarray(255 - np.kron(digits[0], np.ones((8, 8), np.uint8))).save(photo)  # dark on light, 224 px
    generator = load(gan_run.dir)
    latents = generator.gan.noise(4, generator=torch.Generator().manual_seed(0))
    np.save(tmp_path / "latents.npy", latents.numpy())
    done = subprocess.run([sys.executable, str(Path(__file__).with_name("static_site_browser.py")), str(site),
                           str(tmp_path / "digits.npy"), str(photo), str(tmp_path / "latents.npy")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["status"] == "Ready: draw a digit."
    fp32 = shown["probabilities"]["fp32"]
    np.testing.assert_allclose(fp32, expected, atol=1e-3)  # the same model, the same answers
    assert [int(np.argmax(p)) for p in fp32] == list(expected.argmax(1))
    assert shown["answers"] == answers  # and the same answers: a digit, "unsure: a or b", or "not a digit"
    assert [a["reason"] for a in answers[-2:]] == ["not a digit"] * 2 and answers[0]["label"] is not None
    # The INT8 reader, chosen on the page, answers as onnxruntime does with the site's cnn-int8.onnx: the same
    # digits, with probabilities a little apart (8-bit kernels round differently in WebAssembly and on x86).
    images = digits[:, None] / np.float32(255)
    logits = onnxruntime.InferenceSession(site / "cnn-int8.onnx").run(None, {"images": images})[0]
    int8 = torch.softmax(torch.from_numpy(logits), 1).numpy()
    np.testing.assert_allclose(shown["probabilities"]["int8"], int8, atol=0.05)
    top2 = np.sort(int8, 1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 0.1  # a near tie may fall either way
    assert (np.argmax(shown["probabilities"]["int8"], 1) == int8.argmax(1))[clear].all() and clear.sum() >= 4
    # The generator draws from the same latents what `mnistlab generate` draws (uint8, rounding aside).
    assert np.abs(np.array(shown["generated"]) - generator.images(latents).reshape(4, -1)).max() <= 1
    assert np.mean(np.array(shown["grid"]) > 0) > 0.05  # and the page's own grid has digits in it
    predicted = load(cnn_run.dir).predict([str(photo)], abstain=False)[0]
    assert shown["photo_label"] == predicted["label"]
    assert shown["photo_digitness"].startswith("Digit-like: more than ")
    seen = np.reshape(shown["seen"], (28, 28)) / 255
    assert np.abs(seen - to_mnist(str(photo))).mean() < 0.08  # close to predict: canvas, not Lanczos
    assert shown["drawn"] in load(cnn_run.dir).classes
    # "Why?": the page's maps are Captum's Occlusion of the answer's logit, run on the site's fp32 reader.
    from captum.attr import Occlusion  # here, not at the top: half a second of every test process's collection

    onnx_reader = onnxruntime.InferenceSession(site / "cnn.onnx")
    occlusion = Occlusion(lambda x: torch.from_numpy(onnx_reader.run(["logits"], {"images": x.numpy()})[0]))
    for image, target, why in zip(images, expected.argmax(1), shown["why"]):
        assert why["target"] == target and why["label"] == reader.classes[target]
        captum = occlusion.attribute(torch.from_numpy(image[None]), sliding_window_shapes=(1, 6, 6), strides=(1, 2, 2),
                                     baselines=0.0, target=int(target))[0, 0].numpy()
        np.testing.assert_allclose(np.reshape(why["map"], (28, 28)), captum, atol=1e-4 * np.abs(captum).max())
    assert shown["why_text"].startswith(f"Red: ink that made it a {shown['photo_label']};")
    painted, plain = (np.reshape(shown[k], (28, 28, 4)) for k in ("why_painted", "unexplained"))
    assert (painted[..., 0] != painted[..., 2]).any()  # tinted red and blue
    assert (plain[..., 0] == plain[..., 2]).all()  # and back to grey when "Why?" is off
    assert shown["left"] == [] and shown["problems"] == []  # nothing left the machine, no error on the page


def test_the_int8_reader_ships_with_its_test_accuracy_beside_fp32s(site):
    reader = _site(site)["reader"]
    fp32, int8 = reader["models"]
    assert (fp32["name"], int8["name"], reader["int8_left_out"]) == ("fp32", "int8", None)
    assert int8["test_acc"] >= fp32["test_acc"] - 0.001  # else it is left out, and says why
    assert int8["bytes"] < fp32["bytes"] / 2 and (site / int8["onnx"]).stat().st_size == int8["bytes"]


def test_a_gan_run_alone_makes_a_page_that_only_draws(gan_run, tmp_path):
    done = run_cli("export", gan_run.dir, "--web", tmp_path / "g")
    assert done.returncode == 0, done.stderr
    described = _site(tmp_path / "g")
    assert described["reader"] is None and described["generator"]["asks_digits"]  # the default preset's GAN
    assert (tmp_path / "g" / "gan.js").is_file() and not (tmp_path / "g" / "cnn.onnx").exists()


def test_bad_requests_are_refused_in_one_line_and_nothing_is_lost(site, gan_run, cnn_run, tmp_path):
    refused = [
        [gan_run.dir, "--web", tmp_path / "new", "--gan", gan_run.dir],  # the GAN goes second
        [cnn_run.dir, "--web", site],  # a directory in use
        [tmp_path, "--web", tmp_path / "new"],  # not a run
        [cnn_run.dir, "--onnx", tmp_path / "m.onnx", "--gan", gan_run.dir],  # --gan is for pages
    ]
    for args in refused:
        assert_clean_error(run_cli("export", *args))
    assert not (tmp_path / "new").exists() and (site / "index.html").is_file()  # nothing made, nothing lost


def _site(site: Path) -> dict:
    """What site.js tells the page."""
    return json.loads((site / "site.js").read_text().removeprefix("window.MNISTLAB_SITE = ").rstrip().rstrip(";"))
