"""The one training loop: the time budget is checked every step, and --dry-run runs the whole pipeline briefly."""

import json

from mnistlab.train.classifier import train_classifier
from mnistlab.train.gan import train_gan


def test_a_time_budget_stops_mid_epoch_not_at_the_epoch_end(tiny_data, tmp_path):
    # 1,000 digits at batch 10 is 100 steps an epoch, far more than 0.3 s of steps on any machine
    run = train_gan("default", tiny_data, time_budget=0.3, batch_size=10, eval_every=0, out=str(tmp_path / "g"),
                    progress=False)
    (only,) = run.metrics
    assert 0.3 <= only["elapsed_s"] < 0.3 + 1.0  # at most one step past the budget, not a whole epoch
    assert only["images_per_s"] * only["time_s"] < 1000 * 0.9  # the epoch was cut short
    assert json.loads((run.dir / "metrics.jsonl").read_text())["epoch"] == 1


def test_dry_run_trains_a_few_steps_of_one_epoch_and_writes_the_whole_run(tiny_data, tmp_path):
    cnn = train_classifier("seed", tiny_data, epochs=5, dry_run=True, out=str(tmp_path / "c"), progress=False)
    assert [m["epoch"] for m in cnn.metrics] == [1]
    assert cnn.metrics[0]["images_per_s"] * cnn.metrics[0]["time_s"] < 4 * 100  # 3 steps of 100 images
    assert {"checkpoint.safetensors", "report.json", "curves.png"} <= {p.name for p in cnn.dir.iterdir()}
    gan = train_gan("default", tiny_data, dry_run=True, eval_samples=100, out=str(tmp_path / "g"), progress=False)
    assert len(gan.metrics) == 1 and gan.metrics[0]["fcd"] > 0  # the quality evaluation ran too
    assert (gan.dir / "progress.gif").exists()
