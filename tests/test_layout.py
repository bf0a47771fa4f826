"""The package is layered one way: no module imports (at the top or inside a function) a module that
imports it back, and no module is longer than about 400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "mnistlab"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            found |= {t for t in targets if t in modules and t != name}
        graph[name] = found - {"mnistlab"}  # the package's lazy re-exports point down, never back
    return graph


def test_no_module_imports_one_that_imports_it_back():
    graph = _imports()
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        for nxt in graph[node]:
            if nxt in path:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif len(path) < len(graph):
                visit(nxt, path + [nxt])

    for start in graph:
        visit(start, [start])
    assert not cycles, f"import cycles: {sorted({' -> '.join(c) for c in cycles})[:5]}"


def test_no_module_is_much_longer_than_400_lines():
    lengths = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {p: n for p, n in lengths.items() if n > 440} == {}


# The imports that must never be (docs/architecture.md): the lower parts know nothing of the ones above them,
# and what listing runs, reading headers and writing files need loads no torch.
NEVER = {
    "mnistlab.data": ("mnistlab.train", "mnistlab.serve", "mnistlab.inference", "mnistlab.sweep"),
    "mnistlab.models": ("mnistlab.train", "mnistlab.serve", "mnistlab.inference", "mnistlab.data"),
    "mnistlab.photo": ("mnistlab.train", "mnistlab.serve", "mnistlab.inference", "mnistlab.models"),
    "mnistlab.train": ("mnistlab.serve", "mnistlab.sweep", "mnistlab.cli"),
    "mnistlab.inference": ("mnistlab.train", "mnistlab.serve"),
}
TORCH_FREE_AT_IMPORT = ("mnistlab.errors", "mnistlab.fields", "mnistlab.config", "mnistlab.files",
                        "mnistlab.checkpoint", "mnistlab.runs")


def test_no_lower_part_imports_a_higher_one():
    graph = _imports()
    broken = [f"{module} -> {target}" for module, targets in graph.items() for part, banned in NEVER.items()
              if module == part or module.startswith(f"{part}.")
              for target in targets if target.startswith(banned)]
    assert broken == []


def test_the_storage_modules_import_no_torch_at_the_top():
    for module in TORCH_FREE_AT_IMPORT:
        path = PACKAGE.parent / (module.replace(".", "/") + ".py")
        tree = ast.parse(path.read_text())
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        names = [a.name for n in top if isinstance(n, ast.Import) for a in n.names]
        names += [n.module for n in top if isinstance(n, ast.ImportFrom) and n.module]
        assert not [n for n in names if n.split(".")[0] in ("torch", "safetensors", "numpy")], module
