"""The example notebooks run top to bottom without errors (in FAST mode: tiny data, one epoch, seconds).

All three execute at once, each in its own kernel with one compute thread: their kernels spend much of
their time starting up and importing, so together they finish well before they would one after another.
Each kernel is the `python3` kernelspec of the interpreter running the tests (jupyter_client launches a
kernelspec whose command is `python` with `sys.executable`), so it sees this virtual environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbclient
import nbformat
import pytest

pytestmark = pytest.mark.slow  # real processes, servers or training for seconds: not in make test-fast

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NOTEBOOKS = ("cnn_mnist", "dcgan_mnist", "future_improvements")
CHECK = "import sys, os\nprint(sys.executable)\nprint(os.environ.get('MNISTLAB_NOTEBOOK_FAST'))"


def _execute(name: str, workdir: Path):
    """The executed notebook, with a last cell that reports the kernel's interpreter; or the exception."""
    nb = nbformat.read(EXAMPLES / f"{name}.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(CHECK))
    workdir.mkdir()
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=120,
                                     resources={"metadata": {"path": str(workdir)}})
    try:
        # The kernel's own stderr is only start-up chatter; what a cell prints or raises is in the outputs.
        client.execute(stderr=subprocess.DEVNULL)
    except Exception as e:  # CellExecutionError, DeadKernelError, CellTimeoutError: reported by the test
        return nb, e
    return nb, None


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    root = tmp_path_factory.mktemp("notebooks")
    with pytest.MonkeyPatch.context() as mp:
        # The kernels inherit this environment when they start.
        mp.setenv("MNISTLAB_NOTEBOOK_FAST", "1")
        mp.setenv("OMP_NUM_THREADS", "1")
        mp.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # quieter kernels
        with ThreadPoolExecutor(len(NOTEBOOKS)) as pool:
            futures = {name: pool.submit(_execute, name, root / name) for name in NOTEBOOKS}
            results = {name: future.result() for name, future in futures.items()}
    return results, root


def test_the_notebooks_are_committed_without_outputs():
    for name in NOTEBOOKS:
        nb = nbformat.read(EXAMPLES / f"{name}.ipynb", as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code and all(not c.outputs and c.execution_count is None for c in code), name
        assert any(c.cell_type == "markdown" for c in nb.cells), name
        assert "MNISTLAB_NOTEBOOK_FAST" in "".join(c.source for c in code), name


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_without_errors_in_fast_mode(executed, name):
    results, root = executed
    nb, error = results[name]
    if error is not None:
        pytest.fail(f"{name}.ipynb failed: {str(error)[-3000:]}")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    # The kernel was this virtual environment's Python, and saw FAST mode.
    check = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream").split()
    assert check == [sys.executable, "1"] or (os.path.realpath(check[0]) == os.path.realpath(sys.executable)
                                              and check[1:] == ["1"]), check
    # Figures came out: every notebook shows at least one image.
    images = [o for c in nb.cells for o in c.get("outputs", [])
              if any(k.startswith("image/") for k in o.get("data", {}))]
    assert images, f"{name}.ipynb displayed no image"
    # FAST mode writes its runs to a temporary folder, not into the working directory.
    assert not (root / name / "runs").exists()
