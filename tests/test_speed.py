"""Speed levers of a training step (vader_core.speed): what each does to the chain's calls, the errors of
options a denoiser cannot take, fewer training than validation steps. Timings are in benchmarks B8 only."""

import random

import pytest
import torch

from vader_core.checkpointing import conditional_only, run_guided
from vader_core.config import MemorySection, SamplingSection, SpeedSection, TruncationSection, build_config
from vader_core.errors import ConfigError
from vader_core.lora import add_lora
from vader_core.resolve import resolve_config
from vader_core.sampling import sample_with_grad
from vader_core.speed import PrefixPlan, apply_speed
from vader_core.testing import QUIET_TRAINING, assert_one_line_error, randomize_lora_b, run_cli, set_options
from vader_plugins.tiny import TinyBackbone


@pytest.fixture(scope="module")
def backbone():
    bb = TinyBackbone(TinyBackbone.Options(frames=2, steps=5, guidance=2.0))
    bb.load("cpu", torch.float32)
    add_lora(bb.denoiser, 4, 4, 0.0, bb.default_lora_targets)
    randomize_lora_b(bb.denoiser, seed=1, std=0.05)
    return bb


def _calls(bb, sampling=None, speed=None, k=1, memory=None):
    """(grad enabled, batch) of every denoiser call of one training chain, the video and the LoRA gradients."""
    seen = []
    h = bb.denoiser.register_forward_pre_hook(lambda m, a: seen.append((torch.is_grad_enabled(), a[0].shape[0])))
    try:
        cond = bb.encode_condition(["a cat"], None)
        video, kept, _ = sample_with_grad(
            bb,
            cond,
            1,
            torch.Generator().manual_seed(0),
            random.Random(0),
            TruncationSection(mode="last", k=k),
            memory or MemorySection(gradient_checkpointing=False, decoded_frames=1),
            sampling=sampling,
            speed=speed,
        )
        video.mean().backward()
    finally:
        h.remove()
    grads = {n: p.grad.clone() for n, p in bb.denoiser.named_parameters() if p.grad is not None}
    bb.denoiser.zero_grad(set_to_none=True)
    return seen, video.detach(), grads


def test_guidance_interval_skips_the_unconditional_half_of_prefix_calls_only(backbone):
    seen, video, grads = _calls(backbone, SamplingSection(guidance_interval=(0.0, 0.5)))
    # 5 steps, the last kept: steps 0-2 (fractions 0, 0.2, 0.4) guided, step 3 (0.6) conditional only,
    # the kept step 4 guided (batch 2, with gradient).
    assert seen == [(False, 2), (False, 2), (False, 2), (False, 1), (True, 2)]
    base, video0, grads0 = _calls(backbone)
    assert base == [(False, 2)] * 4 + [(True, 2)]
    assert not torch.equal(video, video0) and grads.keys() == grads0.keys()
    assert PrefixPlan(backbone, 10, 8, guidance_interval=(0.2, 1.0)).guided(9)  # kept and later: guided
    assert [PrefixPlan(backbone, 10, 8, guidance_interval=(0.2, 1.0)).guided(i) for i in (0, 1, 2, 7)] == [
        False,
        False,
        True,
        True,
    ]


def test_conditional_only_is_the_conditional_prediction():
    def fn(x, text):
        return x * 2 + text

    x, text = torch.randn(4, 3), torch.randn(4, 3)
    with conditional_only():
        out = run_guided(fn, x, text)
    uncond, cond = out.chunk(2)
    expected = fn(x[2:], text[2:])
    assert torch.equal(cond, expected) and torch.equal(uncond, expected)
    g = 7.5
    assert torch.allclose(uncond + g * (cond - uncond), expected)  # the guided combination is the conditional one
    assert torch.equal(run_guided(fn, x, text), fn(x, text))  # outside the block: unchanged


def test_train_steps_shorten_the_training_chain_only(backbone):
    seen, _, _ = _calls(backbone, SamplingSection(train_steps=3))
    assert len(seen) == 3 and seen[-1][0] and backbone.options.steps == 5
    cfg = build_config(
        None, ["sampling.train_steps=2", "truncation.k=3"], {"backbone.name": "tiny", "rewards": ["brightness"]}
    )
    with pytest.raises(ConfigError, match=r"truncation.k. must be <= sampling.train_steps \(2\)"):
        resolve_config(cfg)


def test_guidance_interval_is_checked():
    with pytest.raises(Exception, match="0 <= start <= end <= 1"):
        SamplingSection(guidance_interval=(0.6, 0.2))


def test_unet_denoisers_refuse_cache_and_compile_with_one_line(backbone):
    for speed, words in (
        (SpeedSection(cache="pab"), "has no diffusers cache hooks"),
        (SpeedSection(compile=True), "declares no repeated blocks"),
        (SpeedSection(attention_backend="nope"), "cannot be used here"),
    ):
        with pytest.raises(ConfigError, match=words) as e:
            apply_speed(backbone, speed)
        assert "\n" not in str(e.value)
    apply_speed(backbone, SpeedSection(attention_backend="native"))  # always there
    _calls(backbone)  # and the chain still runs


def test_cli_states_a_backend_that_is_not_installed(tmp_path):
    args = ["train", "--backbone", "tiny", "--max-steps", "1", "--output-dir", tmp_path / "run"]
    res = run_cli([*args, *set_options(QUIET_TRAINING), "--set", "speed.attention_backend=flash_hub_nope"])
    assert_one_line_error(res, "speed.attention_backend", "flash_hub_nope")
