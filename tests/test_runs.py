"""Listing and comparing run directories: `mnistlab.runs` and the `mnistlab runs` command."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

import mnistlab
from mnistlab.cli import main
from mnistlab.errors import MnistlabError
from mnistlab.runs import compare_runs, list_runs, read_run

WALL = re.compile(r"^(\d+\.\ds|\d+s|\d+m\d\ds|\d+h\d\dm)$")
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def runs_dir(cnn_run, gan_run, tmp_path):
    """A runs/ folder holding a copy of each fixture run, the GAN one nested a level down and newer."""
    root = tmp_path / "runs"
    shutil.copytree(gan_run.dir, root / "quickstart" / "gan-default")
    shutil.copytree(cnn_run.dir, root / "cnn-seed")  # copied last, yet older by its files' times
    for path, when in ((root / "quickstart" / "gan-default", 1_100_000_000),
                       (root / "cnn-seed", 1_000_000_000)):
        for file in path.iterdir():
            os.utime(file, (when, when))
    return root


def test_list_runs_reads_kind_preset_dataset_headline_and_wall(runs_dir, cnn_run, gan_run):
    runs = list_runs(runs_dir)
    assert [r.kind for r in runs] == ["gan", "cnn"]  # newest first
    gan, cnn = runs
    assert cnn.name == "cnn-seed" and gan.name == "quickstart/gan-default"
    assert cnn.path == runs_dir / "cnn-seed"
    assert (cnn.preset, cnn.dataset, cnn.epochs) == ("seed", "mnist-sample", 3)
    assert (gan.preset, gan.dataset, gan.epochs) == ("default", "mnist-sample", 2)
    assert cnn.headline == f"test acc {cnn_run.metrics[-1]['test_acc']:.4f}"
    fcd = gan_run.metrics[-1]["fcd"]  # measured at the last epoch only, so the best is the last
    assert gan.headline == f"FCD {fcd:.2f}, best {fcd:.2f} at epoch 2"
    assert (gan.best_fcd, gan.best_epoch, cnn.best_fcd) == (fcd, 2, None)
    assert cnn.metrics == cnn_run.metrics and gan.metrics == gan_run.metrics
    for run in runs:
        assert WALL.match(run.wall), run.wall
    assert cnn.wall_s == pytest.approx(sum(m["time_s"] for m in cnn_run.metrics))
    assert mnistlab.list_runs(runs_dir)[0].path == gan.path  # also exported at the top level


def test_a_run_directory_itself_lists_as_one_run(runs_dir):
    (run,) = list_runs(runs_dir / "cnn-seed")
    assert run.kind == "cnn" and run.name == "cnn-seed"


def test_missing_or_empty_directory_lists_nothing(tmp_path):
    assert list_runs(tmp_path / "nowhere") == []
    (tmp_path / "empty" / "deeper").mkdir(parents=True)
    assert list_runs(tmp_path / "empty") == []


def test_gan_headline_without_quality_metrics_is_d_x(runs_dir):
    run_dir = runs_dir / "quickstart" / "gan-default"
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    stripped = [{k: v for k, v in m.items() if k in ("epoch", "loss_d", "loss_g", "d_x", "d_g_z", "time_s")}
                for m in lines]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in stripped))
    assert read_run(run_dir).headline == f"D(x) {stripped[-1]['d_x']:.2f}"


def test_broken_run_directories_are_listed_as_unreadable(runs_dir):
    bad_config = runs_dir / "bad-config"
    bad_config.mkdir()
    (bad_config / "config.json").write_text("{not json")
    (bad_config / "metrics.jsonl").write_text("")
    truncated = runs_dir / "truncated"
    shutil.copytree(runs_dir / "cnn-seed", truncated)
    data = (truncated / "checkpoint.safetensors").read_bytes()
    (truncated / "checkpoint.safetensors").write_bytes(data[:50])
    bad_metrics = runs_dir / "bad-metrics"
    shutil.copytree(runs_dir / "cnn-seed", bad_metrics)
    with open(bad_metrics / "metrics.jsonl", "a") as f:
        f.write("garbage\n")

    runs = {r.name: r for r in list_runs(runs_dir)}
    assert set(runs) == {"cnn-seed", "quickstart/gan-default", "bad-config", "truncated", "bad-metrics"}
    assert runs["cnn-seed"].headline.startswith("test acc ")
    for name, fragment in (("bad-config", "config.json"), ("truncated", "checkpoint.safetensors"),
                           ("bad-metrics", "metrics.jsonl line 4")):
        headline = runs[name].headline
        assert headline.startswith("unreadable: ") and fragment in headline and "\n" not in headline, headline
    with pytest.raises(MnistlabError, match="cannot read run"):
        read_run(truncated)


def test_compare_runs_writes_a_png_and_a_table_with_a_column_per_run(runs_dir, cnn_run, gan_run, tmp_path):
    second_cnn = tmp_path / "other" / "cnn-seed"  # same folder name as the first: names get a parent
    shutil.copytree(runs_dir / "cnn-seed", second_cnn)
    paths = [runs_dir / "cnn-seed", second_cnn, runs_dir / "quickstart" / "gan-default"]
    table, plot = compare_runs(paths, tmp_path / "plots" / "compare.png")
    assert plot == tmp_path / "plots" / "compare.png" and plot.read_bytes().startswith(PNG)
    assert table[0] == ["metric", "runs/cnn-seed", "other/cnn-seed", "quickstart/gan-default"]
    assert all(len(row) == 4 for row in table)
    rows = {row[0]: row[1:] for row in table[1:]}
    assert rows["kind"] == ["cnn", "cnn", "gan"] and rows["epochs"] == ["3", "3", "2"]
    assert rows["test_acc"] == [f"{cnn_run.metrics[-1]['test_acc']:.4f}"] * 2 + ["-"]
    assert rows["fcd"][0] == "-" and rows["fcd"][2] != "-"
    assert rows["best FCD"] == ["-", "-", f"{gan_run.metrics[-1]['fcd']:.4f} (epoch 2)"]  # beside the last FCD
    assert {"train_loss", "loss_d", "d_x", "class_entropy"} <= set(rows)

    table, _ = compare_runs([runs_dir / "cnn-seed" / "checkpoint.safetensors"], tmp_path / "one.png")
    assert table[0] == ["metric", "cnn-seed"] and (tmp_path / "one.png").read_bytes().startswith(PNG)


def test_compare_refuses_what_is_not_a_run(runs_dir, tmp_path):
    for path in (tmp_path / "nowhere", tmp_path):
        with pytest.raises(MnistlabError) as e:
            compare_runs([runs_dir / "cnn-seed", path], tmp_path / "x.png")
        assert "\n" not in str(e.value) and str(path) in str(e.value)
    with pytest.raises(MnistlabError):
        compare_runs([], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_cli_runs_and_runs_compare(runs_dir, tmp_path, capsys):
    assert main(["runs", "list", str(runs_dir)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["kind", "preset", "dataset", "epochs", "headline", "wall", "path"]
    assert len(out) == 3 and out[1].startswith("gan") and out[2].startswith("cnn")
    assert str(runs_dir / "cnn-seed") in out[2]

    plot = tmp_path / "cmp.png"
    assert main(["runs", "compare", str(runs_dir / "cnn-seed"), str(runs_dir / "quickstart" / "gan-default"),
                 "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["metric", "cnn-seed", "gan-default"]
    assert f"plot: {plot}" in out and plot.read_bytes().startswith(PNG)

    assert main(["runs", "list", str(runs_dir), "--json"]) == 0  # for scripts: a JSON object per run, a line each
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["kind"], r["name"], r["epochs"]) for r in listed] == [("gan", "quickstart/gan-default", 2),
                                                                     ("cnn", "cnn-seed", 3)]
    assert listed[1]["last"] == list_runs(runs_dir)[1].metrics[-1] and listed[1]["headline"].startswith("test acc")
    assert listed[0]["best_fcd"] is not None and listed[1]["error"] is None

    assert main(["runs", "list", str(tmp_path / "nowhere")]) == 0  # an empty table, not an error
    header = ["kind", "preset", "dataset", "epochs", "headline", "wall", "path"]
    assert capsys.readouterr().out.split() == header
    assert main(["runs", "compare", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mnistlab: error: ")


# ----------------------------------------------------------------------------------------------
# The torch-free run reader underneath (mnistlab.runs, mnistlab.checkpoint)


def _rewrite_config(run_dir, **changes):
    config = json.loads((run_dir / "config.json").read_text())
    config.update(changes)
    (run_dir / "config.json").write_text(json.dumps({k: v for k, v in config.items() if v is not None}))


def test_the_kind_comes_from_config_json_or_for_older_runs_from_the_checkpoint(runs_dir):
    run_dir = runs_dir / "cnn-seed"
    _rewrite_config(run_dir, kind=None)  # a run written before config.json had a kind
    info = read_run(run_dir)
    assert (info.kind, info.preset, info.checkpoint.kind) == ("cnn", "seed", "cnn")
    (run_dir / "checkpoint.safetensors").unlink()  # killed before its first epoch: nothing tells the kind
    with pytest.raises(MnistlabError, match="config.json has no kind and there is no checkpoint.safetensors"):
        read_run(run_dir)
    _rewrite_config(run_dir, kind="cnn")
    info = read_run(run_dir)
    requested = json.loads((run_dir / "config.json").read_text())["run"]["dataset"]  # all that is known now
    assert (info.kind, info.dataset, info.checkpoint) == ("cnn", requested, None)


def test_a_config_json_that_contradicts_the_checkpoint_is_refused(runs_dir):
    run_dir = runs_dir / "cnn-seed"
    _rewrite_config(run_dir, kind="gan")
    with pytest.raises(MnistlabError, match="config.json says gan but checkpoint.safetensors is a cnn checkpoint"):
        read_run(run_dir)
    assert read_run(run_dir, strict=False).headline.startswith("unreadable: ")


def test_a_metric_of_the_wrong_type_is_named(runs_dir):
    run_dir = runs_dir / "cnn-seed"
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"epoch": 4, "time_s": "slow"}) + "\n")
    with pytest.raises(MnistlabError, match=r'metrics.jsonl line 4.time_s should be a number, not the string "slow"'):
        read_run(run_dir)


def test_listing_runs_and_reading_headers_never_imports_torch(runs_dir):
    script = ("import sys; from mnistlab.runs import list_runs; from mnistlab.checkpoint import read_checkpoint_header;"
              f"runs = list_runs({str(runs_dir)!r});"
              f"kind = read_checkpoint_header({str(runs_dir / 'cnn-seed')!r}).kind;"
              "print(len(runs), kind, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["2", "cnn", "False"], done.stderr
