"""The digit classifier: the seed notebook's CNN, and the same skeleton widened for stronger presets.

The seed network (preset "seed"), for a 28x28 input:

    conv 5x5,  4 filters, stride 1, SAME, ReLU   → 4 x 28 x 28
    conv 4x4,  8 filters, stride 2, SAME, ReLU   → 8 x 14 x 14
    conv 4x4, 12 filters, stride 2, SAME, ReLU   → 12 x 7 x 7
    flatten                                       → 588
    dense 200, ReLU                               → 200
    dense 10                                      → 10 logits

121,982 parameters; weights ~ truncated normal (std 0.1, cut at 2 std), biases zero.
"""

from __future__ import annotations

import torch
from torch import nn

from mnistlab.config import CNNConfig
from mnistlab.models.layers import SameConv2d, same_padding

IMAGE_SIZE = 28
NUM_CLASSES = 10


class CNN(nn.Module):
    def __init__(self, config: CNNConfig):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        channels, size = 1, IMAGE_SIZE
        pools = config.pools or (1,) * len(config.filters)
        for filters, kernel, stride, dilation, pool in zip(config.filters, config.kernels, config.strides,
                                                           config.dilations, pools):
            layers += [SameConv2d(channels, filters, kernel, stride, dilation, bias=not config.batch_norm),
                       nn.BatchNorm2d(filters) if config.batch_norm else nn.Identity(), nn.ReLU(inplace=True)]
            channels, size = filters, same_padding(size, kernel, stride, dilation)[2]  # seed: 28 → 28 → 14 → 7
            if pool > 1:
                layers.append(nn.MaxPool2d(pool))  # → size // pool
                size //= pool
        self.features = nn.Sequential(*layers)  # → channels x size x size
        self.flatten = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()) if config.global_pool else nn.Flatten()
        flat = channels if config.global_pool else channels * size * size  # seed: 12·7·7 = 588
        if config.fc:
            self.hidden = nn.Sequential(
                nn.Linear(flat, config.fc, bias=not config.batch_norm),
                nn.BatchNorm1d(config.fc) if config.batch_norm else nn.Identity(),
                nn.ReLU(),
            )  # → fc
            width = config.fc
        else:
            self.hidden, width = nn.Identity(), flat
        self.dropout = nn.Dropout(config.dropout)
        self.logits = nn.Linear(width, NUM_CLASSES)  # → 10
        self.embedding_dim = width
        self._init(config)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features (N, embedding_dim): what the FCD compares."""
        return self.hidden(self.flatten(self.features(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, 28, 28) normalised images → (N, 10) logits."""
        return self.logits(self.dropout(self.embed(x)))

    def _init(self, config: CNNConfig) -> None:
        for m in self.modules():
            if not isinstance(m, (nn.Conv2d, nn.Linear)):
                continue
            if config.weight_init == "truncated-normal":
                nn.init.trunc_normal_(m.weight, std=0.1, a=-0.2, b=0.2)  # tf.truncated_normal(stddev=0.1)
            if m.bias is None:
                continue
            if config.bias_init == "zeros":
                nn.init.zeros_(m.bias)
            elif config.bias_init == "truncated-normal":
                nn.init.trunc_normal_(m.bias, std=0.1, a=-0.2, b=0.2)
            else:
                nn.init.constant_(m.bias, config.bias_constant)
