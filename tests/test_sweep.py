"""Sweeps: a grid on SQLite with two workers, a killed worker, PostgreSQL shared by two machines' commands,
pruning, and bad sweep files refused before any trial starts."""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from mnistlab.cli import main
from mnistlab.errors import MnistlabError
from mnistlab.sweep.report import load_sweep
from mnistlab.sweep.run import run_sweep
from mnistlab.sweep.spec import trial_point

pytestmark = pytest.mark.slow  # real processes, servers or training for seconds: not in make test-fast

TINY = """
kind = "cnn"
preset = "seed"
dataset = "idx:{data}"
seeds = [0, 1]
metric = "test_acc"
{extra}
[set]
epochs = {epochs}
batch_size = 100
{settings}
[grid]
lr = {lrs}
"""


@pytest.fixture(scope="module")
def digits(sample_data, tmp_path_factory) -> Path:
    """1,000 real training and 500 test digits as IDX files: trials of a second or less."""
    from mnistlab.data.idx import write_idx

    directory = tmp_path_factory.mktemp("digits")
    for part, split, n in (("train", sample_data.train, 1000), ("t10k", sample_data.test, 500)):
        write_idx(directory / f"{part}-images-idx3-ubyte", split.images[:n].numpy())
        write_idx(directory / f"{part}-labels-idx1-ubyte", split.labels[:n].numpy().astype("uint8"))
    return directory


def sweep_file(directory: Path, data: Path, name: str = "tiny", epochs: int = 1, lrs: str = "[0.001, 0.003]",
               extra: str = "", settings: str = "") -> Path:
    path = directory / f"{name}.toml"
    path.write_text(TINY.format(data=data, epochs=epochs, lrs=lrs, extra=extra, settings=settings))
    return path


def last_metric(run_dir: str, metric: str) -> float:
    lines = Path(run_dir, "metrics.jsonl").read_text().splitlines()
    return json.loads(lines[-1])[metric]


def trials(out: Path, study: str) -> list:
    import optuna

    return optuna.load_study(study_name=study, storage=f"sqlite:///{out / 'sweep.db'}").get_trials()


