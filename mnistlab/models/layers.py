"""TensorFlow 1 `SAME` padding for PyTorch convolutions, and TF-style initialisers."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int, int]:
    """(pad_before, pad_after, out_size) of TF's `SAME`: out = ceil(size / stride), extra pixel after."""
    span = dilation * (kernel - 1) + 1
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + span - size, 0)
    return total // 2, total - total // 2, out


class SameConv2d(nn.Conv2d):
    """A conv with TensorFlow's `SAME` padding, worked out from each input's size: out = ceil(size / stride).

    PyTorch's symmetric `padding=` covers the even cases; an odd total (e.g. k=5, s=2 on 28x28) pads
    explicitly, the extra pixel on the bottom/right, as TensorFlow does it.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, dilation: int = 1, bias: bool = True):
        super().__init__(c_in, c_out, kernel, stride, padding=0, dilation=dilation, bias=bias)
        self._register_load_state_dict_pre_hook(_rename_padded_conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (k, _), (s, _), (d, _) = self.kernel_size, self.stride, self.dilation
        top, bottom, _ = same_padding(x.shape[-2], k, s, d)
        left, right, _ = same_padding(x.shape[-1], k, s, d)
        if top == bottom and left == right:
            return F.conv2d(x, self.weight, self.bias, self.stride, (top, left), self.dilation)
        return F.conv2d(F.pad(x, (left, right, top, bottom)), self.weight, self.bias, self.stride, 0, self.dilation)


def _rename_padded_conv(state_dict: dict, prefix: str, *args: object) -> None:
    """Checkpoints from before SameConv2d held an odd-padded conv as Sequential(ZeroPad2d, Conv2d): `.1.weight`."""
    for name in ("weight", "bias"):
        old = f"{prefix}1.{name}"
        if old in state_dict and f"{prefix}{name}" not in state_dict:
            state_dict[f"{prefix}{name}"] = state_dict.pop(old)


def same_conv_transpose2d(c_in: int, c_out: int, kernel: int, stride: int, bias: bool = True) -> nn.ConvTranspose2d:
    """A transposed conv with TF `same` padding (odd kernels): output size = input size · stride."""
    return nn.ConvTranspose2d(
        c_in, c_out, kernel, stride, padding=(kernel - 1) // 2, output_padding=stride - 1, bias=bias
    )


class _GradientInInputLayout(torch.autograd.Function):
    """Identity forward; backward hands the gradient back in the channels_last layout of the input."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous(memory_format=torch.channels_last)


class Flatten(nn.Flatten):
    """`nn.Flatten` that keeps a channels_last activation's gradient channels_last.

    Flattening a channels_last tensor copies it to NCHW order, so its gradient comes back NCHW, and the
    layer before (a leaky ReLU) would run its backward over mixed layouts, several times slower. The same
    values either way: only the gradient's memory layout changes.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad and x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(
                memory_format=torch.channels_last):
            x = _GradientInInputLayout.apply(x)
        return super().forward(x)


def init_weights(module: nn.Module, scheme: str) -> None:
    """Initialise every conv / dense / embedding layer in `module`.

    glorot: TF `tf.layers` defaults (Glorot-uniform kernels, zero biases).
    dcgan: the DCGAN paper's N(0, 0.02) weights, and BN scales N(1, 0.02).
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            if scheme == "glorot":
                nn.init.xavier_uniform_(m.weight)
            else:
                nn.init.normal_(m.weight, 0.0, 0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and scheme == "dcgan":
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
