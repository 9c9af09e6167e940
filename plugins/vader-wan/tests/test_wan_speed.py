"""The speed levers on Wan's transformer (diffusers' cache hooks and regional compilation): never a cached
kept call, caches that reuse nothing leave frames and gradients unchanged, compiled blocks with LoRA and
block checkpointing match eager. Speed-ups are measured in benchmarks B8, never asserted here."""

import random

import pytest
import torch
from vader_wan import WanBackbone, WanOptions

from vader_core.config import MemorySection, SamplingSection, SpeedSection, TruncationSection
from vader_core.errors import ConfigError
from vader_core.lora import add_lora
from vader_core.sampling import sample_with_grad
from vader_core.speed import apply_speed
from vader_core.testing import randomize_lora_b


def _backbone(steps=6):
    bb = WanBackbone(WanOptions(height=32, width=32, frames=5, steps=steps))
    bb.load_tiny("cpu", torch.float32, seed=0)
    add_lora(bb.denoiser, 4, 4, 0.0, bb.default_lora_targets)
    randomize_lora_b(bb.denoiser, seed=1, std=0.02)
    return bb


def _step(bb, speed=None, sampling=None, seen=None):
    h = None
    if seen is not None:
        h = bb.denoiser.register_forward_pre_hook(
            lambda m, a, k: seen.append((torch.is_grad_enabled(), m.is_cache_enabled)), with_kwargs=True
        )
    try:
        with torch.no_grad():
            cond = bb.encode_condition(["a panda riding a bike"])
        video, _, _ = sample_with_grad(
            bb,
            cond,
            1,
            torch.Generator().manual_seed(0),
            random.Random(0),
            TruncationSection(mode="last", k=1),
            MemorySection(gradient_checkpointing=True, decoded_frames=1),
            sampling=sampling,
            speed=speed,
        )
        video.mean().backward()
    finally:
        if h is not None:
            h.remove()
    grads = {n: p.grad.clone() for n, p in bb.denoiser.named_parameters() if p.grad is not None}
    bb.denoiser.zero_grad(set_to_none=True)
    return video.detach(), grads


@pytest.fixture(scope="module")
def bb():
    return _backbone()


@pytest.fixture(scope="module")
def eager(bb):
    return _step(bb)


@pytest.mark.parametrize("kind", ["first_block", "taylorseer", "pab"])
def test_cache_runs_on_the_prefix_only(bb, eager, kind):
    seen = []
    video, grads = _step(bb, SpeedSection(cache=kind), seen=seen)
    # 6 steps, the last kept: 5 prefix steps of two calls (conditional, unconditional) each, cached.
    assert seen[:10] == [(False, True)] * 10
    assert all(not cached for grad, cached in seen[10:]) and any(grad for grad, _ in seen[10:])
    assert not bb.denoiser.is_cache_enabled and torch.isfinite(video).all()
    assert grads.keys() == eager[1].keys()


def test_a_cache_that_reuses_nothing_changes_nothing(bb, eager):
    video, grads = _step(bb, SpeedSection(cache="first_block", cache_options={"threshold": 0.0}))
    assert torch.equal(video, eager[0])
    assert all(torch.equal(grads[n], eager[1][n]) for n in grads)
    reused, _ = _step(bb, SpeedSection(cache="first_block", cache_options={"threshold": 10.0}))
    assert not torch.equal(reused, eager[0])  # reusing every block after the first changes the frames


def test_guidance_interval_skips_wan_unconditional_calls(bb):
    seen = []
    _step(bb, sampling=SamplingSection(guidance_interval=(0.0, 0.5)), seen=seen)
    # steps 0-2 guided (2 calls each), steps 3-4 conditional only, the kept step guided.
    assert [g for g, _ in seen[:8]] == [False] * 8 and seen[8][0]


def test_bad_cache_options_are_one_line(bb):
    with pytest.raises(ConfigError, match="speed.cache_options") as e:
        apply_speed(bb, SpeedSection(cache="first_block", cache_options={"no_such_option": 1}))
    assert "\n" not in str(e.value)


@pytest.mark.slow  # inductor compiles the blocks on the CPU: minutes on a shared machine
def test_compiled_blocks_match_eager_with_lora_and_checkpointing():
    bb = _backbone(steps=2)
    video0, grads0 = _step(bb)
    torch._dynamo.reset()
    apply_speed(bb, SpeedSection(compile=True))
    try:
        video, grads = _step(bb)
    finally:
        torch._dynamo.reset()
    assert torch.allclose(video, video0, atol=1e-5, rtol=1e-4)
    assert all(torch.allclose(grads[n], grads0[n], atol=1e-6, rtol=1e-3) for n in grads0)