def test_a_two_worker_grid_finishes_and_sweep_show_is_its_run_directories(tmp_path, digits, capsys):
    summary = run_sweep(sweep_file(tmp_path, digits), workers=2, out=tmp_path / "out", progress=False)
    rows = summary["configurations"]
    assert sorted(r["config"]["lr"] for r in rows) == [0.001, 0.003]
    for row in rows:
        values = [last_metric(d, "test_acc") for d in row["run_dirs"]]  # each trial is a real run directory
        assert row["n"] == 2 and sorted(row["seeds"]) == [0, 1]
        assert row["mean"] == pytest.approx(statistics.fmean(values), abs=1e-12)
        assert row["sd"] == pytest.approx(statistics.stdev(values), abs=1e-12)
        assert (row["min"], row["max"]) == (min(values), max(values))
    assert (tmp_path / "out" / "sweep.png").stat().st_size > 1000
    assert main(["sweep", "show", str(tmp_path / "out"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(summary))
    assert main(["sweep", "show", str(tmp_path / "out")]) == 0
    assert "lr=0.003" in capsys.readouterr().out

    # The grid grows by a value (Optuna refuses a categorical whose choices change): only its trials run.
    first = {d: Path(d, "metrics.jsonl").read_text() for row in rows for d in row["run_dirs"]}
    grown = run_sweep(sweep_file(tmp_path, digits, lrs="[0.001, 0.003, 0.01]"), out=tmp_path / "out", progress=False)
    assert sorted((r["config"]["lr"], r["n"]) for r in grown["configurations"]) == [(0.001, 2), (0.003, 2), (0.01, 2)]
    assert len(trials(tmp_path / "out", "tiny")) == 6
    assert {d: Path(d, "metrics.jsonl").read_text() for d in first} == first  # the finished trials were not rerun


def test_two_workers_searching_never_suggest_the_same_trial(tmp_path, digits):
    path = tmp_path / "search.toml"
    path.write_text(f'kind = "cnn"\ndataset = "idx:{digits}"\ntrials = 4\n[set]\nepochs = 1\nbatch_size = 100\n'
                    '[search]\nlr = { low = 1e-3, high = 1e-2, log = true }\ndropout = { low = 0.0, high = 0.5 }\n')
    run_sweep(path, workers=2, out=tmp_path / "out", progress=False)
    suggested = [tuple(sorted(t.params.items())) for t in trials(tmp_path / "out", "search")]
    assert len(suggested) == 4 and len(set(suggested)) == 4  # workers seeded alike had drawn them in pairs

    path.write_text(path.read_text().replace("{ low = 0.0, high = 0.5 }", "{ choices = [0.0, 0.5] }"))
    with pytest.raises(MnistlabError, match=r"searched dropout over 0.0..0.5, not \[0.0, 0.5\]"):
        run_sweep(path, workers=2, out=tmp_path / "out", progress=False)  # before any worker starts


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # asked and told by hand here, not by optimize
def test_a_search_trial_stopped_by_ctrl_c_is_enqueued_again_once_with_its_parameters(tmp_path):
    import optuna

    from mnistlab.sweep import engine
    from mnistlab.sweep.spec import load_spec

    path = tmp_path / "search.toml"
    path.write_text('kind = "cnn"\ntrials = 3\n[search]\nlr = { low = 1e-3, high = 1e-2, log = true }\n'
                    'filters = { choices = [[4, 8, 12], [8, 16, 24]] }\n')
    spec, storage = load_spec(path), engine.open_storage(f"sqlite:///{tmp_path / 'sweep.db'}")
    study = engine.open_study(spec, storage)
    for run_dir, error in (("stopped", None), ("diverged", "loss became nan")):
        trial = study.ask()
        for name, param in spec.search.items():
            param.suggest(trial, name)
        trial.set_user_attr("run_dir", run_dir)
        if error:
            trial.set_user_attr("error", error)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)  # as the worker's Interrupted leaves it
    assert engine.enqueue_missing(study, spec, storage) == 1
    assert engine.enqueue_missing(study, spec, storage) == 0  # once
    stopped, _, again = study.get_trials()
    assert again.state.name == "WAITING" and again.user_attrs == {"run_dir": "stopped"}
    assert again.system_attrs["fixed_params"] == stopped.params


POP_ALL = """
import sys, optuna
from mnistlab.sweep import engine

study = optuna.load_study(study_name="race", storage=engine.open_storage(sys.argv[1], heartbeat=False))
print("ready", flush=True)
sys.stdin.readline()  # go
while (trial_id := study._pop_waiting_trial_id()) is not None:
    print(trial_id)
"""


def test_two_workers_never_start_the_same_queued_trial_on_sqlite(tmp_path):
    import optuna

    from mnistlab.sweep import engine

    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    study = optuna.create_study(study_name="race", storage=engine.open_storage(url, heartbeat=False))
    for x in range(150):
        study.enqueue_trial({"x": x})
    other = subprocess.Popen([sys.executable, "-c", POP_ALL, url], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    assert other.stdout.readline() == "ready\n"  # its imports done
    other.stdin.write("go\n")
    other.stdin.flush()
    ours = []
    while (trial_id := study._pop_waiting_trial_id()) is not None:  # what a worker's ask does first
        ours.append(trial_id)
    theirs = [int(line) for line in other.communicate(timeout=60)[0].split()]
    assert ours and theirs and not set(ours) & set(theirs)  # SQLite ignores Optuna's row lock: 2 in 200 were
    assert len(ours) + len(theirs) == 150


def test_a_worker_killed_mid_trial_is_retried_and_no_trial_is_lost_or_repeated(tmp_path, digits):
    from mnistlab.sweep.run import open_sweep, start_worker

    # Two trials, seeds 0 and 1: the second is killed, so the retry must come back for it and for nothing else.
    spec = sweep_file(tmp_path, digits, name="killed", epochs=4, lrs="[0.003]", settings="checkpoint_every = 5")
    _, out, url, _ = open_sweep(spec, tmp_path / "out")  # as `mnistlab sweep` starts, with one worker
    worker = start_worker(spec, url, out, threads=1)
    try:
        deadline = time.monotonic() + 120
        while not glob.glob(str(out / "killed-trial-0001" / "checkpoint.safetensors")):  # trial 1 is under way
            assert time.monotonic() < deadline and worker.poll() is None, "the worker never reached its second trial"
            time.sleep(0.05)
    finally:
        worker.send_signal(signal.SIGKILL)  # mid-trial, without warning
        worker.wait()
    assert any(t.state.name == "RUNNING" for t in trials(out, "killed"))

    summary = run_sweep(spec, out=out, progress=False)
    assert [r["n"] for r in summary["configurations"]] == [2]
    done = [t for t in trials(out, "killed") if t.state.name == "COMPLETE"]
    points = sorted((trial_point(t)["lr"], trial_point(t)["seed"]) for t in done)
    assert points == [(0.003, 0), (0.003, 1)]  # each once: none lost or twice
    in_dir = [t.state.name for t in trials(out, "killed") if t.user_attrs["run_dir"].endswith("killed-trial-0001")]
    assert sorted(in_dir) == ["COMPLETE", "FAIL"]  # the killed trial, and its retry that resumed in its directory
    assert [json.loads(m)["epoch"] for m in (out / "killed-trial-0001" / "metrics.jsonl").read_text().splitlines()] == \
        list(range(1, 5))


def test_workers_share_the_cores_and_an_omp_num_threads_caps_them(monkeypatch):
    from mnistlab.sweep.engine import worker_threads

    cores = len(os.sched_getaffinity(0))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert [worker_threads(w) for w in (1, cores, 2 * cores)] == [cores, 1, 1]
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # as on a machine shared with other jobs, and in these tests
    assert worker_threads(1) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", str(4 * cores))  # a cap, never more threads than cores
    assert worker_threads(1) == cores


def test_a_hopeless_trial_is_pruned_at_its_first_epoch(tmp_path, digits):
    path = sweep_file(tmp_path, digits, name="pruned", epochs=2, lrs="[0.003, 10.0]", extra='pruner = "median"')
    summary = run_sweep(path, out=tmp_path / "out", progress=False)
    by_lr = {r["config"]["lr"]: r for r in summary["configurations"]}
    assert by_lr[0.003]["n"] == 2 and by_lr[10.0]["pruned"] == 2
    for t in trials(tmp_path / "out", "pruned"):
        if trial_point(t)["lr"] == 10.0:
            assert list(t.intermediate_values) == [1]  # stopped after its first epoch, not its third


def test_a_search_chooses_between_lists_and_its_trials_train_the_chosen_one(tmp_path):
    import optuna

    from mnistlab.sweep.spec import load_spec

    path = tmp_path / "widths.toml"
    path.write_text('kind = "cnn"\ntrials = 4\n[search]\nfilters = { choices = [[4, 8, 12], [8, 16, 24]] }\n')
    spec = load_spec(path)  # every choice was built into a config here
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    chosen = [spec.search["filters"].suggest(study.ask(), "filters") for _ in range(8)]
    assert {tuple(c) for c in chosen} == {(4, 8, 12), (8, 16, 24)}
    assert spec.config({"filters": chosen[0], "seed": 0}).model.filters == tuple(chosen[0])


def test_a_grid_over_recipes_runs_each_table_of_overrides_on_the_base(tmp_path):
    from mnistlab.sweep.spec import load_spec

    path = tmp_path / "recipes.toml"
    path.write_text('kind = "cnn"\npreset = "best"\nseeds = [0, 1]\n[set]\nepochs = 3\n'
                    '[grid]\nset = [{}, { lr = 0.001, dropout = 0.5 }]\n')
    configs = [load_spec(path).config(point) for point in load_spec(path).grid_points()]
    assert [(c.train.lr, c.model.dropout, c.train.epochs, c.run.seed) for c in configs] == \
        [(4e-3, 0.3, 3, 0), (4e-3, 0.3, 3, 1), (1e-3, 0.5, 3, 0), (1e-3, 0.5, 3, 1)]


@pytest.mark.parametrize("text, message", [
    ('kind = "cnn"\nlearning = 3\n[grid]\nlr = [0.1]', "unknown key 'learning'"),
    ('kind = "cnn"\n[grid]\nlearning_rate = [0.1]', "unknown setting 'learning_rate'"),
    ('kind = "cnn"\n[grid]\nlr = [-1.0]', "lr"),
    ('kind = "cnn"\n[grid]\nlr = []', "grid.lr must be a non-empty list"),
    ('kind = "cnn"\n[grid]\nset = [{}, 3]', "grid.set is a list of recipes"),
    ('kind = "cnn"\n[grid]\nset = [{ lr = -1.0 }]', "train.lr"),
    ('kind = "cnn"\n[grid]\n', "[grid] is empty"),
    ('kind = "cnn"\n[search]\nlr = { low = 1e-4, high = 1e-2, log = true }', "needs a budget"),
    ('kind = "gan"\nmetric = "test_acc"\n[grid]\nlr_d = [1e-4]', "metric 'test_acc' is not one a gan run reports"),
    ('kind = "cnn"\n[grid\n', "is not valid TOML"),
])
def test_bad_sweep_files_are_one_line_and_exit_2_before_any_trial(tmp_path, capsys, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()  # nothing started, nothing written


def test_an_unreachable_storage_is_one_line_and_exit_2(tmp_path, digits, capsys):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql+psycopg://mnistlab:secret@127.0.0.1:{port}/sweeps"
    assert main(["sweep", str(sweep_file(tmp_path, digits)), "--storage", url, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot open the sweep storage" in err and "secret" not in err and len(err.splitlines()) == 1


# ----------------------------------------------------------------------------------------------
# PostgreSQL: a real server, as on a machine that several others share


@pytest.fixture
def postgres() -> str:
    """A PostgreSQL server on 127.0.0.1, initdb'd into a temporary directory as the postgres user."""
    bindir = next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin"))), None)
    if bindir is None or shutil.which("su") is None:
        pytest.skip("PostgreSQL is not installed (make test installs Debian's postgresql package)")
    data = Path(tempfile.mkdtemp(prefix="mnistlab-pg-"))
    shutil.chown(data, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def as_postgres(*command: str) -> None:
        subprocess.run(["su", "postgres", "-s", "/bin/sh", "-c", " ".join(command)], check=True,
                       capture_output=True, timeout=60)

    as_postgres(f"{bindir}/initdb", "-D", str(data / "db"), "-A", "trust", "-U", "postgres")
    as_postgres(f"{bindir}/pg_ctl", "-D", str(data / "db"), "-l", str(data / "log"), "-w", "-o",
                f"'-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={data}'", "start")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        as_postgres(f"{bindir}/pg_ctl", "-D", str(data / "db"), "-m", "fast", "stop")
        shutil.rmtree(data, ignore_errors=True)


def test_two_machines_share_one_study_on_postgresql(tmp_path, digits, postgres):
    spec = sweep_file(tmp_path, digits, name="shared", epochs=1, lrs="[0.001, 0.003]")
    # The same command on two "machines": each its own process, its own --out, one database.
    commands = [subprocess.Popen([sys.executable, "-m", "mnistlab", "sweep", str(spec), "--storage", postgres,
                                  "--out", str(tmp_path / f"machine{i}")], stdout=subprocess.DEVNULL)
                for i in range(2)]
    assert [c.wait(timeout=300) for c in commands] == [0, 0]
    summary = load_sweep(storage=postgres, study="shared")
    assert [r["n"] for r in summary["configurations"]] == [2, 2]
    run_dirs = [d for r in summary["configurations"] for d in r["run_dirs"]]
    assert len(set(run_dirs)) == 4 and all(Path(d, "checkpoint.safetensors").exists() for d in run_dirs)
    assert {Path(d).parent.name for d in run_dirs} == {"machine0", "machine1"}  # both took trials


# ----------------------------------------------------------------------------------------------
# Fuzz: whatever a sweep file holds, it is a spec or one MnistlabError line


def _toml_value():
    from hypothesis import strategies as st

    scalars = st.one_of(st.integers(-5, 100), st.floats(-1e3, 1e3, allow_nan=False), st.booleans(),
                        st.sampled_from(["cnn", "gan", "seed", "best", "default", "test_acc", "fcd", "median", "x"]))
    return st.one_of(scalars, st.lists(scalars, max_size=3))


def test_random_sweep_files_give_a_spec_or_one_clear_line(tmp_path):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from mnistlab.errors import MnistlabError
    from mnistlab.sweep.spec import load_spec

    keys = st.sampled_from(["kind", "preset", "dataset", "seeds", "metric", "direction", "pruner", "trials",
                            "name", "bogus"])
    fields = st.sampled_from(["lr", "epochs", "batch_size", "dropout", "preset", "seed", "filters", "nonsense"])
    tables = st.dictionaries(fields, st.one_of(_toml_value(), st.dictionaries(
        st.sampled_from(["low", "high", "log", "choices", "step", "x"]), _toml_value(), max_size=3)), max_size=3)

    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.dictionaries(keys, _toml_value(), max_size=6), st.sampled_from(["grid", "search", "set", None]),
           tables)
    def check(top, table_name, table):
        import json

        lines = [f"{k} = {json.dumps(v)}" for k, v in top.items()]
        if table_name:
            lines.append(f"[{table_name}]")
            lines += [f"{k} = {json.dumps(v) if not isinstance(v, dict) else _inline(v)}" for k, v in table.items()]
        path = tmp_path / "fuzz.toml"
        path.write_text("\n".join(lines))
        try:
            load_spec(path)
        except MnistlabError as e:
            assert "\n" not in str(e)

    check()


def _inline(table: dict) -> str:
    import json

    return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in table.items()) + " }"
