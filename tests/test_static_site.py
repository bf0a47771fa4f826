"""The page that needs no server: `mnistlab export RUN --web DIR`, opened from file:// in Chromium with every
request that would leave the machine blocked, reads digits as `mnistlab predict` does."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_browser import CHROMIUM

from mnistlab.inference import load
from mnistlab.photo.frame import to_mnist

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (`make browser` gets it)"),
]


@pytest.fixture(scope="module")
def site(cnn_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("site") / "web"
    done = subprocess.run([sys.executable, "-m", "mnistlab", "export", str(cnn_run.dir), "--web", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return out


def test_the_page_reads_offline_from_file_as_predict_does(site, cnn_run, tiny_data, tmp_path):
    digits = tiny_data.test.images[:8].numpy()
    expected = load(cnn_run.dir, precision="fp32").probabilities(digits)  # calibrated, fp32 as the ONNX model is
    np.save(tmp_path / "digits.npy", digits)
    photo = tmp_path / "seven.png"
    Image.fromarray(255 - np.kron(digits[0], np.ones((8, 8), np.uint8))).save(photo)  # dark on light, 224 px
    done = subprocess.run([sys.executable, str(Path(__file__).with_name("static_site_browser.py")), str(site),
                           str(tmp_path / "digits.npy"), str(photo)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    np.testing.assert_allclose(shown["probabilities"], expected, atol=1e-3)  # the same model, the same answers
    assert [int(np.argmax(p)) for p in shown["probabilities"]] == list(expected.argmax(1))
    predicted = load(cnn_run.dir).predict([str(photo)], abstain=False)[0]
    assert shown["photo_label"] == predicted["label"]
    seen = np.reshape(shown["seen"], (28, 28)) / 255
    assert np.abs(seen - to_mnist(str(photo))).mean() < 0.08  # close to predict: canvas, not Lanczos
    assert shown["drawn"] in load(cnn_run.dir).classes
    assert shown["left"] == [] and shown["problems"] == []  # nothing left the machine, no error on the page


def test_a_gan_run_or_a_used_directory_is_refused_in_one_line(site, gan_run, cnn_run, tmp_path):
    for run, out in ((gan_run.dir, tmp_path / "new"), (cnn_run.dir, site)):
        done = subprocess.run([sys.executable, "-m", "mnistlab", "export", str(run), "--web", str(out)],
                              capture_output=True, text=True)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert not (tmp_path / "new").exists() and (site / "index.html").is_file()  # nothing made, nothing lost
