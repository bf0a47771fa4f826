"""Teaching the served reader a person's hand: /api/teach over a real uvicorn server, and the page's "teach it
my handwriting" in a real Chromium. Each fine-tunes the tiny fixture run for real (30 short epochs, replaying
the sample's digits) and the server then reads with the new run."""

import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from test_browser import CHROMIUM, settle, stroke
from test_serve_start import serving

from mnistlab.runs import list_runs


@pytest.fixture
def served(cnn_run, tmp_path):
    """A server for the fixture CNN run whose taught digits and runs go to tmp_path/runs."""
    from mnistlab.serve.app import create_app

    with serving(create_app(cnn_run.dir, runs_dir=tmp_path / "runs")) as url:
        yield url


def wait_until_taught(url: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while (status := httpx.get(f"{url}/api/teach").json())["state"] == "running":
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    return status


@pytest.mark.slow
def test_taught_digits_fine_tune_a_new_run_that_the_server_then_reads_with(served, cnn_run, tiny_data, tmp_path):
    images, labels = tiny_data.test.images.numpy() / 255, tiny_data.test.labels.numpy()
    picks = [(d, i) for d in (1, 7) for i in np.flatnonzero(labels == d)[:3]]
    digits = [{"label": d, "image": images[i].round(3).tolist()} for d, i in picks]
    assert httpx.get(f"{served}/api/teach").json() == {"state": "idle"}
    started = httpx.post(f"{served}/api/teach", json={"digits": digits}, timeout=30)
    assert started.status_code == 202 and started.json()["state"] == "running", started.text
    again = httpx.post(f"{served}/api/teach", json={"digits": digits}, timeout=30)  # one at a time
    assert again.status_code == 409 and "already running" in again.json()["detail"]
    status = wait_until_taught(served)
    assert status["state"] == "done", status.get("error")
    run, folder = Path(status["run"]), Path(status["digits"])
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png")) == [
        "1/000.png", "1/001.png", "1/002.png", "7/003.png", "7/004.png", "7/005.png"]  # the person's digits, kept
    assert httpx.get(f"{served}/api/models").json()["cnn"]["path"] == str(run / "checkpoint.safetensors")
    listed = {r.name: r for r in list_runs(tmp_path / "runs")}
    assert listed[run.name].init_from == str(cnn_run.dir)  # `mnistlab runs` says where it came from
    read = httpx.post(f"{served}/api/predict/pixels", json={"pixels": images[0].tolist()})
    assert read.status_code == 200  # and it reads


@pytest.mark.parametrize("digits, why, blank", [
    ([(1, 3), (7, 2)], "each at least 3 times", False),  # too few of a digit
    ([(1, 6)], "at least 2 different digits", False),  # one digit only
    ([(1, 3), (7, 3)], "has no ink", True),  # nothing drawn
])
def test_digits_that_cannot_be_taught_are_refused_in_one_line(served, tiny_data, digits, why, blank, tmp_path):
    image = (tiny_data.test.images[0].numpy() / 255 * (not blank)).round(3).tolist()
    body = {"digits": [{"label": d, "image": image} for d, n in digits for _ in range(n)]}
    answer = httpx.post(f"{served}/api/teach", json=body)
    assert answer.status_code == 422 and why in answer.json()["detail"]
    assert httpx.get(f"{served}/api/teach").json() == {"state": "idle"} and not (tmp_path / "runs").exists()
    bad = httpx.post(f"{served}/api/teach", json={"digits": [{"label": 10, "image": image}]})
    assert bad.status_code == 422  # FastAPI's own: a label is 0..9


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (`make browser` gets it)")
def test_the_page_teaches_drawn_digits_and_switches_to_the_new_run(served, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 1400})
        problems = []
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto(served)
        page.wait_for_selector("#models dt")
        shapes = {"1": [(0.5, 0.15), (0.49, 0.85)], "0": [(0.5, 0.15), (0.42, 0.5), (0.5, 0.85), (0.58, 0.5),
                                                           (0.5, 0.15)]}
        for n in range(6):
            label = "10"[n % 2]
            stroke(page, *shapes[label], steps=4)  # a drawn digit, not live reading, is what this test needs
            settle(page, [])
            page.select_option("#teach-label", label)
            page.click("#teach-keep")
        assert page.locator("#teach-count").inner_text() == "6 kept: 0×3, 1×3."
        page.click("#teach-start")
        page.wait_for_function("() => document.querySelector('#teach-status').textContent.startsWith('Done:')",
                               timeout=180_000)
        page.wait_for_function("() => document.querySelector('#models').textContent.includes('cnn-taught-')")
        browser.close()
    assert problems == []
    assert len(list((tmp_path / "runs").glob("cnn-taught-*/checkpoint.safetensors"))) == 1
