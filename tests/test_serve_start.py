"""Starting the web app: which runs `mnistlab serve` picks, how it tunes its process, and what it says when
something it needs is missing. (The API itself: test_serve.py.)"""

import gc
import json
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from mnistlab.errors import MnistlabError

with warnings.catch_warnings():  # Starlette suggests httpx2 for its TestClient; httpx is what we have
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from mnistlab.serve.app import newest_runs, serve  # noqa: E402


def test_serve_picks_the_newest_run_of_each_kind(cnn_run, gan_run, tmp_path, monkeypatch, capsys):
    import uvicorn

    runs = tmp_path / "runs"
    for i, (name, source) in enumerate([("old/cnn", cnn_run), ("quickstart-1/cnn", cnn_run),
                                        ("quickstart-1/gan", gan_run)]):
        (runs / name).mkdir(parents=True)
        shutil.copy(source.dir / "checkpoint.safetensors", runs / name)
        os.utime(runs / name / "checkpoint.safetensors", (1e9 + i, 1e9 + i))
    (runs / "junk").mkdir()
    (runs / "junk" / "checkpoint.safetensors").write_bytes(b"not a checkpoint")  # newest, but skipped
    (runs / "future").mkdir()  # newest too, but in a format this mnistlab cannot load: skipped
    header = json.dumps({"format_version": 99, "kind": "cnn", "state": {"__dict__": []}})
    save_file({"weights": np.zeros(4, np.float32)}, runs / "future" / "checkpoint.safetensors", {"mnistlab": header})
    assert newest_runs(runs) == {"cnn": runs / "quickstart-1/cnn", "gan": runs / "quickstart-1/gan"}

    started = {}
    # serve() tunes its process; spare this one
    monkeypatch.setattr(torch, "set_num_threads", lambda n: started.update(threads=n))
    monkeypatch.setattr(gc, "freeze", lambda: started.update(frozen=True))
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: started.update(app=app, **options))
    serve(runs_dir=runs, port=8765)
    assert (started["host"], started["port"]) == ("127.0.0.1", 8765)
    assert started["threads"] == 1 and started["frozen"]
    out = capsys.readouterr().out
    assert str(runs / "quickstart-1/cnn") in out and str(runs / "quickstart-1/gan") in out
    assert "http://127.0.0.1:8765/" in out
    with TestClient(started["app"]) as started_client:
        loaded = started_client.get("/api/models").json()
    assert loaded["cnn"]["path"] == str(runs / "quickstart-1/cnn/checkpoint.safetensors")


def test_serve_without_any_run_says_what_it_needs(tmp_path):
    with pytest.raises(MnistlabError, match=r"no trained models under .*mnistlab train cnn.*--cnn/--gan"):
        serve(runs_dir=tmp_path / "runs")


def test_serve_without_the_serve_extra_names_what_to_install(tmp_path):
    hidden = tmp_path / "hidden" / "fastapi"  # earlier on the path than the installed FastAPI, and broken
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    result = subprocess.run([sys.executable, "-m", "mnistlab", "serve", "--runs-dir", str(tmp_path / "runs")],
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(tmp_path / "hidden")})
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == ("mnistlab: error: the web app needs fastapi, which is not installed: "
                             "pip install 'mnistlab[serve]'\n")


def test_the_cli_does_not_import_the_web_or_export_stacks():
    code = ("import sys\nfrom mnistlab.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n"
            "    pass\nprint([m for m in ('fastapi', 'uvicorn', 'onnx', 'onnxruntime') if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stderr
