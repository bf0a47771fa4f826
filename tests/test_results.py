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
