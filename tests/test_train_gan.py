"""Training the DCGAN: finite losses that move both networks, the run directory, exact resume."""

import json
import os
import signal
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from mnistlab.checkpoint import load_checkpoint
from mnistlab.config import preset
from mnistlab.data.datasets import Split
from mnistlab.errors import MnistlabError
from mnistlab.models.dcgan import DCGAN
from mnistlab.train.gan import gan_loss, train_gan
from mnistlab.train.loop import Interrupted

pytestmark = pytest.mark.slow  # real processes, servers or training for seconds: not in make test-fast


def test_a_run_writes_grids_gif_curves_metrics_and_a_full_checkpoint(gan_run):
    d = gan_run.dir
    assert sorted(p.name for p in (d / "samples").iterdir()) == ["epoch_001.png", "epoch_002.png"]
    gif = Image.open(d / "progress.gif")
    assert gif.n_frames == 2
    assert (d / "curves.png").stat().st_size > 1000
    metrics = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2]
    for m in metrics:
        assert all(np.isfinite(m[k]) for k in ("loss_d", "loss_g", "d_x", "d_g_z"))
        assert 0 <= m["d_x"] <= 1 and 0 <= m["d_g_z"] <= 1
    assert {"fcd", "fcd_real_floor", "inception_score", "class_entropy", "confident_fraction"} <= set(metrics[-1])
    state = load_checkpoint(d)
    assert state["kind"] == "gan" and state["epoch"] == 2
    assert {"model", "optimizer_d", "optimizer_g", "rng", "metrics"} <= set(state)
    assert any(k.startswith("netG.") for k in state["model"]) and any(k.startswith("netD.") for k in state["model"])


@pytest.mark.parametrize("preset_name", ["seed", "default"])
def test_a_few_steps_give_finite_losses_and_move_both_networks(preset_name, tiny_data, tmp_path):
    torch.manual_seed(0)
    before = DCGAN(preset("gan", preset_name).model).state_dict()
    few = replace(tiny_data, train=Split(tiny_data.train.images[:300], tiny_data.train.labels[:300]))  # 3 steps
    run = train_gan(preset_name, few, epochs=1, batch_size=100, eval_every=0, out=str(tmp_path / "r"),
                    progress=False)
    after = run.gan.state_dict()
    for net in ("netG", "netD"):
        assert any(not torch.equal(before[n], after[n].cpu()) for n in before if n.startswith(net + ".")), net
    assert np.isfinite(run.metrics[0]["loss_d"]) and np.isfinite(run.metrics[0]["loss_g"])


def test_deterministic_mode_is_switched_back_even_when_training_fails(tiny_data, tmp_path):
    try:
        with pytest.raises(MnistlabError, match="batch size"):  # fails after deterministic mode was switched on
            train_gan("default", tiny_data, batch_size=5000, deterministic=True, out=str(tmp_path), progress=False)
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)


def test_seed_loss_cannot_go_below_its_tanh_floor():
    # tanh caps the two logits at ±1, so the softmax cross-entropy is at least log(1 + e^-2) ≈ 0.127.
    perfect = torch.tensor([[-1.0, 1.0]] * 4)
    assert gan_loss(perfect, 1.0, "seed-softmax").item() == pytest.approx(np.log1p(np.exp(-2)), abs=1e-6)


def test_sigterm_mid_epoch_then_resume_equals_an_uninterrupted_run(tiny_data, tmp_path):
    few = replace(tiny_data, train=Split(tiny_data.train.images[:400], tiny_data.train.labels[:400]))  # 4 steps
    settings = dict(epochs=2, batch_size=100, eval_every=0, deterministic=True, progress=False)
    straight = train_gan("default", few, out=str(tmp_path / "a"), **settings)

    def sigterm_after_epoch_1(metrics):
        if metrics["epoch"] == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(Interrupted) as stopped:
        train_gan("default", few, out=str(tmp_path / "b"), callback=sigterm_after_epoch_1, **settings)
    assert stopped.value.exit_code == 143
    assert (load_checkpoint(tmp_path / "b")["epoch"], load_checkpoint(tmp_path / "b")["step_in_epoch"]) == (1, 1)

    resumed = train_gan(resume=tmp_path / "b", dataset=few, progress=False)
    keep = ("loss_d", "loss_g", "d_x", "d_g_z")
    assert [[m[k] for k in keep] for m in resumed.metrics] == [[m[k] for k in keep] for m in straight.metrics]
    for key, value in straight.gan.state_dict().items():
        assert torch.equal(resumed.gan.state_dict()[key], value), key
    same_grid = [np.array(Image.open(d / "samples" / "epoch_002.png")) for d in (tmp_path / "a", tmp_path / "b")]
    assert np.array_equal(*same_grid)
    assert Image.open(tmp_path / "b" / "progress.gif").n_frames == 2  # the resumed run continued the GIF


def test_mid_epoch_checkpoints_do_not_shorten_the_epoch_time(tiny_data, tmp_path):
    few = replace(tiny_data, train=Split(tiny_data.train.images[:300], tiny_data.train.labels[:300]))  # 3 steps
    run = train_gan("default", few, epochs=1, batch_size=100, eval_every=0, checkpoint_every=1,
                    out=str(tmp_path / "r"), progress=False)
    m = run.metrics[0]
    assert m["time_s"] == pytest.approx(m["elapsed_s"], abs=0.01)
    assert m["images_per_s"] == pytest.approx(300 / m["time_s"], rel=0.01)


