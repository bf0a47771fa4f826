"""mnistlab: the seed notebooks' CNN and DCGAN in PyTorch, with real data, a CLI, metrics, a web app and export.

The public API (the CLI, the notebooks and the web app all call these):

    >>> import mnistlab
    >>> data = mnistlab.load_dataset("mnist-sample")
    >>> run = mnistlab.train_classifier("seed", data, epochs=1, out="doc-runs/seed", progress=False)
    >>> model = mnistlab.load(run.dir)
    >>> answer = model.predict(["seven.png"])[0]  # after one epoch on the sample: "7", or "unsure: 7 or ..."
    >>> "7" in (answer["label"] or answer["reason"])
    True
    >>> mnistlab.export_onnx(run.dir, "cnn.onnx")["kind"]
    'cnn'
    >>> table, plot = mnistlab.compare_runs([run.dir, "runs/cnn-seed"], "compare.png")

A GAN run keeps its best generator (best.safetensors, the lowest FCD of its evaluations) beside its last
checkpoint; `load`, `evaluate_gan`, `export_onnx` and `write_samples` take `checkpoint="best"` or `"last"`,
and by default read the best when the run kept one:

    >>> mnistlab.load("runs/gan-default").checkpoint, mnistlab.load("runs/gan-default", checkpoint="last").checkpoint
    ('best', 'last')

Heavy modules are imported on first use, so `import mnistlab` and `mnistlab --help` stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_dataset": "mnistlab.data.datasets",
    "as_torch_dataset": "mnistlab.data.datasets",
    "build_cnn": "mnistlab.models.build",
    "build_dcgan": "mnistlab.models.build",
    "train_classifier": "mnistlab.train.classifier",
    "train_gan": "mnistlab.train.gan",
    "fine_tune": "mnistlab.train.classifier",
    "load": "mnistlab.inference",
    "evaluate_classifier": "mnistlab.evaluate",
    "calibrate": "mnistlab.evaluate",
    "evaluate_gan": "mnistlab.evaluate",
    "speedrun": "mnistlab.speedrun",
    "list_runs": "mnistlab.runs",
    "read_run": "mnistlab.runs",
    "compare_runs": "mnistlab.runs",
    "export_onnx": "mnistlab.export",
    "write_samples": "mnistlab.generate",
    "run_sweep": "mnistlab.sweep.run",
    "load_sweep": "mnistlab.sweep.report",
    "MnistlabError": "mnistlab.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mnistlab' has no attribute {name!r}")
