"""Small helpers for the torch modules plugins build and load: seeding a tiny random model, freezing a
loaded one. torch is imported on first use (:mod:`vader_core.lazy`), not when this module is."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from .lazy import torch


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's CPU generator inside the block and restore the caller's state afterwards.

    Tiny random models built inside the block are the same for the same ``seed``, and the caller's
    random stream goes on as if the block had not run.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def freeze(module: torch.nn.Module, device: torch.device | str, dtype: torch.dtype) -> torch.nn.Module:
    """``module`` frozen (no parameter requires grad), in eval mode, on ``device`` in ``dtype``."""
    module.requires_grad_(False)
    module.eval()
    return module.to(device=device, dtype=dtype)
