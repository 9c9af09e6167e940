"""The optimiser and its update: AdamW with diffusers' learning-rate schedules, and hops 8-10 of a step
(cross-process gradient reduction, clipping, the step every process takes or skips together)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from . import distributed, sharding

if TYPE_CHECKING:  # pragma: no cover
    from ..config import OptimSection
    from .sharding import Layout


def make_optimizer(params: Sequence[torch.nn.Parameter], o: OptimSection, max_steps: int) -> tuple[Any, Any]:
    """AdamW over ``params`` and the ``optim.schedule`` learning-rate schedule over ``max_steps`` steps."""
    from diffusers.optimization import get_scheduler

    optimizer = torch.optim.AdamW(params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay, eps=o.eps)
    schedule = get_scheduler(
        o.schedule, optimizer=optimizer, num_warmup_steps=o.warmup_steps, num_training_steps=max(max_steps, 1)
    )
    return optimizer, schedule


@dataclass
class Update:
    """Hops 8-10 of a step for ``params``: called once the micro-steps' gradients are in.

    Args:
        params (`Sequence[torch.nn.Parameter]`): the LoRA parameters.
        optimizer (`Any`): the optimiser (accelerate's wrapper).
        schedule (`Any`): the learning-rate schedule.
        accelerator (`Any`): the run's accelerate ``Accelerator``.
        layout (`Layout`): this process's place in the run (under FSDP the gradients arrive reduced).
        grad_clip (`float`, *optional*): the gradient-norm clip (``optim.grad_clip``).
    """

    params: Sequence[torch.nn.Parameter]
    optimizer: Any
    schedule: Any
    accelerator: Any
    layout: Layout
    grad_clip: float | None

    def __call__(self, skip: bool) -> tuple[bool, float]:
        """Reduce the gradients over the processes, clip them, then step the optimiser and the schedule,
        unless ``skip`` (a non-finite loss in backward) or a non-finite gradient norm holds on any process:
        then every process drops the gradients. Returns whether the step was skipped, and the gradient norm
        (NaN if not computed)."""
        acc, grad_norm = self.accelerator, float("nan")
        if not skip:
            if not self.layout.sharded:  # FSDP reduce-scatters the gradients in backward
                distributed.reduce_gradients(self.params, acc.num_processes)
            if self.grad_clip is not None:
                norm = sharding.full(acc.clip_grad_norm_(self.params, self.grad_clip))
            else:
                norm = sharding.grad_norm(self.params)
            grad_norm = float(norm)
            skip = not math.isfinite(grad_norm)
        skip = distributed.any_process(acc, skip)
        if not skip:
            self.optimizer.step()
            self.schedule.step()
        self.optimizer.zero_grad(set_to_none=True)
        return skip, grad_norm