def test_tensorboard_logs_scalars_and_sample_grids(tiny_data, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = train_gan("default", tiny_data, epochs=1, batch_size=100, eval_every=0, tensorboard=True,
                    out=str(tmp_path / "tb"), progress=False)
    events = EventAccumulator(str(run.dir / "tensorboard"), size_guidance={"images": 0}).Reload()
    assert {"loss_d", "loss_g", "d_x", "d_g_z"} <= set(events.Tags()["scalars"])
    assert events.Tags()["images"] == ["samples"]


# ----------------------------------------------------------------------------------------------
# The best generator, kept beside the last checkpoint

BEST_SETTINGS = dict(epochs=4, batch_size=100, eval_every=1, eval_samples=200, deterministic=True, progress=False)


def _few(tiny_data, n=400):
    return replace(tiny_data, train=Split(tiny_data.train.images[:n], tiny_data.train.labels[:n]))


def _generator_of(state):
    """The weights that draw a last checkpoint's samples: its EMA when it has one, else G."""
    if "ema" in state:
        return {k.removeprefix("module."): v for k, v in state["ema"].items() if k.startswith("module.")}
    return {k.removeprefix("netG."): v for k, v in state["model"].items() if k.startswith("netG.")}


def test_the_best_generator_is_the_one_of_the_epoch_with_the_lowest_fcd(tiny_data, tmp_path):
    import mnistlab

    out, drawn_by = tmp_path / "r", {}

    def remember_the_generator(metrics):  # the last checkpoint, just written, holds this epoch's weights
        drawn_by[metrics["epoch"]] = _generator_of(load_checkpoint(out))

    train_gan("default", _few(tiny_data), ema=0.5, out=str(out), callback=remember_the_generator, **BEST_SETTINGS)
    fcds = [json.loads(line)["fcd"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    best = load_checkpoint(out, which="best")
    assert (best["role"], best["fcd"], best["epoch"]) == ("best", min(fcds), fcds.index(min(fcds)) + 1)
    assert best["metrics"][0]["fcd"] == min(fcds) and set(best["generator"]) == set(drawn_by[1])
    for name, tensor in best["generator"].items():
        assert torch.equal(tensor, drawn_by[best["epoch"]][name]), name

    by_default, last = mnistlab.load(out), mnistlab.load(out, checkpoint="last")
    assert (by_default.path.name, by_default.checkpoint, last.checkpoint) == ("best.safetensors", "best", "last")
    assert by_default.summary["epoch"] == best["epoch"] and last.summary["epoch"] == 4
    assert best["epoch"] < 4, fcds  # FCD rose at the end: the best generator is not the last one
    assert not np.array_equal(by_default.generate(16, seed=1), last.generate(16, seed=1))


def test_resume_keeps_the_best_and_never_replaces_it_with_a_worse_one(tiny_data, tmp_path):
    few = _few(tiny_data)
    straight = train_gan("default", few, out=str(tmp_path / "a"), **BEST_SETTINGS)
    fcds = [m["fcd"] for m in straight.metrics]
    best_epoch = fcds.index(min(fcds)) + 1
    assert best_epoch < 4, fcds  # so that the epochs after it, resumed, would overwrite a best they forgot

    def sigterm_after_the_best(metrics):
        if metrics["epoch"] == best_epoch:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(Interrupted):
        train_gan("default", few, out=str(tmp_path / "b"), callback=sigterm_after_the_best, **BEST_SETTINGS)
    assert load_checkpoint(tmp_path / "b")["best_fcd"] == min(fcds)
    resumed = train_gan(resume=tmp_path / "b", dataset=few, progress=False)
    assert [m["fcd"] for m in resumed.metrics] == fcds
    kept = [load_checkpoint(tmp_path / run, which="best") for run in ("a", "b")]
    assert kept[0]["epoch"] == kept[1]["epoch"] == best_epoch and kept[0]["fcd"] == kept[1]["fcd"] == min(fcds)
    for name, tensor in kept[0]["generator"].items():
        assert torch.equal(kept[1]["generator"][name], tensor), name
    with pytest.raises(MnistlabError, match=r"best.safetensors is its run's best checkpoint, but the last one"):
        train_gan(resume=tmp_path / "a" / "best.safetensors", dataset=few, progress=False)  # it cannot resume


def test_without_quality_evaluations_no_best_is_kept_and_the_default_is_the_last(tiny_data, tmp_path):
    run = train_gan("default", _few(tiny_data, 200), epochs=1, batch_size=100, eval_every=0,
                    out=str(tmp_path / "r"), progress=False)
    assert not (run.dir / "best.safetensors").exists() and "best_fcd" not in load_checkpoint(run.dir)
    with pytest.raises(MnistlabError, match=r"has no best.safetensors.*eval_every > 0"):
        load_checkpoint(run.dir, which="best")
    assert load_checkpoint(run.dir, which=None)["role"] == "last"


def test_the_gan_bench_times_the_loop_and_the_step_alone_side_by_side(tiny_data, capsys):
    from mnistlab.bench import bench_gan

    bench_gan(tiny_data, repeats=1, presets=["seed"], steps=2, settings=["defaults", "step-alone"])
    rows = {line[:54].strip(): line.split() for line in capsys.readouterr().out.splitlines()[3:]}
    assert list(rows) == ["fp32, NCHW", "preset defaults", "preset defaults, step alone (no loop)"]  # baseline first
    assert rows["fp32, NCHW"][-1] == "1.00x"
    assert all(float(cells[-3]) > 0 for cells in rows.values())  # each row trained and timed its images
