"""Clusters of training images found without labels, for a GAN conditioned on them (self-conditioning).

Liu et al. 2020 ("Diverse Image Generation via Self-Conditioned GANs") condition G and D on clusters of
the data instead of class labels. Here the clusters are k-means in the first principal components of
the pixels, found once before training, so no label and no model trained with labels is involved.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.cluster.vq import kmeans2

COMPONENTS = 30  # principal components the images are clustered in: enough for digit shapes, fast for k-means


def find_clusters(images: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """(N,) cluster index of each of (N, H, W) uint8 images, among `k` k-means clusters; the same seed and
    images give the same clusters (at least k of them: `train.gan.check_data` sees to it)."""
    pixels = images.reshape(len(images), -1).numpy().astype(np.float64) / 255
    centred = pixels - pixels.mean(0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    components = centred @ axes[:COMPONENTS].T  # (N, 30)
    _, cluster = kmeans2(components, k, iter=30, minit="++", seed=np.random.default_rng(seed))
    return torch.from_numpy(cluster.astype(np.int64))


def cluster_shares(cluster: torch.Tensor, k: int) -> torch.Tensor:
    """(k,) share of the images in each cluster."""
    return torch.bincount(cluster, minlength=k).double() / len(cluster)
