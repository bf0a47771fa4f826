"""Data-parallel training under torchrun: which rank this is, its share of each batch, and sums over ranks."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1  # processes in the group (torchrun), 1 without it
    owns_group: bool = False  # we started the process group, so we end it

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, indices: torch.Tensor) -> torch.Tensor:
        """This rank's share of a global batch: every world_size-th index, so the global batch is unchanged."""
        return indices[self.rank :: self.world_size]

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum a tensor over ranks (a no-op in a single process)."""
        if self.world_size > 1:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor


def init_distributed(device: torch.device) -> Dist:
    """Join the process group torchrun describes in the environment; a plain run is rank 0 of 1."""
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    if world_size == 1:
        return Dist()
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), owns)


def decorrelate_ranks(group: Dist, seed: int, step: int) -> None:
    """Give each rank its own random stream (noise, augmentation, dropout) once the weights are identical."""
    if group.world_size > 1:
        torch.manual_seed(seed * 1_000_003 + step * 1009 + group.rank)


def finish_distributed(group: Dist) -> None:
    if group.owns_group:
        dist.barrier()
        dist.destroy_process_group()


def average_gradients(module: torch.nn.Module, group: Dist) -> None:
    """Average gradients over ranks by hand, for the GAN whose two networks take turns (see train/gan.py)."""
    if group.world_size == 1:
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= group.world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()
