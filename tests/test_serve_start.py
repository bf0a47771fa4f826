"""Starting the web app: which runs `mnistlab serve` picks, how it tunes its process, and what it says when
something it needs is missing; and the real server (uvicorn, on loopback) refusing an upload too large in a
way that a client can read. (The API itself, in process: test_serve.py.)"""

import contextlib
import gc
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Iterator

import httpx
import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from mnistlab.errors import MnistlabError

with warnings.catch_warnings():  # Starlette suggests httpx2 for its TestClient; httpx is what we have
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from mnistlab.serve.app import create_app, newest_runs, serve  # noqa: E402
from mnistlab.serve.middleware import MAX_UPLOAD  # noqa: E402

pytestmark = pytest.mark.slow  # real processes, servers or training for seconds: not in make test-fast


@contextlib.contextmanager
def serving(app) -> Iterator[str]:
    """A real uvicorn server for `app` on a free loopback port, in a background thread: its base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # bound here and handed over: no race for the port
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


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


# ----------------------------------------------------------------------------------------------
# Too large: a 413 that the client reads, not a connection reset mid-upload


@pytest.fixture(scope="module")
def live_url(cnn_run):
    with serving(create_app(cnn_run.dir, None)) as url:
        yield url


OVER = MAX_UPLOAD + 2 * 2**20  # a 12 MB body: over the upload limit, as a photo straight off a camera may be


def raw_post(url: str, path: str, headers: dict[str, str], body: Iterable[bytes]) -> bytes:
    """POST over a plain socket: send the headers and every piece of `body`, then read the answer to its end
    (the server closes the connection). A reset on the way raises ConnectionResetError."""
    host, port = url.removeprefix("http://").split(":")
    head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": f"{host}:{port}", **headers}.items())
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\n{head}\r\n".encode())
        for piece in body:
            sock.sendall(piece)
        answer = b""
        while data := sock.recv(65536):
            answer += data
    return answer


# A multipart body's start: what follows is the file's bytes
FILE_PART = (b'--x\r\nContent-Disposition: form-data; name="file"; filename="photo.jpg"\r\n'
             b"Content-Type: image/jpeg\r\n\r\n")


def pieces(total: int, size: int = 2**16, chunked: bool = False, start: bytes = FILE_PART) -> Iterator[bytes]:
    """`total` bytes, `start` and then zeros, in pieces: as HTTP/1.1 chunks when `chunked`."""
    body = start + b"0" * (total - len(start))
    for offset in range(0, total, size):
        data = body[offset : offset + size]
        yield b"%x\r\n%s\r\n" % (len(data), data) if chunked else data
    if chunked:
        yield b"0\r\n\r\n"


def refusal(answer: bytes) -> tuple[str, dict[str, str], dict]:
    """An HTTP answer's status line, headers (lower-cased names) and JSON body."""
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    return status, headers, json.loads(body)


MULTIPART = {"Content-Type": "multipart/form-data; boundary=x"}
TOO_LARGE = {  # name: (path, headers, body, what the 413 says)
    "an upload that declares its length": (
        "/api/read", {**MULTIPART, "Content-Length": str(OVER)}, pieces(OVER), "upload is over 10 MB"),
    "an upload sent in chunks, no length": (
        "/api/predict", {**MULTIPART, "Transfer-Encoding": "chunked"}, pieces(OVER, chunked=True),
        "upload is over 10 MB"),
    "JSON of 2 MB": ("/api/predict/pixels", {"Content-Type": "application/json", "Content-Length": str(2**21)},
                     pieces(2**21, start=b'{"pixels": '), "body is over 1 MB"),
    "an upload waiting for 100 Continue": (  # as curl sends a large file: nothing is sent before the 413
        "/api/read", {**MULTIPART, "Content-Length": str(OVER), "Expect": "100-continue"}, [], "over 10 MB"),
}


@pytest.mark.parametrize("case", TOO_LARGE)
def test_a_body_over_the_limit_gets_a_413_that_the_client_reads(live_url, case):
    path, headers, body, fragment = TOO_LARGE[case]
    status, answer_headers, answer = refusal(raw_post(live_url, path, headers, body))
    assert status == "HTTP/1.1 413 Request Entity Too Large"
    assert answer_headers["connection"] == "close" and answer_headers["content-type"] == "application/json"
    assert fragment in answer["detail"]
    assert httpx.get(f"{live_url}/healthz").status_code == 200  # and the server goes on


def test_a_browser_like_client_reads_the_413_after_sending_a_whole_photo(live_url):
    photo = {"file": ("photo.jpg", b"0" * OVER, "image/jpeg")}
    answer = httpx.post(f"{live_url}/api/read", files=photo, timeout=30)
    assert answer.status_code == 413 and "send a smaller image" in answer.json()["detail"]
