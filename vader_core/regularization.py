"""The KL guard: keep the LoRA model's denoising steps close to the base model's.

At each *kept* step (a denoiser call that keeps autograd), the guard evaluates the base model on the
same input, LoRA switched off through peft and without autograd, and measures how far the step's
mean moves::

    kl_t = mean over latent elements of (mu_lora(x_t) - mu_base(x_t)) ** 2

For Gaussian reverse steps ``p(x_{t-1} | x_t) = N(mu(x_t), sigma_t^2 I)`` with one variance for both
models, ``KL(p_lora || p_base) = |mu_lora - mu_base|^2 / (2 sigma_t^2)``: ``kl_t`` is that KL up to the
factor ``2 sigma_t^2 / n`` (which a deterministic sampler, DDIM with eta 0, leaves undefined, hence the
factor is dropped). The video's value is the sum over its kept steps (the KL of the kept part of the
trajectory, by the chain rule), one number per video.

The mean is taken on the step itself, not on the prediction: both means come from
``backbone.scheduler_step`` with the same latents, timestep and noise, so the guard needs no new
backbone API and holds alike for epsilon-, v- and flow-prediction backbones (their scheduler maps a
prediction to a step). The noise cancels: the base step draws the same noise from a copy of the
generator. Schedulers with internal state (DPM-Solver multistep, UniPC keep previous outputs and a step
counter) are handled by stepping the base prediction on a snapshot of the scheduler taken before the
real step: both steps then read the same history (the LoRA run's earlier outputs) and differ only in
the current prediction, and the real scheduler advances once, as without the guard. Every diffusers
step is linear in the current prediction for fixed state, so the distance is the prediction difference
mapped to the step consistently.

Gradient: the base prediction has none; ``mu_lora`` carries the gradient of the LoRA prediction (and of
``x_t`` through earlier kept steps), so the term's gradient reaches only the LoRA parameters.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:  # pragma: no cover
    from .backbone import BackbonePlugin


@contextmanager
def adapters_disabled(model: torch.nn.Module) -> Iterator[None]:
    """Run ``model`` without its peft adapters (the base model), restoring them and their
    ``requires_grad`` flags afterwards (peft's ``enable_adapters`` re-enables gradients)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
    flags = {id(p): p.requires_grad for m in layers for p in m.parameters()}
    was_disabled = [m.disable_adapters for m in layers]
    for m in layers:
        m.enable_adapters(False)
    try:
        yield
    finally:
        for m, off in zip(layers, was_disabled, strict=True):
            m.enable_adapters(not off)
        for m in layers:
            for p in m.parameters():
                p.requires_grad_(flags[id(p)])


def snapshot_scheduler(scheduler: Any) -> Any:
    """A copy of a diffusers scheduler whose ``step`` leaves the original's state untouched.

    Shallow: tensors (schedule tables, previous outputs still in the graph) are shared, never
    modified in place by diffusers; the containers a multistep scheduler mutates in place (lists of
    previous model outputs and timesteps, dicts) are copied.
    """
    snap = copy.copy(scheduler)
    for k, v in vars(scheduler).items():
        if isinstance(v, list):
            setattr(snap, k, list(v))
        elif isinstance(v, dict) and k != "_internal_dict":
            setattr(snap, k, dict(v))
    return snap


def _clone_generator(g: torch.Generator | None) -> torch.Generator | None:
    if g is None:
        return None
    c = torch.Generator(device=g.device)
    c.set_state(g.get_state())
    return c


class KLGuard:
    """Measures the KL term of one sampling call; pass :attr:`backbone` to the sampling loop.

    Args:
        backbone (`BackbonePlugin`): the loaded backbone, LoRA on its denoiser.
        cond (`Any`): the condition of this batch (what ``encode_condition`` returned).
        autocast (`Callable[[], ContextManager]`, *optional*): the run's mixed-precision context,
            used for the base model's call as for the LoRA model's.

    After sampling, :meth:`value` is the per-video term ``(B,)`` (zeros if no step was kept) and
    :attr:`steps` the number of kept steps measured.
    """

    def __init__(
        self, backbone: BackbonePlugin, cond: Any, autocast: Callable[[], AbstractContextManager[Any]] = nullcontext
    ) -> None:
        self.inner = backbone
        self.cond = cond
        self.autocast = autocast
        self.terms: list[torch.Tensor] = []
        self.backbone = _GuardedBackbone(self)

    @property
    def steps(self) -> int:
        return len(self.terms)

    def value(self) -> torch.Tensor:
        if not self.terms:
            return torch.zeros(())
        return torch.stack(self.terms).sum(dim=0)

    def _step(
        self,
        model_output: torch.Tensor,
        t: torch.Tensor,
        latents: torch.Tensor,
        step_index: int,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        bb = self.inner
        # A kept step is one whose prediction carries autograd (the loop differentiates its call).
        if not (torch.is_grad_enabled() and model_output.requires_grad):
            return bb.scheduler_step(model_output, t, latents, step_index, generator)
        snap = snapshot_scheduler(bb.components["scheduler"])
        noise = _clone_generator(generator)
        prev = bb.scheduler_step(model_output, t, latents, step_index, generator)
        with torch.no_grad(), adapters_disabled(bb.denoiser), self.autocast():
            base_out = bb.predict(latents, t, self.cond, step_index)
        real = bb.components["scheduler"]
        bb.components["scheduler"] = snap
        try:
            base_prev = bb.scheduler_step(base_out.detach(), t, latents, step_index, noise)
        finally:
            bb.components["scheduler"] = real
        diff = prev.float() - base_prev.float()
        self.terms.append(diff.pow(2).flatten(1).mean(dim=1))
        return prev


class _GuardedBackbone:
    """The backbone seen by the sampling loop: every attribute is the real backbone's, except that
    ``scheduler_step`` also measures the guard term at kept steps."""

    def __init__(self, guard: KLGuard) -> None:
        object.__setattr__(self, "_guard", guard)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._guard.inner, name)

    def scheduler_step(
        self,
        model_output: torch.Tensor,
        t: torch.Tensor,
        latents: torch.Tensor,
        step_index: int,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        return self._guard._step(model_output, t, latents, step_index, generator)
