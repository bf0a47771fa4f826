"""Load test of the web app: the real server (`mnistlab serve`, in a subprocess) under concurrent predictions.

    .venv/bin/python scripts/load_test.py --cnn runs/quickstart-.../cnn --requests 3000 --concurrency 50

Without --cnn it serves the newest CNN run under --runs-dir (as `mnistlab serve` would), and stops with an error
if there is none: train one first (`mnistlab train cnn`, about a minute on a CPU). Each request is a real test
digit from mnist-sample, sent as the page sends it (JSON pixels, --body json) or as an uploaded PNG (--body png).
Clients are asyncio tasks sharing one httpx connection pool on loopback; the run stops after --requests or
--max-seconds, whichever comes first. It prints throughput, latency percentiles and errors, and exits 1 if any
request failed. Client and server share the machine's cores, so the figures are a lower bound for the server.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
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
from mnistlab.serve.app import newest_runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cnn", help="CNN run or checkpoint to serve (default: newest under --runs-dir)")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--max-seconds", type=float, default=120, help="stop sending after this long")
    parser.add_argument("--body", choices=["json", "png"], default="json", help="JSON pixels (the page) or PNG upload")
    args = parser.parse_args()
    cnn = args.cnn or newest_runs(args.runs_dir).get("cnn")
    if cnn is None:
        raise MnistlabError(f"no CNN run under {args.runs_dir}/: train one with `mnistlab train cnn` or pass --cnn")

    bodies = request_bodies(args.body)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tempfile.TemporaryFile("w+")  # a file, not a pipe: nobody reads the access log while it runs
    server = subprocess.Popen([sys.executable, "-m", "mnistlab", "serve", "--cnn", str(cnn), "--port", str(port)],
                              stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until_up(url, server)
        log.seek(0)
        print(log.readline().strip())  # which checkpoint it loaded
        load_before = os.getloadavg()[0]
        latencies, errors, wall = asyncio.run(hammer(url, bodies, args))
    finally:
        server.terminate()
        server.wait(timeout=10)

    report(latencies, errors, wall, args, load_before)
    return 1 if errors or not latencies else 0


def request_bodies(kind: str) -> list[dict]:
    """httpx keyword arguments for each of mnist-sample's 1,000 real test digits."""
    images = load_dataset("mnist-sample", splits=("test",)).test.images.numpy()
    if kind == "json":
        return [{"json": {"pixels": image.tolist()}} for image in images]
    bodies = []
    for image in images:
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="PNG")
        bodies.append({"files": {"file": ("digit.png", buf.getvalue(), "image/png")}})
    return bodies


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


async def hammer(url: str, bodies: list[dict], args: argparse.Namespace) -> tuple[list[float], dict[str, int], float]:
    """`args.concurrency` clients sending `args.requests` predictions in all; (latencies s, errors by kind, wall s)."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    next_request = iter(range(args.requests))
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        start = time.perf_counter()
        stop_at = start + args.max_seconds

        async def client_task() -> None:
            for i in next_request:  # the shared iterator hands each request number to exactly one task
                if time.perf_counter() > stop_at:
                    return
                sent = time.perf_counter()
                try:
                    answer = await client.post("/api/predict", **bodies[i % len(bodies)])
                    ok = answer.status_code == 200 and len(answer.json()["probabilities"]) == 10
                    kind = None if ok else f"HTTP {answer.status_code}"
                except (httpx.HTTPError, ValueError, KeyError) as e:
                    kind = type(e).__name__
                if kind:
                    errors[kind] = errors.get(kind, 0) + 1
                else:
                    latencies.append(time.perf_counter() - sent)

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
