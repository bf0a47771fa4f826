"""TensorFlow 1 `SAME` padding for PyTorch convolutions, and TF-style initialisers."""

from __future__ import annotations

import math

from torch import nn


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int, int]:
    """(pad_before, pad_after, out_size) of TF's `SAME`: out = ceil(size / stride), extra pixel after."""
    span = dilation * (kernel - 1) + 1
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + span - size, 0)
    return total // 2, total - total // 2, out


def same_conv2d(
    c_in: int, c_out: int, kernel: int, stride: int, size: int, dilation: int = 1, bias: bool = True
) -> tuple[nn.Module, int]:
    """A conv with TF `SAME` padding for a `size`x`size` input, and its output size.

    PyTorch's symmetric `padding=` covers the even cases; an odd total (e.g. k=5, s=2 on 28x28)
    needs an explicit pad with the extra pixel on the bottom/right, as TensorFlow does it.
    """
    before, after, out = same_padding(size, kernel, stride, dilation)
    if before == after:
        return nn.Conv2d(c_in, c_out, kernel, stride, padding=before, dilation=dilation, bias=bias), out
    conv = nn.Conv2d(c_in, c_out, kernel, stride, padding=0, dilation=dilation, bias=bias)
    return nn.Sequential(nn.ZeroPad2d((before, after, before, after)), conv), out


def same_conv_transpose2d(c_in: int, c_out: int, kernel: int, stride: int, bias: bool = True) -> nn.ConvTranspose2d:
    """A transposed conv with TF `same` padding (odd kernels): output size = input size · stride."""
    return nn.ConvTranspose2d(
        c_in, c_out, kernel, stride, padding=(kernel - 1) // 2, output_padding=stride - 1, bias=bias
    )


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
