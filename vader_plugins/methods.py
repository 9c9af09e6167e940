"""``vader``: reward backpropagation through the truncated denoising chain (arXiv 2407.08737)."""

from __future__ import annotations

import random

from vader_core.lazy import torch
from vader_core.method import Batch, MethodPlugin, StepOutput, TrainContext


class VaderMethod(MethodPlugin):
    """Sample with the last K steps in the graph, decode a few frames, backpropagate -reward into LoRA."""

    name = "vader"
    summary = "Reward-gradient alignment: backprop through the last K denoising steps into LoRA (VADER)."
    supports_kl_guard = True

    def step(self, ctx: TrainContext, batch: Batch, generator: torch.Generator, rng: random.Random) -> StepOutput:
        from vader_core.sampling import sample_with_grad

        bb, cfg = ctx.backbone, ctx.config
        with torch.no_grad(), ctx.autocast():
            cond = bb.encode_condition(batch.prompts, batch.images)
        kl_weight = cfg.regularization.kl
        guard = None
        if kl_weight > 0:
            from vader_core.regularization import KLGuard

            guard = KLGuard(bb, cond, ctx.autocast)
        video, kept, frames = sample_with_grad(
            guard.backbone if guard is not None else bb,
            cond,
            len(batch.prompts),
            generator,
            rng,
            cfg.truncation,
            cfg.memory,
            decode_all=ctx.objective.needs_clip,
            autocast=ctx.autocast,
            sampling=cfg.sampling,
            speed=cfg.speed,
        )
        with ctx.autocast():
            total, scores = ctx.objective(video, batch.prompts)
        loss = -total.mean()
        extras = {"kept_first": float(kept[0]) if kept else -1.0, "decoded_frames": float(len(frames))}
        if guard is not None:
            kl = guard.value().mean()
            loss = loss + kl_weight * kl
            extras["kl"] = float(kl.detach())
        ctx.backward(loss)
        return StepOutput(
            loss=float(loss.detach()),
            reward=total.detach(),
            rewards={k: v.detach() for k, v in scores.items()},
            extras=extras,
            reward_queries=len(batch.prompts),
        )
