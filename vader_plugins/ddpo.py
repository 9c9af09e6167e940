"""``ddpo``: the policy-gradient baseline (Black et al. 2023, "Training Diffusion Models with
Reinforcement Learning"), on the same backbones, rewards, LoRA and trainer as ``vader``.

Each *epoch* samples ``sample_batches`` micro-batches of trajectories with the backbone's stochastic
sampler (no gradient): DDIM with ``eta > 0`` on the UNet backbones, the Flow-GRPO SDE step on
flow-matching ones (``vader_core.dit_t2v``), recording every step's latents and the log-probability of the step taken,
and scores the final videos once (these are the reward queries). Advantages are the rewards
normalised per prompt (or over the epoch until a prompt has ``stat_min_count`` samples), clipped to
``adv_clip_max``. Each later micro-step trains on one stored micro-batch: for a random
``timestep_fraction`` of the steps it recomputes the step's log-probability under the current LoRA
weights and minimises the PPO clipped surrogate ``max(-A r, -A clip(r, 1 - eps, 1 + eps))`` with
``r = exp(logp_new - logp_old)``. Trajectories sampled before earlier optimiser steps of the epoch make
the importance ratio and the clipping matter, as in the original.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from vader_core.lazy import torch
from vader_core.method import Batch, MethodOptions, MethodPlugin, StepOutput, TrainContext


class DDPOOptions(MethodOptions):
    sample_batches: int = Field(
        4, ge=1, description="Micro-batches of trajectories sampled per epoch before training on them."
    )
    clip_range: float = Field(1e-4, gt=0, description="PPO clip range eps of the importance ratio.")
    adv_clip_max: float = Field(10.0, gt=0, description="Advantages are clipped to [-x, x].")
    timestep_fraction: float = Field(
        1.0, gt=0, le=1, description="Fraction of the denoising steps trained per trajectory."
    )
    per_prompt_stat_tracking: bool = Field(True, description="Normalise rewards per prompt (else per epoch).")
    stat_buffer_size: int = Field(16, ge=1, description="Rewards remembered per prompt.")
    stat_min_count: int = Field(16, ge=1, description="Samples a prompt needs before its own statistics are used.")


@dataclass
class _Trajectory:
    batch: Batch
    cond: Any
    timesteps: list[Any]
    latents: list[Any]  # x_T ... x_0, detached
    log_probs: Any  # (T, B)
    advantages: Any  # (B,)
    reward: Any  # (B,)
    rewards: dict[str, Any]


class PerPromptStats:
    """Running reward statistics per prompt (a bounded buffer each), as in DDPO."""

    def __init__(self, buffer_size: int, min_count: int) -> None:
        self.buffer_size, self.min_count = buffer_size, min_count
        self.stats: dict[str, deque[float]] = {}

    def update(self, prompts: list[str], rewards: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(rewards)
        batch_mean, batch_std = rewards.mean(), rewards.std(unbiased=False) + 1e-6
        for p in set(prompts):
            idx = [i for i, q in enumerate(prompts) if q == p]
            buf = self.stats.setdefault(p, deque(maxlen=self.buffer_size))
            buf.extend(float(rewards[i]) for i in idx)
            if len(buf) < self.min_count:
                mean, std = batch_mean, batch_std
            else:
                t = torch.tensor(list(buf))
                mean, std = t.mean(), t.std(unbiased=False) + 1e-6
            out[idx] = (rewards[idx] - mean) / std
        return out


class DDPOMethod(MethodPlugin):
    """Policy gradient with importance sampling and PPO clipping over the denoising chain (DDPO)."""

    name = "ddpo"
    summary = "Policy-gradient baseline: DDPO (PPO over the denoising chain), for comparison with vader."
    Options = DDPOOptions

    def setup(self, ctx: TrainContext) -> None:
        self.buffer: deque[_Trajectory] = deque()
        self.tracker = PerPromptStats(self.options.stat_buffer_size, self.options.stat_min_count)
        bb = ctx.backbone
        # Fail early, with the fix, if the sampler is deterministic.
        bb.set_timesteps(bb.options.steps)
        z = bb.prepare_latents(1, torch.Generator().manual_seed(0))
        t0 = bb.set_timesteps(bb.options.steps)[0]
        bb.step_log_prob(torch.zeros_like(z), t0, z, z, 0)

    # ------------------------------------------------------------------ sampling
    def sample(self, ctx: TrainContext, batch: Batch, generator: torch.Generator) -> _Trajectory:
        with torch.no_grad():
            return self._sample(ctx, batch, generator)

    def _sample(self, ctx: TrainContext, batch: Batch, generator: torch.Generator) -> _Trajectory:
        bb = ctx.backbone
        with ctx.autocast():
            cond = bb.encode_condition(batch.prompts, batch.images)
        from vader_core.sampling import decode, prepare_latents

        timesteps = bb.set_timesteps(bb.options.steps)
        latents = prepare_latents(bb, len(batch.prompts), generator, cond)
        traj, logps = [latents], []
        for i, t in enumerate(timesteps):
            with ctx.autocast():
                out = bb.predict(latents, t, cond, i)
            prev = bb.scheduler_step(out, t, latents, i, generator)
            logps.append(bb.step_log_prob(out, t, latents, prev, i))
            latents = prev
            traj.append(latents)
        with ctx.autocast():
            video = decode(
                bb, latents, None, chunk_size=ctx.config.memory.decode_chunk_size, cond=cond, generator=generator
            ).float()
            total, scores = ctx.objective(video, batch.prompts)
        return _Trajectory(
            batch,
            cond,
            list(timesteps),
            traj,
            torch.stack(logps),
            None,
            total.float(),
            {k: v.float() for k, v in scores.items()},
        )

    def _collect(self, ctx: TrainContext, first: Batch, generator: torch.Generator, rng: random.Random) -> int:
        """Sample and score ``sample_batches`` micro-batches into the buffer; returns the videos scored."""
        from vader_core.lora import set_lora_training

        set_lora_training(ctx.backbone.denoiser, False)  # sampling policy without LoRA dropout
        batches = [first] + [ctx.draw_batch(rng) for _ in range(self.options.sample_batches - 1)]  # type: ignore[misc]
        trajs = [self.sample(ctx, b, generator) for b in batches]
        set_lora_training(ctx.backbone.denoiser, True)
        prompts = [p for tr in trajs for p in tr.batch.prompts]
        rewards = torch.cat([tr.reward.cpu() for tr in trajs])
        if self.options.per_prompt_stat_tracking:
            adv = self.tracker.update(prompts, rewards)
        else:
            adv = (rewards - rewards.mean()) / (rewards.std(unbiased=False) + 1e-6)
        adv = adv.clamp(-self.options.adv_clip_max, self.options.adv_clip_max)
        offset = 0
        for tr in trajs:
            n = len(tr.batch.prompts)
            tr.advantages = adv[offset : offset + n]
            offset += n
            self.buffer.append(tr)
        return len(prompts)

    # ------------------------------------------------------------------ training
    def step(self, ctx: TrainContext, batch: Batch, generator: torch.Generator, rng: random.Random) -> StepOutput:
        queries = self._collect(ctx, batch, generator, rng) if not self.buffer else 0
        tr = self.buffer.popleft()
        bb = ctx.backbone
        steps = len(tr.timesteps)
        n_train = max(1, int(round(steps * self.options.timestep_fraction)))
        order = rng.sample(range(steps), n_train)
        eps = self.options.clip_range
        adv = tr.advantages.to(bb.device)
        total_loss, clipfrac = 0.0, 0.0
        # The importance ratio compares one policy at two parameter values: keep LoRA dropout off,
        # as during sampling, or the ratio measures dropout noise.
        from vader_core.lora import set_lora_training

        set_lora_training(bb.denoiser, False)
        for j in order:
            t = tr.timesteps[j]
            with ctx.autocast():
                out = bb.predict(tr.latents[j], t, tr.cond, j)
            logp = bb.step_log_prob(out, t, tr.latents[j], tr.latents[j + 1], j)
            ratio = torch.exp(logp - tr.log_probs[j].to(logp.device))
            unclipped = -adv * ratio
            clipped = -adv * torch.clamp(ratio, 1.0 - eps, 1.0 + eps)
            loss = torch.maximum(unclipped, clipped).mean() / n_train
            ctx.backward(loss)
            total_loss += float(loss.detach())
            clipfrac += float(((ratio - 1.0).abs() > eps).float().mean()) / n_train
        set_lora_training(bb.denoiser, True)
        return StepOutput(
            loss=total_loss,
            reward=tr.reward,
            rewards=tr.rewards,
            extras={"clipfrac": clipfrac, "advantage_abs": float(adv.abs().mean())},
            reward_queries=queries,
        )
