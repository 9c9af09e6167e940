"""The training-method contract: one optimiser micro-step's worth of sampling, reward and backward.

The trainer owns devices, precision, LoRA, the optimiser, gradient accumulation, distributed
reduction, logging and checkpoints. A method turns a batch into gradients on the LoRA parameters
(calling :meth:`TrainContext.backward`, possibly several times) and reports rewards.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import ConfigDict

from .options import StrictNumbers

if TYPE_CHECKING:  # pragma: no cover
    import random

    import torch

    from .backbone import BackbonePlugin
    from .config import VaderConfig
    from .objective import Objective


class MethodOptions(StrictNumbers):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


@dataclass
class Batch:
    """Prompts (and conditioning images for image-to-video) of one micro-batch."""

    prompts: list[str]
    images: list[Any] | None = None


@dataclass
class TrainContext:
    """What a method may use during a step.

    Attributes:
        config (`VaderConfig`): the resolved configuration.
        backbone (`BackbonePlugin`): loaded, frozen, with LoRA on its denoiser.
        objective (`Objective`): the weighted rewards.
        autocast (`Callable[[], ContextManager]`): the run's mixed-precision context.
        backward (`Callable[[torch.Tensor], bool]`): backpropagates a loss scaled for gradient
            accumulation; returns ``False`` (and does nothing) when the loss is not finite.
        trainable (`list[torch.nn.Parameter]`): the LoRA parameters.
        draw_batch (`Callable[[random.Random], Batch]`): draws another training batch (methods that
            sample several batches before updating, e.g. ``ddpo``).
        num_reward_queries (`int`): deprecated: videos scored so far over every process, kept up to date
            by the trainer for methods that read it. A method reports the queries it makes in
            :attr:`StepOutput.reward_queries`; adding to this number changes nothing.
    """

    config: VaderConfig
    backbone: BackbonePlugin
    objective: Objective
    autocast: Callable[[], AbstractContextManager[Any]]
    backward: Callable[[torch.Tensor], bool]
    trainable: list[torch.nn.Parameter]
    draw_batch: Callable[[random.Random], Batch] | None = None
    num_reward_queries: int = 0


@dataclass
class StepOutput:
    """Result of one micro-step.

    Attributes:
        loss (`float`): the loss value (NaN or inf when not finite: the update is skipped).
        reward (`torch.Tensor`): weighted total reward per video ``(B,)``, detached.
        rewards (`dict[str, torch.Tensor]`): raw score per reward name ``(B,)``, detached.
        extras (`dict[str, float]`): anything else worth logging.
        reward_queries (`int`, *optional*): videos this micro-step scored with the rewards on this process
            (a method that samples ahead, like ``ddpo``, reports them in the step that sampled them, 0 in
            the others); ``None``: :meth:`MethodPlugin.reward_queries_per_step` of the batch size. The
            trainer sums them over the processes into ``reward_queries`` of the records.
    """

    loss: float
    reward: torch.Tensor
    rewards: dict[str, torch.Tensor]
    extras: dict[str, float] = field(default_factory=dict)
    reward_queries: int | None = None


class MethodPlugin:
    """Base class of training methods."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    Options: ClassVar[type[MethodOptions]] = MethodOptions
    #: Whether the method applies ``regularization.kl`` (the KL guard of :mod:`vader_core.regularization`);
    #: the trainer refuses a KL weight for methods that do not.
    supports_kl_guard: ClassVar[bool] = False

    def __init__(self, options: MethodOptions | None = None) -> None:
        self.options = options if options is not None else self.Options()

    def setup(self, ctx: TrainContext) -> None:
        """Called once after everything is loaded, before the first step."""

    def step(self, ctx: TrainContext, batch: Batch, generator: torch.Generator, rng: random.Random) -> StepOutput:
        """One micro-step: sample, score, and call ``ctx.backward``."""
        raise NotImplementedError

    def reward_queries_per_step(self, batch_size: int) -> int:
        """Videos a micro-step of ``batch_size`` videos scores, for steps whose :class:`StepOutput` does not
        say (``reward_queries`` is ``None``); default: ``batch_size``."""
        return batch_size
