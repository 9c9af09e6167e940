"""The one denoising loop of vader, shared by every backbone.

Truncated backpropagation: steps before the first kept step run without autograd. From the first
kept step on, the latents stay in the graph; the denoiser calls of *kept* steps are differentiated
(optionally recomputed in backward, whole or block by block: :mod:`vader_core.checkpointing`), those
of other later steps are
evaluated without autograd and enter the scheduler update as constants, so the gradient still flows
through the cheap scheduler arithmetic but no denoiser activations are stored for them.

Frame subsampling: only the chosen latent frames are decoded (with gradient) for frame rewards.
"""

from __future__ import annotations

import inspect
import random
import warnings
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

import torch

from .checkpointing import CheckpointPlan, decoder_checkpointing

if TYPE_CHECKING:  # pragma: no cover
    from .backbone import BackbonePlugin
    from .config import MemorySection, SamplingSection, SpeedSection, TruncationSection
    from .speed import PrefixPlan


def kept_steps(num_steps: int, truncation: TruncationSection, rng: random.Random) -> list[int]:
    """Indices of the denoising steps whose denoiser call keeps autograd."""
    if truncation.mode == "specific":
        return sorted(truncation.steps or [])
    k = min(truncation.k, num_steps)
    if truncation.mode == "last":
        return list(range(num_steps - k, num_steps))
    start = rng.randint(0, num_steps - k)
    return list(range(start, start + k))


