"""The label-free GAN: conditioned on clusters it finds in the images, never on their labels."""

import os
import signal
from dataclasses import replace

import pytest
import torch

from mnistlab.config import DCGANConfig
from mnistlab.data.datasets import Split
from mnistlab.errors import MnistlabError
from mnistlab.evaluate import evaluate_gan
from mnistlab.inference import load
from mnistlab.models.dcgan import DCGAN
from mnistlab.train.clusters import find_clusters
from mnistlab.train.gan import train_gan
from mnistlab.train.loop import Interrupted

pytestmark = pytest.mark.slow  # real processes, servers or training for seconds: not in make test-fast

CLUSTERED = dict(conditional=True, clusters=5, epochs=1, batch_size=50, eval_every=0, progress=False)


def few(data, labels=None):
    images = data.train.images[:200]
    return replace(data, train=Split(images, data.train.labels[:200] if labels is None else labels))


def test_clusters_are_found_from_pixels_alone_and_the_same_seed_finds_the_same(tiny_data):
    images = tiny_data.train.images[:300]
    a, b = find_clusters(images, 8, seed=3), find_clusters(images, 8, seed=3)
    assert torch.equal(a, b) and a.shape == (300,) and set(a.tolist()) == set(range(8))
    assert not torch.equal(a, find_clusters(images, 8, seed=4))
    # Clusters of digits carry their shapes: most images share a cluster with others of their digit.
    labels = tiny_data.train.labels[:300]
    purity = sum(torch.bincount(labels[a == c]).max() for c in range(8)) / 300
    assert purity > 0.4  # ten digits in 8 clusters: chance is ~0.2


def test_it_never_reads_a_label(tiny_data, tmp_path):
    data = few(tiny_data)
    wrong = torch.randint(0, 10, (200,), generator=torch.Generator().manual_seed(1))
    right = train_gan("default", data, out=str(tmp_path / "right"), **CLUSTERED)
    garbled = train_gan("default", few(tiny_data, labels=wrong), out=str(tmp_path / "wrong"), **CLUSTERED)
    for name, tensor in right.gan.state_dict().items():
        assert torch.equal(tensor, garbled.gan.state_dict()[name]), name
    assert [m["loss_d"] for m in right.metrics] == [m["loss_d"] for m in garbled.metrics]


def test_any_digit_draws_clusters_in_their_shares_of_the_training_images(tiny_data, tmp_path):
    run = train_gan("default", few(tiny_data), out=str(tmp_path / "r"), **CLUSTERED)
    shares = run.gan.cluster_shares
    assert shares.sum().item() == pytest.approx(1.0) and len(shares) == 5
    clusters = find_clusters(tiny_data.train.images[:200], 5, seed=0)
    assert torch.equal(shares, torch.bincount(clusters, minlength=5).double() / 200)
    drawn = run.gan.digits(run.gan.noise(20000, generator=torch.Generator().manual_seed(0)))
    assert torch.allclose(torch.bincount(drawn, minlength=5).double() / 20000, shares, atol=0.015)


def test_resume_is_bit_identical(tiny_data, tmp_path):
    data, settings = few(tiny_data), CLUSTERED | {"epochs": 2, "deterministic": True}
    straight = train_gan("default", data, out=str(tmp_path / "a"), **settings)

    def sigterm_after_epoch_1(metrics):
        if metrics["epoch"] == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(Interrupted):
        train_gan("default", data, out=str(tmp_path / "b"), callback=sigterm_after_epoch_1, **settings)
    resumed = train_gan(resume=tmp_path / "b", dataset=data, progress=False)
    for name, tensor in straight.gan.state_dict().items():
        assert torch.equal(tensor, resumed.gan.state_dict()[name]), name


@pytest.mark.parametrize("settings, complaint", [
    (dict(clusters=10), "needs conditional = true"),
    (dict(conditional=True, clusters=1), "tells G and D nothing"),
    (dict(arch="seed", clusters=10), "needs arch = default"),
])
def test_nonsense_cluster_settings_are_refused(settings, complaint):
    base = dict(arch="default") | settings
    with pytest.raises(MnistlabError, match=complaint):
        DCGAN(DCGANConfig(**base))


def test_its_best_generator_keeps_the_cluster_shares_and_cannot_be_asked_for_a_digit(tiny_data, tmp_path):
    run = train_gan("default", few(tiny_data), out=str(tmp_path / "r"),
                    **CLUSTERED | {"eval_every": 1, "eval_samples": 100})
    best = load(tmp_path / "r", checkpoint="best")
    assert best.checkpoint == "best" and not best.conditional
    assert torch.equal(best.gan.cluster_shares, run.gan.cluster_shares)
    assert best.generate(4, seed=0).shape == (4, 28, 28)
    with pytest.raises(MnistlabError, match="clusters it found in its images, not on digits"):
        best.generate(4, seed=0, digit=3)


def test_the_unconditional_preset_on_too_few_images_for_its_clusters_is_one_line(tiny_data, tmp_path):
    twenty = replace(tiny_data, train=Split(tiny_data.train.images[:20], tiny_data.train.labels[:20]))
    with pytest.raises(MnistlabError, match="20 training images cannot form model.clusters = 50 clusters"):
        train_gan("unconditional", twenty, epochs=1, batch_size=10, eval_every=0, out=str(tmp_path / "r"),
                  progress=False)
    assert not (tmp_path / "r").exists()  # refused before its run directory was made


def test_its_clusters_are_not_scored_as_asked_digits(tiny_data, tmp_path):
    train_gan("default", few(tiny_data), out=str(tmp_path / "r"), **CLUSTERED)
    report = evaluate_gan(tmp_path / "r", n=200)
    assert "asked_digit_accuracy" not in report and report["n"] == 200
