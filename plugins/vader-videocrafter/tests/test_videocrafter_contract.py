"""The backbone contract on tiny random VideoCrafter2 components, and the plugin's defaults."""

import pytest
import torch
from vader_videocrafter import HUB_ID, VideoCrafterBackbone, VideoCrafterOptions

from vader_core.errors import ConfigError
from vader_core.testing import BackboneContractTests, PluginPackageContractTests


class TestVideoCrafter(BackboneContractTests):
    """The official sampler: DDIM, eta 1, guidance 12, fps 24 (at a tiny size)."""

    backbone_cls = VideoCrafterBackbone
    options = {"height": 32, "width": 32, "frames": 3, "steps": 2}
    invalid_options = [{"frames": 0}, {"no_such_option_xyz": 1}, {"height": 36}, {"scheduler": "dpmsolver"}]


class TestVideoCrafterDeterministicNoGuidance(BackboneContractTests):
    """eta 0 (deterministic DDIM) and guidance off: the other branches of the steps."""

    backbone_cls = VideoCrafterBackbone
    options = {"height": 32, "width": 48, "frames": 2, "steps": 3, "eta": 0.0, "guidance": 1.0}


class TestPackage(PluginPackageContractTests):
    package = "vader_videocrafter"
    distribution = "vader-videocrafter"
    plugin_classes = [VideoCrafterBackbone]


def test_defaults_are_the_official_ones():
    o = VideoCrafterOptions()
    assert (o.model, o.height, o.width, o.frames, o.steps, o.guidance, o.eta, o.fps, o.scheduler) == (
        HUB_ID,
        320,
        512,
        12,
        25,
        12.0,
        1.0,
        24,
        "ddim",
    )
    assert VideoCrafterBackbone.default_lora_targets == ("to_q", "to_k", "to_v")
    assert VideoCrafterBackbone.conditioning == "text"


def test_official_ddim_timesteps_and_alphas():
    """25 steps: timesteps 961, 921, ..., 1 (uniform + 1), the last one stepping to alphas_cumprod[0]."""
    from diffusers import DDIMScheduler

    bb = VideoCrafterBackbone(VideoCrafterOptions(steps=25))
    bb.load_tiny("cpu", torch.float32)
    ts = [int(t) for t in bb.set_timesteps(25)]
    assert ts == list(range(961, 0, -40))
    sched = bb.scheduler
    assert isinstance(sched, DDIMScheduler)
    sched.set_timesteps(25)
    assert [int(t) for t in sched.timesteps] == ts  # diffusers' DDIM with this configuration: same timesteps
    a_t, a_prev = bb._chain[-1, 0], bb._chain[-1, 1]
    torch.testing.assert_close(a_t, sched.alphas_cumprod[1], rtol=1e-6, atol=0)
    torch.testing.assert_close(a_prev, sched.alphas_cumprod[0], rtol=1e-6, atol=0)


def test_step_without_rescale_is_diffusers_ddim():
    """With ``use_scale`` off, the official step is diffusers' DDIMScheduler.step (eta 1, same noise)."""

    class NoScale(VideoCrafterBackbone):
        schedule = {**VideoCrafterBackbone.schedule, "use_scale": False}

    bb = NoScale(VideoCrafterOptions(steps=25, eta=1.0))
    bb.load_tiny("cpu", torch.float32)
    timesteps = bb.set_timesteps(25)
    sched = bb.scheduler
    sched.set_timesteps(25)
    g = torch.Generator().manual_seed(0)
    x, eps = torch.randn(1, 4, 3, 8, 8, generator=g), torch.randn(1, 4, 3, 8, 8, generator=g)
    for i in (0, 12, 24):
        ours = bb.scheduler_step(eps, timesteps[i], x, i, torch.Generator().manual_seed(i))
        ref = sched.step(eps, timesteps[i], x, eta=1.0, generator=torch.Generator().manual_seed(i)).prev_sample
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_rescale_changes_the_step():
    bb = VideoCrafterBackbone(VideoCrafterOptions(steps=25))
    bb.load_tiny("cpu", torch.float32)
    bb.set_timesteps(25)
    _, _, _, s_t, s_prev = bb._chain[-1]  # the last step: scale_arr[1] -> scale_arr[0] (= 1)
    assert float(s_prev) == 1.0 and 0.99 < float(s_t) < 1.0
    _, _, _, s_t, s_prev = bb._chain[0]  # the first: t = 961, both on the plateau of 0.7
    assert abs(float(s_t) - 0.7) < 1e-6 and abs(float(s_prev) - 0.7) < 1e-6


