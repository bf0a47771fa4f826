"""The committed results tables are exactly what scripts/results.py makes from the committed sweep results."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _results_script():
    spec = importlib.util.spec_from_file_location("results_script", ROOT / "scripts" / "results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_generated_table_matches_its_data():
    results = _results_script()
    pages = [page for page in results.PAGES if "<!-- results:" in page.read_text()]
    assert pages, "no page holds a generated table"
    for page in pages:
        text = page.read_text()
        assert results.render(text) == text, f"{page.name}: run python scripts/results.py render"


def test_a_changed_figure_is_caught(tmp_path):
    results = _results_script()
    page = next(p for p in results.PAGES if "<!-- results:" in p.read_text())
    text = page.read_text()
    start = text.index("<!-- results:")
    row = text.index("\n| ", text.index("|---|", start)) + 1
    tampered = text[:row] + text[row:].replace("0.", "0.0", 1)
    assert results.render(tampered) != tampered


def test_the_headline_and_the_summaries_follow_their_data(tmp_path, monkeypatch):
    import shutil

    results = _results_script()
    before = results.headline()
    ood_before = results.table("ood-bench-test.txt", {"by": "cnn-presets-mnist", "answers": "true"})
    shutil.copytree(results.RESULTS, tmp_path / "results")
    monkeypatch.setattr(results, "RESULTS", tmp_path / "results")
    speedrun = tmp_path / "results" / "speedrun-bench.txt"
    speedrun.write_text(speedrun.read_text().replace("| ours | 10 | 1.42 ± 0.14 |", "| ours | 10 | 9.99 ± 0.14 |"))
    ood = tmp_path / "results" / "ood-bench-test.txt"
    ood.write_text(ood.read_text().replace("digits kept 0.9955;", "digits kept 0.1955;", 1))
    after = results.headline()
    changed = [(a, b) for a, b in zip(before, after) if a != b]
    assert len(changed) == 1 and "**9.99 ± 0.14 s**" in changed[0][1]  # the speedrun's row, and only it
    ood_after = results.table("ood-bench-test.txt", {"by": "cnn-presets-mnist", "answers": "true"})
    assert ood_after[2] != ood_before[2] and ood_after[3] == ood_before[3]  # `best`'s mean moved, `photo`'s not