def select_frames(
    num_frames: int, count: int | None, selection: str, rng: random.Random, window: int | None = None
) -> list[int]:
    """Frame indices to decode: all, ``count`` at random, or ``count`` evenly spaced; with ``window``, among the
    first ``window`` frames only (``memory.frame_window``)."""
    if count is None:
        return list(range(num_frames))
    if window is not None:
        num_frames = min(num_frames, window)
    if count >= num_frames:
        return list(range(num_frames))
    if selection == "uniform":
        if count == 1:
            return [num_frames // 2]
        step = (num_frames - 1) / (count - 1)
        return sorted({round(i * step) for i in range(count)})
    return sorted(rng.sample(range(num_frames), count))


def _takes_cond(method: Any) -> bool:
    """Whether a backbone's ``prepare_latents`` or ``decode`` accepts ``cond``; once per implementation, with a
    DeprecationWarning for one that does not (declared before ``cond`` joined the contract)."""
    fn = getattr(method, "__func__", method)
    if fn not in _TAKES_COND:
        params = inspect.signature(method).parameters
        ok = "cond" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        if not ok:
            owner = getattr(method, "__self__", None)
            name = getattr(owner, "name", "") or type(owner).__name__
            warnings.warn(
                f"backbone `{name}`: `{fn.__name__}` takes no `cond` keyword; declare `cond=None` "
                "(docs/plugins.md): backbones that do not will stop working in a later release",
                DeprecationWarning,
                stacklevel=3,
            )
        _TAKES_COND[fn] = ok
    return _TAKES_COND[fn]


_TAKES_COND: dict[Any, bool] = {}


def _takes(method: Any, name: str) -> bool:
    """Whether ``method`` accepts the keyword ``name`` (declared, or through ``**kwargs``): for opt-in arguments."""
    fn = getattr(method, "__func__", method)
    key = (fn, name)
    if key not in _TAKES:
        params = inspect.signature(method).parameters
        _TAKES[key] = name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    return _TAKES[key]


_TAKES: dict[tuple[Any, str], bool] = {}


def prepare_latents(
    backbone: BackbonePlugin, batch_size: int, generator: torch.Generator | None, cond: Any = None
) -> torch.Tensor:
    """``backbone.prepare_latents(batch_size, generator, cond=cond)``: the condition this batch was encoded
    with (a backbone written before ``cond`` joined the contract gets the call without it)."""
    if _takes_cond(backbone.prepare_latents):
        return backbone.prepare_latents(batch_size, generator, cond=cond)
    return backbone.prepare_latents(batch_size, generator)


def decode(
    backbone: BackbonePlugin,
    latents: torch.Tensor,
    frames: Sequence[int] | None = None,
    chunk_size: int | None = None,
    cond: Any = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``backbone.decode(latents, frames, chunk_size=chunk_size, cond=cond, generator=generator)``: ``cond``
    unless the backbone was written before it joined the contract (with a DeprecationWarning), ``generator``
    only to a ``decode`` that declares it (opt-in, for a decoder that draws noise)."""
    kwargs: dict[str, Any] = {"chunk_size": chunk_size}
    if _takes_cond(backbone.decode):
        kwargs["cond"] = cond
    if _takes(backbone.decode, "generator"):
        kwargs["generator"] = generator
    return backbone.decode(latents, frames, **kwargs)


def denoise(
    backbone: BackbonePlugin,
    cond: Any,
    latents: torch.Tensor,
    timesteps: Sequence[torch.Tensor],
    generator: torch.Generator | None,
    kept: Sequence[int] = (),
    gradient_checkpointing: bool | str = False,
    autocast: Callable[[], AbstractContextManager[Any]] = nullcontext,
    on_step: Callable[[int], None] | None = None,
    split_guidance: bool = True,
    prefix: PrefixPlan | None = None,
) -> torch.Tensor:
    """Run the chain from ``latents`` over ``timesteps``; autograd only where described above.

    ``gradient_checkpointing`` is a level of :mod:`vader_core.checkpointing` (``off``/``call``/``block``,
    or ``False``/``True``); ``split_guidance`` lets a checkpointed kept call run its guidance halves one
    after the other; ``prefix`` (:class:`vader_core.speed.PrefixPlan`) runs the no-gradient calls before
    the first kept step with a cache or without their unconditional half, and is closed before that step.
    """
    kept_set = set(kept)
    first = min(kept_set) if kept_set else len(timesteps)
    plan: CheckpointPlan | None = None
    try:
        for i, t in enumerate(timesteps):
            in_graph = i >= first and torch.is_grad_enabled()
            if i in kept_set and in_graph:
                if prefix is not None:
                    prefix.close()
                if plan is None:
                    plan = CheckpointPlan.for_backbone(backbone, gradient_checkpointing, split_guidance)
                with autocast():
                    out = plan.call(backbone.predict, latents, t, cond, i)
            else:
                around = prefix.call(i, t) if prefix is not None else nullcontext()
                with torch.no_grad(), autocast(), around:
                    out = backbone.predict(latents, t, cond, i)
            with torch.set_grad_enabled(in_graph):
                latents = backbone.scheduler_step(out, t, latents, i, generator)
            if on_step is not None:
                on_step(i)
    finally:
        if prefix is not None:
            prefix.close()
    return latents


def generate(
    backbone: BackbonePlugin,
    prompts: Sequence[str],
    images: Sequence[Any] | None,
    generator: torch.Generator,
    steps: int | None = None,
    autocast: Callable[[], AbstractContextManager[Any]] = nullcontext,
    chunk_size: int | None = None,
    on_step: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Sample videos without gradient; returns ``(B, F, 3, H, W)`` float32 in [0, 1]."""
    with torch.no_grad():
        with autocast():
            cond = backbone.encode_condition(list(prompts), list(images) if images is not None else None)
        # As in diffusers' pipelines: the initial sigma of some schedulers (EDM Euler) depends on the schedule.
        timesteps = backbone.set_timesteps(steps or backbone.options.steps)
        latents = prepare_latents(backbone, len(prompts), generator, cond)
        latents = denoise(backbone, cond, latents, timesteps, generator, autocast=autocast, on_step=on_step)
        with autocast():
            return decode(backbone, latents, None, chunk_size=chunk_size, cond=cond, generator=generator).float()


def sample_with_grad(
    backbone: BackbonePlugin,
    cond: Any,
    batch_size: int,
    generator: torch.Generator,
    rng: random.Random,
    truncation: TruncationSection,
    memory: MemorySection,
    decode_all: bool = False,
    autocast: Callable[[], AbstractContextManager[Any]] = nullcontext,
    sampling: SamplingSection | None = None,
    speed: SpeedSection | None = None,
) -> tuple[torch.Tensor, list[int], list[int]]:
    """Sample a batch keeping the truncated graph and decode the chosen frames with gradient.

    ``sampling`` and ``speed`` (the run's sections) choose the training chain's steps
    (``sampling.train_steps``) and how its calls before the first kept one run (``sampling.guidance_interval``,
    ``speed.cache``: :mod:`vader_core.speed`); without them the chain is the backbone's own.

    Returns the decoded video ``(B, f, 3, H, W)``, the kept step indices and the decoded frame indices.
    """
    from .speed import PrefixPlan

    steps = (sampling.train_steps if sampling is not None else None) or backbone.options.steps
    timesteps = backbone.set_timesteps(steps)
    latents = prepare_latents(backbone, batch_size, generator, cond)
    kept = kept_steps(len(timesteps), truncation, rng)
    prefix = PrefixPlan.for_config(backbone, len(timesteps), min(kept, default=len(timesteps)), sampling, speed)
    latents = denoise(
        backbone,
        cond,
        latents,
        timesteps,
        generator,
        kept=kept,
        gradient_checkpointing=memory.gradient_checkpointing,
        autocast=autocast,
        split_guidance=memory.split_guidance,
        prefix=prefix,
    )
    n = backbone.num_latent_frames(latents)
    frames = select_frames(
        n, None if decode_all else memory.decoded_frames, memory.frame_selection, rng, memory.frame_window
    )
    with autocast(), decoder_checkpointing(backbone, memory.gradient_checkpointing):
        video = decode(backbone, latents, frames, chunk_size=memory.decode_chunk_size, cond=cond, generator=generator)
    return video.float(), kept, frames
