import json
import random

import pytest
import torch

from vader_core.config import build_config
from vader_core.errors import ConfigError
from vader_core.trainer import Trainer
from vader_plugins.ddpo import PerPromptStats
from vader_plugins.tiny import TinyBackbone


def test_step_log_prob_is_the_gaussian_the_scheduler_samples_from():
    bb = TinyBackbone(TinyBackbone.Options(frames=2, steps=4, eta=1.0))
    bb.load("cpu", torch.float32)
    cond = bb.encode_condition(["a cat"], None)
    latents = bb.prepare_latents(1, torch.Generator().manual_seed(0))
    for i, t in enumerate(bb.set_timesteps(4)):
        out = bb.predict(latents, t, cond, i)
        g = torch.Generator().manual_seed(100 + i)
        prev = bb.scheduler_step(out, t, latents, i, g)
        # Same draw, replayed: the scheduler's noise in its (B*F, C, h, w) layout.
        b, c, f, h, w = latents.shape
        noise = torch.randn((b * f, c, h, w), generator=torch.Generator().manual_seed(100 + i))
        noise = noise.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)
        # Direct computation of the DDIM Gaussian (Song et al. eq. 12) with eta = 1.
        s = bb.scheduler
        a_t = s.alphas_cumprod[int(t)]
        prev_t = int(t) - 1000 // 4
        a_p = s.alphas_cumprod[prev_t] if prev_t >= 0 else s.final_alpha_cumprod
        x0 = (latents - (1 - a_t).sqrt() * out) / a_t.sqrt()
        std = ((1 - a_p) / (1 - a_t) * (1 - a_t / a_p)).sqrt()
        mean = a_p.sqrt() * x0 + (1 - a_p - std**2).sqrt() * out
        torch.testing.assert_close(prev, mean + std * noise, atol=1e-5, rtol=1e-5)
        expected = torch.distributions.Normal(mean, std).log_prob(prev).mean()
        got = bb.step_log_prob(out, t, latents, prev, i)
        torch.testing.assert_close(got, expected.reshape(1), atol=1e-5, rtol=1e-5)
        latents = prev


def test_stochastic_ddim_step_is_diffusers_and_finite_at_zero_terminal_snr():
    """The sampled DDIM step (eta 1) is diffusers' wherever diffusers' is finite; at the first step of a
    zero-terminal-SNR schedule (alpha_t = 0, the toy model's) 1 - alpha_prev - std^2 is 0, which diffusers'
    float32 rounding can turn negative and into NaN: vader's step is the Gaussian with that term at 0."""
    from diffusers import DDIMScheduler

    from vader_plugins.toy.backbone import SCHEDULES

    for name, config in SCHEDULES.items():
        bb = TinyBackbone(TinyBackbone.Options(frames=2, steps=10, eta=1.0))
        bb.load("cpu", torch.float32)
        bb.components["scheduler"] = DDIMScheduler.from_config(config)
        cond = bb.encode_condition(["a cat"], None)
        latents = bb.prepare_latents(1, torch.Generator().manual_seed(0))

        def flat(x: torch.Tensor) -> torch.Tensor:  # the scheduler's (B*F, C, h, w) layout
            return x.transpose(1, 2).flatten(0, 1)

        for i, t in enumerate(bb.set_timesteps(10)):
            out = bb.predict(latents, t, cond, i)
            prev = bb.scheduler_step(out, t, latents, i, torch.Generator().manual_seed(i))
            assert torch.isfinite(prev).all(), (name, int(t))
            ref = bb.scheduler.step(
                flat(out), t, flat(latents), eta=1.0, generator=torch.Generator().manual_seed(i), return_dict=False
            )[0]
            if torch.isfinite(ref).all():
                torch.testing.assert_close(flat(prev), ref, atol=1e-5, rtol=1e-5)
            else:  # only the zero-SNR schedule's first step: alpha_t = 0, so x0 = -v and no direction term
                assert name == "zero-snr" and i == 0
                a_prev = bb.scheduler.alphas_cumprod[int(t) - 100]
                noise = torch.randn(flat(out).shape, generator=torch.Generator().manual_seed(i))
                torch.testing.assert_close(flat(prev), -a_prev.sqrt() * flat(out) + (1 - a_prev).sqrt() * noise)
            latents = prev