def test_step_log_prob_is_the_density_of_the_step():
    """scheduler_step samples from the Gaussian whose log-density step_log_prob returns (for ddpo)."""
    bb = VideoCrafterBackbone(VideoCrafterOptions(steps=25))
    bb.load_tiny("cpu", torch.float32)
    timesteps = bb.set_timesteps(25)
    g = torch.Generator().manual_seed(0)
    x, eps = torch.randn(2, 4, 3, 8, 8, generator=g), torch.randn(2, 4, 3, 8, 8, generator=g)
    i = 10
    prev = bb.scheduler_step(eps, timesteps[i], x, i, torch.Generator().manual_seed(1))
    mean, sigma = bb._step_mean_std(eps, x, i)
    noise = (prev - mean) / sigma
    expected = (-(noise**2) / 2 - sigma.log() - 0.5 * torch.log(torch.tensor(2 * torch.pi))).mean(dim=(1, 2, 3, 4))
    torch.testing.assert_close(bb.step_log_prob(eps, timesteps[i], x, prev, i), expected)
    assert (bb.step_log_prob(eps, timesteps[i], x, mean, i) > expected).all()


def test_step_counts_that_do_not_divide_1000():
    from vader_videocrafter.backbone import ddim_timesteps

    assert ddim_timesteps(25) == list(range(1, 1000, 40))  # the official range(0, 1000, 40) + 1
    assert ddim_timesteps(3) == [1, 334, 667]  # the official spacing would index alphas_cumprod[1000]
    assert len(ddim_timesteps(30)) == 30 and max(ddim_timesteps(999)) == 999
    with pytest.raises(ConfigError, match="steps"):
        ddim_timesteps(1000)


def test_low_precision_runs():
    """bf16 weights (vader casts the frozen model to the run's precision): the float32 GroupNorms and the
    float32 DDIM step keep the frames close to fp32's."""
    from vader_core.sampling import generate

    videos = []
    for dtype in (torch.float32, torch.bfloat16):
        bb = VideoCrafterBackbone(VideoCrafterOptions(height=32, width=32, frames=3, steps=3))
        bb.load_tiny("cpu", dtype)
        assert next(bb.denoiser.parameters()).dtype == dtype
        videos.append(generate(bb, ["a cat"], None, torch.Generator().manual_seed(0)))
    assert torch.isfinite(videos[1]).all() and (videos[1] - videos[0]).abs().max() < 0.15


@pytest.mark.parametrize("guidance", [0.5, 1.0, 12.0])
def test_guidance_skips_the_unconditional_branch_only_at_one(guidance):
    """The official DDIM sampler mixes the unconditional branch in for every scale but exactly 1."""
    bb = VideoCrafterBackbone(VideoCrafterOptions(height=32, width=32, frames=2, steps=2, guidance=guidance))
    bb.load_tiny("cpu", torch.float32)
    timesteps = bb.set_timesteps(2)
    cond = bb.encode_condition(["a cat playing chess"])
    assert cond["encoder_hidden_states"].shape[0] == (1 if guidance == 1.0 else 2)
    z = bb.prepare_latents(1, torch.Generator().manual_seed(0))
    with torch.no_grad():
        eps = bb.predict(z, timesteps[0], cond, 0)
        ts = timesteps[0].reshape(-1)
        emb = bb._embed(["a cat playing chess"])
        text = bb.denoiser(z, ts, emb, fps=cond["fps"][:1])
        uncond = bb.denoiser(z, ts, bb._embed([""]), fps=cond["fps"][:1])
    torch.testing.assert_close(eps, uncond + guidance * (text - uncond), rtol=1e-4, atol=1e-4)
