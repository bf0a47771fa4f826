"""ONNX export of a trained CNN (images → logits, digitness) or a GAN's generator (noise → images), run and checked.

The model is exported in fp32 with a dynamic batch axis by `torch.onnx.export(dynamo=True)` (the TorchScript
exporter is deprecated), serialised in memory, run with onnxruntime on a random batch and compared with
PyTorch, and only then written, atomically: a failed export never leaves a partial file nor replaces a good
one. onnx, onnxscript and onnxruntime are the `onnx` extra; without them `export_onnx` says what to install.

    >>> export_onnx("runs/cnn-seed", "cnn.onnx")["max_abs_diff"] < 1e-4
    True
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from mnistlab.errors import MnistlabError, require_extra
from mnistlab.files import atomic_write_bytes
from mnistlab.inference import Classifier, load

TOLERANCE = 1e-4  # fp32 kernels differ in summation order, by ~1e-6 here; more means a wrong graph
CHECK_BATCH = 8  # not the export example's batch size, so the dynamic axis is checked too
ONNX_STACK = ("onnx", "onnxscript", "onnxruntime")  # the `onnx` extra: the exporter's and the checker's


def export_onnx(run_or_checkpoint: str | Path, path: str | Path, checkpoint: str | None = None) -> dict[str, Any]:
    """Export a run's CNN or generator to `path`; returns what was written (`source`: the checkpoint file read)
    and how far onnxruntime strayed. `checkpoint`: "best", "last" or None, best when the run kept one (a
    GAN's best generator; see `mnistlab.inference.load`).

    CNN: input `images` float32 [N,1,28,28] in [0,1], light ink on black as `frame.to_mnist` makes them;
    output `logits` float32 [N,classes], divided by the run's temperature, so softmax gives the calibrated
    probabilities `predict` gives; and, for a run with a digitness scale (`mnistlab.ood`; runs made before it
    have none), `digitness` float32 [N], the share of its validation digits less digit-like than each input,
    as `predict` gives it: under 1 - ood.KEEP is "not a digit". Several runs (an ensemble, `load`'s list)
    export as one graph whose `logits` are the log of the members' averaged probabilities, and whose
    `digitness` is their mean.
    GAN: input `z` float32 [N,nz] drawn as the model was trained (uniform on [-1,1] or standard normal),
    followed for a conditional GAN by the one-hot of the digit to draw (10 numbers), or of a cluster;
    output `images` float32 [N,1,28,28] from the generator's tanh, in [-1,1] (`output` says how to get
    pixels).

    >>> result = export_onnx("runs/cnn-seed", "cnn.onnx")
    >>> result["kind"], result["input"]
    ('cnn', 'images float32 [N,1,28,28] in [0,1], light ink on black (mnistlab.photo.frame.to_mnist)')
    """
    _require_onnx_stack()
    if not Path(path).parent.is_dir():  # say so now, not after the export
        raise MnistlabError(f"cannot write {path}: there is no directory {Path(path).parent}")
    model = load(run_or_checkpoint, precision="fp32", checkpoint=checkpoint)
    if isinstance(model, Classifier):
        net = _Calibrated(model)
        kind, names = "cnn", ("images", "logits", "digitness") if net.scales else ("images", "logits")
        example, check = torch.rand(2, 1, 28, 28), torch.rand(CHECK_BATCH, 1, 28, 28)
        check[0] = 0  # a blank: digitness 0, as `predict` has it
        described = ("images float32 [N,1,28,28] in [0,1], light ink on black (mnistlab.photo.frame.to_mnist)",
                     f"logits float32 [N,{len(model.classes)}] for classes {','.join(model.classes)}" + (
                         "; digitness float32 [N], the share of validation digits less digit-like "
                         "(mnistlab.ood)" if net.scales else ""))
    else:
        kind, net, names = "gan", model.gan.netG, ("z", "images")
        gan = model.gan
        example, check = gan.noise(2), gan.noise(CHECK_BATCH, generator=torch.Generator().manual_seed(0))
        noise = "uniform on [-1,1]" if gan.config.noise == "uniform" else "standard normal"
        pixels = "(x+1)/2*255" if model.real_range != "0,1" else "clamp(x,0,1)*255"  # as inference.to_uint8
        digit = ", then the one-hot digit to draw (10)" if gan.config.conditional else ""
        if gan.config.clusters:
            shares = gan.cluster_shares.tolist()
            digit = f", then the one-hot of the cluster to draw ({gan.classes}, in shares {shares})"
        described = (f"z float32 [N,{gan.latent_dim}]: {gan.config.nz} numbers {noise}{digit}",
                     f"images float32 [N,1,28,28] in [-1,1] (tanh); pixel = {pixels}, 255 = ink")

    net = net.float().eval()
    with _quiet_exporter():
        program = torch.onnx.export(net, (example,), dynamo=True, verbose=False, input_names=[names[0]],
                                    output_names=list(names[1:]), dynamic_shapes=({0: torch.export.Dim("N")},))
    data = program.model_proto.SerializeToString()

    import onnxruntime

    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        expected = net(check)
    expected = [t.numpy() for t in (expected if isinstance(expected, tuple) else (expected,))]
    got = session.run(None, {names[0]: check.numpy()})
    diff = max((float(np.abs(g - e).max()) if g.shape == e.shape else float("inf") for g, e in zip(got, expected)),
               default=float("inf"))
    if not diff <= TOLERANCE:  # also catches NaN
        raise MnistlabError(f"the ONNX {kind} differs from PyTorch by {diff:.2e} (> {TOLERANCE:.0e}) on a "
                            f"random batch; nothing was written to {path}")
    try:
        atomic_write_bytes(path, data)
    except OSError as e:
        raise MnistlabError(f"cannot write {path}: {e.strerror or e}; choose another --onnx path") from None
    return {"path": str(path), "kind": kind, "input": described[0], "output": described[1],
            "max_abs_diff": diff, "source": str(model.path)}


class _Calibrated(torch.nn.Module):
    """A classifier's networks as `predict` uses them: logits / T, or an ensemble's log averaged probabilities;
    and, when every member keeps a Mahalanobis digitness scale (what every run since it keeps), the digitness."""

    def __init__(self, classifier: Classifier):
        super().__init__()
        members = [classifier, *classifier.members]
        self.nets = torch.nn.ModuleList(m.model for m in members)
        self.temperatures = [m.temperature for m in members]
        kept = all(m.digitness is not None and m.digitness.method == "mahalanobis" for m in members)
        self.scales = torch.nn.ModuleList(_MahalanobisDigitness(m.digitness) for m in members) if kept else None

    def forward(self, images: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        features = [net.embed(images) for net in self.nets]
        logits = [net.logits(f) / t for net, f, t in zip(self.nets, features, self.temperatures)]
        if len(self.nets) == 1:
            calibrated = logits[0]
        else:
            calibrated = torch.log(torch.stack([torch.softmax(z, 1) for z in logits]).mean(0))
        if self.scales is None:
            return calibrated
        digitness = torch.stack([scale(f) for scale, f in zip(self.scales, features)]).mean(0)
        return calibrated, torch.where(images.flatten(1).amax(1) > 0, digitness, 0.0)  # a blank holds no digit


class _MahalanobisDigitness(torch.nn.Module):
    """`ood.Digitness.digitness` of the "mahalanobis" scorer in operators ONNX has: minus the smallest squared
    distance of the features to a class mean, placed on the validation digits' quantiles as `np.interp` does.

    With the precision P = L Lᵀ (Cholesky), (f − μ)ᵀ P (f − μ) = ‖fL − μL‖²: one d×d product per input, not
    one per class, and a difference of vectors rather than of large quadratic terms, which float32 keeps."""

    def __init__(self, scale: Any):
        super().__init__()
        factor = np.linalg.cholesky(scale.precisions)  # P is the inverse of a ridged covariance: positive definite
        self.register_buffer("factor", torch.from_numpy(factor).float())  # (d, d)
        self.register_buffer("means", torch.from_numpy(scale.means @ factor).float())  # (classes, d), whitened
        self.register_buffer("quantiles", torch.from_numpy(scale.quantiles).float())  # (Q,), ascending

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        whitened = features @ self.factor  # (N, d)
        score = -((whitened[:, None, :] - self.means[None]) ** 2).sum(-1).min(1).values  # (N,)
        q, last = self.quantiles, len(self.quantiles) - 1
        i = (score[:, None] >= q[None]).sum(1).clamp(1, last)  # q[i-1] <= score < q[i], away from the ends
        lo, hi = q[i - 1], q[i]
        step = torch.where(hi > lo, (score - lo) / (hi - lo), torch.zeros_like(score)).clamp(0, 1)
        return (i - 1 + step) / last


def _require_onnx_stack() -> None:
    require_extra("ONNX export", "onnx", ONNX_STACK)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Hide the exporter's noise: a warning per torchvision operator it cannot register (torchvision is not
    needed) and PyTorch-internal deprecation warnings. Errors still surface."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        logger.setLevel(level)