def test_per_prompt_stats_normalise():
    st = PerPromptStats(buffer_size=4, min_count=2)
    a = st.update(["x", "x", "y"], torch.tensor([1.0, 3.0, 5.0]))
    # x has 2 samples: its own mean 2, std 1; y has 1 sample: batch statistics
    torch.testing.assert_close(a[:2], torch.tensor([-1.0, 1.0]), atol=1e-4, rtol=1e-4)
    batch = torch.tensor([1.0, 3.0, 5.0])
    torch.testing.assert_close(a[2], (5.0 - batch.mean()) / (batch.std(unbiased=False) + 1e-6))


def _cfg(out, steps, extra=()):
    return build_config(
        None,
        [
            f"output.dir={out}",
            f"train.max_steps={steps}",
            "output.logger=none",
            "validation.every=0",
            "validation.save_videos=false",
            "validation.seeds=[0]",
            "backbone.steps=3",
            "sampling.eta=1.0",
            "output.checkpoint_every=0",
            "train.prompts=[a red circle, a blue square]",
            *extra,
        ],
        {"rewards": ["saturation"], "device": "cpu", "method.name": "ddpo"},
    )


def test_ddpo_needs_stochastic_sampler(tmp_path):
    cfg = build_config(None, [f"output.dir={tmp_path}", "train.max_steps=1"], {"method.name": "ddpo", "device": "cpu"})
    with pytest.raises(ConfigError, match="sampling.eta"):
        Trainer(cfg, progress=False).run()


def test_ddpo_runs_end_to_end_with_importance_sampling(tmp_path):
    extra = [
        "optim.grad_accum=2",
        "optim.lr=1e-2",
        "method.sample_batches=4",
        "train.batch_size=2",
        "method.stat_min_count=4",
    ]
    Trainer(_cfg(tmp_path, 4, extra), progress=False).run()
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all(r["loss"] is not None and "saturation" in r["rewards"] for r in rows)
    # one epoch (4 micro-batches of 2 videos) feeds two optimiser steps
    assert [r["reward_queries"] for r in rows] == [8, 8, 16, 16]
    # the second step of an epoch trains on trajectories sampled before the first update:
    # ratios leave the (default, 1e-4) clip range there, and never on the first
    assert [r["extras"]["clipfrac"] > 0 for r in rows] == [False, True, False, True]


def test_ddpo_update_raises_likelihood_of_advantaged_trajectories():
    """One PPO step must increase sum_i A_i * log p(trajectory_i): the policy-gradient direction."""
    from vader_core.lora import add_lora, lora_parameters
    from vader_core.method import Batch, TrainContext
    from vader_core.resolve import build_objective
    from vader_plugins.ddpo import DDPOMethod

    torch.manual_seed(0)
    bb = TinyBackbone(TinyBackbone.Options(frames=2, steps=3, eta=1.0))
    bb.load("cpu", torch.float32)
    add_lora(bb.denoiser, 4, 4, 0.0, bb.default_lora_targets)
    params = lora_parameters(bb.denoiser)
    objective = build_objective(build_config(None, [], {"rewards": ["saturation"]}).rewards)
    objective.load("cpu", torch.float32)
    from contextlib import nullcontext

    def backward(loss):
        loss.backward()
        return True

    method = DDPOMethod(DDPOMethod.Options(sample_batches=1, per_prompt_stat_tracking=False, clip_range=10.0))
    ctx = TrainContext(
        config=build_config(None, [], {}),
        backbone=bb,
        objective=objective,
        autocast=nullcontext,
        backward=backward,
        trainable=params,
        draw_batch=None,
    )
    method.setup(ctx)
    batch = Batch(["a cat", "a dog", "a fox", "an owl"])
    method._collect(ctx, batch, torch.Generator().manual_seed(1), random.Random(0))
    tr = method.buffer[0]

    def surrogate():
        with torch.no_grad():
            total = 0.0
            for j, t in enumerate(tr.timesteps):
                out = bb.predict(tr.latents[j], t, tr.cond, j)
                total += float((tr.advantages * bb.step_log_prob(out, t, tr.latents[j], tr.latents[j + 1], j)).sum())
            return total

    before = surrogate()
    method.step(ctx, batch, torch.Generator().manual_seed(2), random.Random(0))
    with torch.no_grad():
        for p in params:
            p -= 1e-3 * p.grad / (p.grad.norm() + 1e-12)
    assert surrogate() > before
