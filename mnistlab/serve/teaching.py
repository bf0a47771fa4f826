"""Teaching the served reader one person's hand, from the page: the digits they drew or photographed, each
with the label they gave it, become a class folder under the runs directory (`my-digits-STAMP/7/000.png`),
and the served run is fine-tuned on them (`train.classifier.fine_tune`, its measured recipe, replaying the
source's own digits) in a thread of its own, one at a time, while the server goes on reading. When it is
done the server reads with the new run, which `mnistlab runs` lists as fine-tuned from the old one; the
folder stays, for `mnistlab train cnn --dataset images:DIR` or another try.
"""

from __future__ import annotations

import datetime
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from mnistlab.checkpoint import CHECKPOINT_NAME
from mnistlab.errors import MnistlabError, one_line
from mnistlab.files import atomic_write_bytes
from mnistlab.inference import Classifier
from mnistlab.plots import png_bytes

MIN_EACH = 3  # of each digit taught: a tenth (rounded up) of each is held out to test on, the rest train
MIN_DIGITS = 2  # different digits taught: a classifier's data needs two classes at least
MIN_INK = 0.2  # an image whose strongest pixel is fainter than this holds no digit (0 = background, 1 = ink)


class Busy(MnistlabError):
    """A fine-tuning is already running."""


class Teacher:
    """One fine-tuning at a time, in a background thread; `status` says how far it is. `adopt(run_dir)` is
    called with the new run when it is done (the server then reads with it)."""

    def __init__(self, runs_dir: Path, adopt: Callable[[Path], None]) -> None:
        self.runs_dir, self.adopt = runs_dir, adopt
        self.lock = threading.Lock()
        self.status: dict[str, Any] = {"state": "idle"}

    def start(self, source: Classifier, digits: list[tuple[int, np.ndarray]]) -> dict[str, Any]:
        """Check the digits (labels index `source.classes`; images 28x28 in [0, 1], light ink on black, as the
        model saw them) and start fine-tuning `source` on them. MnistlabError for digits that cannot be
        taught, Busy while another fine-tuning runs."""
        from mnistlab.train.classifier import FINE_TUNE

        if source.members:
            raise MnistlabError("the server reads with an ensemble; teaching fine-tunes one run: serve one")
        if source.classes != [str(d) for d in range(10)]:
            raise MnistlabError(f"this model reads {', '.join(source.classes)}, not the digits 0-9: only a digit "
                                "reader can be taught a hand")
        blank = [n for n, (_, image) in enumerate(digits) if image.max() < MIN_INK]
        if blank:
            raise MnistlabError(f"digit {blank[0] + 1} of those sent has no ink: send the images the model saw")
        counts = np.bincount([label for label, _ in digits], minlength=len(source.classes))
        if len(counts) > len(source.classes):
            raise MnistlabError(f"labels are 0..{len(source.classes) - 1}, the classes this model reads")
        taught = np.flatnonzero(counts)
        if len(taught) < MIN_DIGITS or counts[taught].min() < MIN_EACH:
            raise MnistlabError(f"teach at least {MIN_DIGITS} different digits, each at least {MIN_EACH} times "
                                f"(got {', '.join(f'{d}: {counts[d]}' for d in taught) or 'none'})")
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        run_dir = source.path.parent if source.path.name == CHECKPOINT_NAME else source.path
        with self.lock:
            if self.status["state"] == "running":
                raise Busy("a fine-tuning is already running: wait for it to finish")
            self.status = {"state": "running", "epoch": 0, "epochs": FINE_TUNE["epochs"], "source": str(run_dir),
                           "digits": str(self.runs_dir / f"my-digits-{stamp}"), "run": None}
        out = self.runs_dir / f"cnn-taught-{stamp}"
        threading.Thread(target=self._teach, args=(run_dir, digits, out), daemon=True, name="teacher").start()
        return dict(self.status)

    def _teach(self, source: Path, digits: list[tuple[int, np.ndarray]], out: Path) -> None:
        from mnistlab.train.classifier import fine_tune

        folder = Path(self.status["digits"])
        try:
            for n, (label, image) in enumerate(digits):
                (folder / str(label)).mkdir(parents=True, exist_ok=True)
                pixels = Image.fromarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8))
                atomic_write_bytes(folder / str(label) / f"{n:03d}.png", png_bytes(pixels))
            run = fine_tune(source, f"images:{folder}", out=str(out), progress=False,
                            callback=lambda metrics: self.status.update(epoch=metrics["epoch"]))
            self.adopt(run.dir)
            self.status.update(state="done", run=str(run.dir), test_acc=run.metrics[-1].get("test_acc"))
        except Exception as e:  # noqa: BLE001 - whatever went wrong is the job's answer, in one line
            self.status.update(state="failed", error=one_line(e))

