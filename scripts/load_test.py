"""Load test of the web app: the real server (`mnistlab serve`, in a subprocess) under concurrent predictions.

    .venv/bin/python scripts/load_test.py --cnn runs/quickstart-.../cnn --requests 3000 --concurrency 50

Without --cnn it serves the newest CNN run under --runs-dir (as `mnistlab serve` would), and stops with an
error if there is none: train one first (`mnistlab train cnn`, under a minute on a CPU). Each request is a
real test digit from mnist-sample, sent as the page sent a drawing (JSON pixels, --body json) or as an uploaded
PNG (--body png); or a generated 1-megapixel JPEG photo of a 2–5 digit number sent to /api/read, as the page
sends a photo (--body photo; `mnistlab.photo.synth`, 50 of them). Each client is an asyncio task with its own
keep-alive connection on loopback; the run stops after --requests or --max-seconds, whichever comes first.
It prints throughput, latency percentiles and errors, and exits 1 if any request failed. Client and server
share the machine's cores, so the figures are a lower bound for the server.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

import httpx
import numpy as np
from PIL import Image

from mnistlab.data.datasets import load_dataset
from mnistlab.errors import MnistlabError
from mnistlab.photo.synth import make_photos
from mnistlab.serve.app import newest_runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cnn", help="CNN run or checkpoint to serve (default: newest under --runs-dir)")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--max-seconds", type=float, default=120, help="stop sending after this long")
    parser.add_argument("--body", choices=["json", "png", "photo"], default="json",
                        help="JSON pixels, a PNG upload of a digit, or a photo of a number to /api/read")
    args = parser.parse_args()
    cnn = args.cnn or newest_runs(args.runs_dir).get("cnn")
    if cnn is None:
        raise MnistlabError(f"no CNN run under {args.runs_dir}/: train one (`mnistlab train cnn`) "
                            "or pass --cnn RUN_OR_CHECKPOINT")

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    requests = request_bodies(args.body, f"127.0.0.1:{port}")
    log = tempfile.TemporaryFile("w+")  # a file, not a pipe: nobody reads the access log while it runs
    command = [sys.executable, "-m", "mnistlab", "serve", "--cnn", str(cnn), "--port", str(port)]
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until_up(url, server)
        log.seek(0)
        print(log.readline().strip())  # which checkpoint it loaded
        load_before = os.getloadavg()[0]
        latencies, errors, wall = asyncio.run(hammer("127.0.0.1", port, requests, args))
    finally:
        server.terminate()
        server.wait(timeout=10)

    report(latencies, errors, wall, args, load_before)
    return 1 if errors or not latencies else 0


def request_bodies(kind: str, host: str) -> list[bytes]:
    """A complete HTTP/1.1 request for each of mnist-sample's 1,000 real test digits (or 50 photos), built once."""
    if kind == "photo":
        images = [photo.image for photo in make_photos(50, seed=0, lengths=(2, 3, 4, 5))]
    else:
        images = list(load_dataset("mnist-sample", splits=("test",)).test.images.numpy())
    path = "/api/read" if kind == "photo" else "/api/predict"
    requests = []
    for image in images:
        if kind == "json":
            body, media = json.dumps({"pixels": image.tolist()}).encode(), "application/json"
        else:
            buf = io.BytesIO()
            Image.fromarray(image).save(buf, format="JPEG" if kind == "photo" else "PNG", quality=92)
            boundary = "mnistlab-load-test"
            part = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="image"\r\n'
                    "Content-Type: application/octet-stream\r\n\r\n")
            body = part.encode() + buf.getvalue() + f"\r\n--{boundary}--\r\n".encode()
            media = f"multipart/form-data; boundary={boundary}"
        head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {media}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n")
        requests.append(head.encode() + body)
    return requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, server: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise MnistlabError(f"the server exited with status {server.returncode} before answering")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise MnistlabError(f"the server did not answer /healthz within {timeout_s:.0f} s")


async def hammer(host: str, port: int, requests: list[bytes], args: argparse.Namespace
                 ) -> tuple[list[float], dict[str, int], float]:
    """`args.concurrency` clients sending `args.requests` predictions in all.

    Returns the latencies (s) of the good answers, the errors by kind, and the wall time (s).

    Each client is a minimal HTTP/1.1 keep-alive connection on asyncio streams. (httpx spent ~6 ms of CPU per
    request here, twice the server's cost, on the same two cores: it measured the client, not the server.)
    """
    latencies: list[float] = []
    errors: dict[str, int] = {}
    next_request = iter(range(args.requests))
    start = time.perf_counter()
    stop_at = start + args.max_seconds

    async def client_task() -> None:
        connection = None
        for i in next_request:  # the shared iterator hands each request number to exactly one client
            if time.perf_counter() > stop_at:
                break
            sent = time.perf_counter()
            try:
                connection = connection or await asyncio.open_connection(host, port)
                reader, writer = connection
                writer.write(requests[i % len(requests)])
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                body = await reader.readexactly(int(length[1])) if length else b""
                answer = json.loads(body) if head.startswith(b"HTTP/1.1 200 ") else {}
                ok = len(answer.get("probabilities") or answer.get("digits") or []) > 0
                error = None if ok else head.split(b"\r\n", 1)[0].decode()
                if b"connection: close" in head.lower():
                    writer.close()
                    connection = None
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,  # a broken connection
                    ValueError, KeyError) as e:  # an answer that is not the JSON expected
                error, connection = type(e).__name__, None
            if error:
                errors[error] = errors.get(error, 0) + 1
            else:
                latencies.append(time.perf_counter() - sent)
        if connection:
            connection[1].close()

    await asyncio.gather(*(client_task() for _ in range(args.concurrency)))
    return latencies, errors, time.perf_counter() - start


def report(latencies: list[float], errors: dict[str, int], wall: float, args: argparse.Namespace,
           load_before: float) -> None:
    ms = np.array(latencies) * 1000
    done = len(latencies) + sum(errors.values())
    print(f"{done} requests ({args.body} bodies) from {args.concurrency} concurrent clients in {wall:.1f} s "
          f"on {os.cpu_count()} CPUs (load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after; "
          "client and server share them)")
    if len(ms):
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        print(f"throughput {len(ms) / wall:.0f} req/s   latency p50 {p50:.1f} ms  p90 {p90:.1f} ms  "
              f"p99 {p99:.1f} ms  max {ms.max():.1f} ms")
    print("errors: " + (", ".join(f"{k} x{v}" for k, v in errors.items()) if errors else "none"))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except MnistlabError as e:
        print(f"load_test: error: {e}", file=sys.stderr)
        sys.exit(2)
