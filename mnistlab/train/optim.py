"""The optimiser both trainers use, and its exact restoration on resume."""

from __future__ import annotations

from typing import Any

import torch


def adam(params, device: torch.device, **kwargs: Any) -> torch.optim.AdamW:
    """AdamW with the fused kernel where torch has one for `device`: one kernel for all parameters
    instead of a handful per tensor, which matters when the network is as small as the seed's."""
    fast = {"fused": True} if device.type in ("cpu", "cuda") else {"foreach": True}
    return torch.optim.AdamW(params, **kwargs, **fast)


def load_optimizer(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Restore a checkpointed optimiser, its moments laid out like their parameters again.

    Checkpoints store tensors contiguous; the fused kernel walks a parameter and its moments as flat
    memory, so a channels_last weight with contiguous moments would silently get the wrong update."""
    optimizer.load_state_dict(state)
    for group in optimizer.param_groups:
        for param in group["params"]:
            moments = optimizer.state[param]
            for name, value in moments.items():
                if torch.is_tensor(value) and value.shape == param.shape:
                    moments[name] = torch.empty_like(param, dtype=value.dtype).copy_(value)
