"""Each process's place in a run and what processes exchange: the accelerator and seeds of a process, LoRA
gradients, step records, the skip decision, reward-query counts. With one process every exchange returns its
input and sends nothing.

Gradients are averaged by one all-reduce of the LoRA gradients per optimiser step (no DDP wrapper: a
backbone calls its denoiser several times per step, with truncation and checkpointing, which DDP's
per-forward hooks do not suit; LoRA gradients are small).
"""

from __future__ import annotations

import hashlib
import random
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


def derive_seed(*parts: int | str) -> int:
    """A well-mixed 63-bit seed from ``parts`` (run seed, step, micro-step, process ...)."""
    h = hashlib.blake2b(":".join(str(p) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & ((1 << 63) - 1)


def make_accelerator(device: str | None, precision: str) -> Any:
    """accelerate's ``Accelerator`` for ``device`` (``None``: what accelerate picks) and ``precision``
    (``fp32``, ``bf16``, ``fp16``: its mixed precision); a second run in one process (notebooks, tests) may
    change precision, so accelerate's state is reset, keeping the process group."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    if device and device.startswith("cuda:"):
        torch.cuda.set_device(int(device.split(":", 1)[1]))
    AcceleratorState._reset_state(reset_partial_state=False)
    mixed = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[precision]
    return Accelerator(mixed_precision=mixed, cpu=device == "cpu")


def end(accelerator: Any | None) -> None:
    """accelerate's ``end_training`` (trackers, then the process group) for a run of several processes. A
    process that exits with its gloo or NCCL group alive can abort at interpreter shutdown (SIGABRT,
    "terminate called without an active exception"), so scripts call it once they are done with the run."""
    if accelerator is not None and accelerator.num_processes > 1:
        if sys.exc_info()[1] is None:
            # A run that ended well: every process past its last collective before any tears its
            # connections down (a peer still finishing one when the other closes its sockets is another way
            # to abort at exit). Not on an error of this process alone: its peers are elsewhere, and a
            # barrier would meet their collective or wait for gloo's timeout.
            accelerator.wait_for_everyone()
        accelerator.end_training()


def seed_process(seed: int, rank: int) -> None:
    """Seed torch (LoRA initialisation, dropout) and Python per process; numpy alike on every process."""
    torch.manual_seed(derive_seed(seed, "init", rank))
    random.seed(derive_seed(seed, "py", rank))
    np.random.seed(derive_seed(seed, "np") % (2**32))


def reduce_gradients(params: Sequence[torch.nn.Parameter], num_processes: int) -> None:
    """Replace every parameter's gradient by its mean over the processes (a missing gradient counts as 0)."""
    if num_processes == 1:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.flatten() for g in grads])
    torch.distributed.all_reduce(flat)
    flat /= num_processes
    offset = 0
    for p in params:
        k = p.numel()
        p.grad = flat[offset : offset + k].view_as(p).clone()
        offset += k


def gather(accelerator: Any, values: torch.Tensor) -> torch.Tensor:
    """``values`` of every process, concatenated (a step's rewards and losses are averaged over all)."""
    if accelerator.num_processes == 1:
        return values
    return accelerator.gather(values.to(accelerator.device).contiguous())


def any_process(accelerator: Any, flag: bool) -> bool:
    """Whether ``flag`` holds on any process: every process skips a step when one saw a non-finite value."""
    if accelerator.num_processes == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=accelerator.device)
    return bool(accelerator.reduce(t, reduction="sum").item() > 0)


def total(accelerator: Any, count: int) -> int:
    """The sum of ``count`` over the processes (each process's reward queries of a step)."""
    if accelerator.num_processes == 1:
        return count
    t = torch.tensor([count], device=accelerator.device, dtype=torch.long)
    return int(accelerator.reduce(t, reduction="sum").item())


def from_main(accelerator: Any, value: Any) -> Any:
    """The main process's ``value`` on every process (a collective): a decision every process must take alike
    (is this validation the best yet, stop early?) is taken once, so floating-point noise between processes
    cannot send one of them into a collective the others skip."""
    if accelerator.num_processes == 1:
        return value
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([value], from_process=0)[0]


def rng_states(accelerator: Any) -> dict[str, Any]:
    """This process's random states, with every process's under ``ranks`` (a collective): saved with a
    checkpoint so that each process of a resumed run continues its own LoRA-dropout stream."""
    from ..checkpoint import rng_state

    own = rng_state()
    if accelerator.num_processes == 1:
        return own
    every: list[Any] = [None] * accelerator.num_processes
    torch.distributed.all_gather_object(every, own)
    return {**own, "ranks": every}


def own_rng_state(saved: dict[str, Any], rank: int, world: int) -> dict[str, Any]:
    """The random states process ``rank`` of ``world`` continues from: its own where the checkpoint was written
    by as many processes, else process 0's."""
    ranks = saved.get("ranks")
    return ranks[rank] if isinstance(ranks, list) and len(ranks) == world else saved
