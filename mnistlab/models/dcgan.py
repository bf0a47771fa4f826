"""The DCGAN: the seed notebook's generator and discriminator, and our default pair.

Seed generator (noise: 100 numbers uniform on [−1, 1]), layer for layer as the seed README lists it:

    dense 7·7·64                                        → 3136
    reshape                                             → 64 x 7 x 7
    conv_transpose 3x3, 64, stride 1, same, leaky ReLU  → 64 x 7 x 7
    conv_transpose 5x5, 64, stride 2, same              → 64 x 14 x 14
    conv_transpose 5x5, 32, stride 2, same, leaky ReLU  → 32 x 28 x 28
    conv_transpose 3x3, 32, stride 1, same, ReLU        → 32 x 28 x 28
    conv_transpose 3x3,  1, stride 1, same, tanh        → 1 x 28 x 28        (516,897 parameters)

Seed discriminator:

    conv 3x3,  32, stride 1, same                       → 32 x 28 x 28
    conv 5x5,  64, stride 2, same                       → 64 x 14 x 14
    conv 5x5,  64, stride 2, same, leaky ReLU           → 64 x 7 x 7
    conv 3x3, 128, stride 1, same, leaky ReLU           → 128 x 7 x 7
    flatten                                             → 6272
    dense 100                                           → 100
    dense 2, tanh                                       → 2 "logits" in [−1, 1]  (855,406 parameters)

Leaky ReLU is tf.nn.leaky_relu (α = 0.2); kernels Glorot-uniform and biases zero, as tf.layers does.

Default generator (width w = 128 in the preset; noise: 64 numbers from N(0, 1)):

    dense w·7·7, batch norm, ReLU                       → w x 7 x 7
    conv_transpose 4x4, w/2, stride 2, BN, ReLU         → w/2 x 14 x 14
    conv_transpose 4x4, w/4, stride 2, BN, ReLU         → w/4 x 28 x 28
    conv 3x3, 1, tanh                                   → 1 x 28 x 28

Default discriminator (width v = 64): conv 4x4/2 v, leaky ReLU → conv 4x4/2 2v, BN, leaky ReLU → 1 logit.

Conditional (`conditional = true`, the default preset): the generator's latent is the noise followed
by a one-hot digit (64 + 10 numbers), and the discriminator is a projection discriminator that is
told the digit too. Sampling "any digit" draws the digit uniformly, so all ten appear in equal shares.

Self-conditioned (`clusters = k`, the unconditional preset): the same pair, told one of k clusters of the
training images (`model.clusters`, found by `train/clusters.py`) instead of a digit, so no label is needed;
"any" draws clusters in their shares of the training images, a buffer kept with G.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from mnistlab.config import DCGANConfig
from mnistlab.models.layers import Flatten, SameConv2d, init_weights, same_conv_transpose2d

NUM_DIGITS = 10


def seed_generator(nz: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(nz, 7 * 7 * 64),  # → 3136
        nn.Unflatten(1, (64, 7, 7)),  # → 64 x 7 x 7
        same_conv_transpose2d(64, 64, 3, 1), nn.LeakyReLU(0.2),  # → 64 x 7 x 7
        same_conv_transpose2d(64, 64, 5, 2),  # → 64 x 14 x 14
        same_conv_transpose2d(64, 32, 5, 2), nn.LeakyReLU(0.2),  # → 32 x 28 x 28
        same_conv_transpose2d(32, 32, 3, 1), nn.ReLU(),  # → 32 x 28 x 28
        same_conv_transpose2d(32, 1, 3, 1), nn.Tanh(),  # → 1 x 28 x 28
    )


def seed_discriminator() -> nn.Sequential:
    return nn.Sequential(
        SameConv2d(1, 32, 3, 1),  # → 32 x 28 x 28
        SameConv2d(32, 64, 5, 2),  # → 64 x 14 x 14
        SameConv2d(64, 64, 5, 2), nn.LeakyReLU(0.2),  # → 64 x 7 x 7
        SameConv2d(64, 128, 3, 1), nn.LeakyReLU(0.2),  # → 128 x 7 x 7
        Flatten(),  # → 6272
        nn.Linear(128 * 7 * 7, 100),  # → 100
        nn.Linear(100, 2), nn.Tanh(),  # → 2
    )


def default_generator(nz: int, width: int) -> nn.Sequential:
    """DCGAN-paper style: batch norm and ReLU in every hidden layer, two stride-2 upsamplings, then a
    28x28 stage that refines strokes at full resolution (FCD 10.2–10.7 vs 14.9 without it after 240 s)."""
    return nn.Sequential(
        nn.Linear(nz, width * 7 * 7, bias=False), nn.BatchNorm1d(width * 7 * 7), nn.ReLU(),  # → width·49
        nn.Unflatten(1, (width, 7, 7)),  # → width x 7 x 7
        nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width // 2), nn.ReLU(),
        # → width/2 x 14 x 14
        nn.ConvTranspose2d(width // 2, width // 4, 4, 2, 1, bias=False), nn.BatchNorm2d(width // 4), nn.ReLU(),
        # → width/4 x 28 x 28
        nn.Conv2d(width // 4, 1, 3, 1, 1), nn.Tanh(),  # → 1 x 28 x 28
    )


class DefaultDiscriminator(nn.Module):
    """Strided convs with leaky ReLU, normalised by `norm` ("batch", "spectral" or "none"), one logit out.

    Conditional (projection discriminator, Miyato & Koyama 2018): the logit gains ⟨embed(digit), φ(x)⟩,
    so D asks "is this a real image of *this* digit?" and G must draw the digit it was asked for.
    """

    def __init__(self, width: int, norm: str, dropout: float, hidden: int, classes: int):
        super().__init__()
        sn = spectral_norm if norm == "spectral" else (lambda layer: layer)

        def normed(features: int, two_d: bool) -> nn.Module:
            if norm != "batch":
                return nn.Identity()
            return nn.BatchNorm2d(features) if two_d else nn.BatchNorm1d(features)

        self.features = nn.Sequential(
            sn(nn.Conv2d(1, width, 4, 2, 1)), nn.LeakyReLU(0.2), nn.Dropout(dropout),  # → width x 14 x 14
            sn(nn.Conv2d(width, width * 2, 4, 2, 1, bias=norm != "batch")), normed(width * 2, True),
            nn.LeakyReLU(0.2), nn.Dropout(dropout),  # → 2·width x 7 x 7
            Flatten(),  # → 2·width·49
        )
        flat = width * 2 * 7 * 7
        self.hidden = nn.Sequential(
            sn(nn.Linear(flat, hidden, bias=norm != "batch")), normed(hidden, False), nn.LeakyReLU(0.2),
        ) if hidden else nn.Identity()  # (→ hidden)
        width_out = hidden or flat
        self.logit = sn(nn.Linear(width_out, 1))  # → 1
        self.embed = sn(nn.Embedding(classes, width_out)) if classes else None

    def forward(self, x: torch.Tensor, digits: torch.Tensor | None = None) -> torch.Tensor:
        """(N, 1, 28, 28) images [and their (N,) digits] → (N, 1) logits of 'real'."""
        h = self.hidden(self.features(x))
        out = self.logit(h)
        if self.embed is not None:
            out = out + (self.embed(digits) * h).sum(1, keepdim=True)
        return out


class DCGAN(nn.Module):
    """Holds `netG` and `netD` and knows how to draw the generator's latent vectors."""

    def __init__(self, config: DCGANConfig):
        super().__init__()
        self.config = config
        # What G and D are told: one of the ten digits, or one of the clusters found in the images.
        self.classes = (config.clusters or NUM_DIGITS) if config.conditional else 0
        self.latent_dim = config.nz + self.classes
        if config.arch == "seed":
            self.netG, self.netD = seed_generator(config.nz), seed_discriminator()
        else:
            self.netG = default_generator(self.latent_dim, config.g_width)
            self.netD = DefaultDiscriminator(config.d_width, config.d_norm, config.d_dropout, config.d_hidden,
                                             self.classes)
        init_weights(self, config.init)
        if config.clusters:  # each cluster's share of the training images, kept with G (and its moving average)
            self.netG.register_buffer("cluster_shares", torch.full((config.clusters,), 1 / config.clusters,
                                                                   dtype=torch.float64))

    @property
    def cluster_shares(self) -> torch.Tensor:
        """(clusters,) share of the training images in each cluster: "any" draws clusters in these shares."""
        return self.netG.cluster_shares

    def noise(
        self, n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu",
        digits: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(n, latent_dim) latent vectors: noise from the configured distribution, then — for a
        conditional GAN — the one-hot of `digits` (default: drawn from the same generator, digits uniformly
        and clusters in their shares of the training images)."""
        if self.config.noise == "uniform":
            z = torch.rand(n, self.config.nz, generator=generator, device=device) * 2 - 1
        else:
            z = torch.randn(n, self.config.nz, generator=generator, device=device)
        if not self.config.conditional:
            return z
        if digits is None and self.config.clusters:
            shares = self.cluster_shares.to(device)
            digits = torch.multinomial(shares, n, replacement=True, generator=generator)
        elif digits is None:
            digits = torch.randint(0, NUM_DIGITS, (n,), generator=generator, device=device)
        return torch.cat([z, F.one_hot(digits.to(z.device), self.classes).to(z.dtype)], 1)

    def digits(self, latent: torch.Tensor) -> torch.Tensor | None:
        """The digit (or cluster) each latent vector asks for (None for an unconditional GAN)."""
        return latent[:, self.config.nz:].argmax(1) if self.config.conditional else None

    def asked_digits(self, latent: torch.Tensor) -> torch.Tensor | None:
        """The digit each latent vector asks for, when it asks for digits (None unconditional or for clusters)."""
        return None if self.config.clusters else self.digits(latent)

    def discriminate(self, x: torch.Tensor, digits: torch.Tensor | None) -> torch.Tensor:
        """D's output for images (and, when conditional, the digits they should show)."""
        return self.netD(x, digits) if self.config.conditional else self.netD(x)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        """(N, latent_dim) latent vectors → (N, 1, 28, 28) images in [−1, 1]."""
        return self.netG(latent)
