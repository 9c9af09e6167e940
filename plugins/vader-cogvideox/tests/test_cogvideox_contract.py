"""The backbone contract on tiny random CogVideoX components (several layouts), the plugin's defaults, the
samplers, frame subsampling and the stochastic step."""

import math

import pytest
import torch
from pydantic import ValidationError
from vader_cogvideox import CogVideoXBackbone, CogVideoXI2VBackbone, CogVideoXOptions
from vader_cogvideox.backbone import COGVIDEOX_1_5_5B, COGVIDEOX_1_5_5B_I2V
from vader_cogvideox.tiny import TEXT_LEN, scheduler_config, tiny_components

from vader_core.errors import ConfigError
from vader_core.testing import BackboneContractTests, PluginPackageContractTests

TINY = {"height": 32, "width": 32, "frames": 9, "steps": 2, "max_sequence_length": TEXT_LEN}


class TestCogVideoX15(BackboneContractTests):
    """CogVideoX 1.5 layout (rotary, temporal patch 2, a padded latent frame), DDIM, guidance 6."""

    backbone_cls = CogVideoXBackbone
    options = TINY
    invalid_options = [{"frames": 0}, {"no_such_option_xyz": 1}, {"frames": 13}, {"scheduler": "euler"}]


class Tiny10(CogVideoXBackbone):
    """The CogVideoX-2B layout (sine-cosine positions, no temporal patch) under the same name."""

    tiny_variant = "1.0"


class TestCogVideoX10DPMNoGuidance(BackboneContractTests):
    """CogVideoX 1.0 layout, the DPM sampler (noise from the generator at every step), guidance off, 17 frames."""

    backbone_cls = Tiny10
    options = {**TINY, "frames": 17, "steps": 3, "guidance": 1.0, "scheduler": "dpm"}


class TestCogVideoXI2V(BackboneContractTests):
    """CogVideoX 1.5 I2V layout: image latents sampled from the generator, ofs embedding."""

    backbone_cls = CogVideoXI2VBackbone
    options = TINY


class TestPackage(PluginPackageContractTests):
    package = "vader_cogvideox"
    distribution = "vader-cogvideox"
    plugin_classes = [CogVideoXBackbone, CogVideoXI2VBackbone]


def test_defaults_are_the_released_ones():
    o = CogVideoXOptions()
    assert (o.model, o.height, o.width, o.frames, o.steps, o.guidance, o.scheduler, o.use_dynamic_cfg) == (
        COGVIDEOX_1_5_5B,
        768,
        1360,
        81,
        50,
        6.0,
        "auto",
        False,
    )
    assert CogVideoXI2VBackbone.Options().model == COGVIDEOX_1_5_5B_I2V
    assert CogVideoXBackbone.denoiser_name == "transformer"


def test_frame_count_is_one_line():
    with pytest.raises(ValidationError, match="8k\\+1.*use 9 or 17"):
        CogVideoXOptions(frames=13)


@pytest.mark.parametrize(
    ("chosen", "saved", "expected"),
    [
        ("auto", "ddim", "CogVideoXDDIMScheduler"),
        ("auto", "dpm", "CogVideoXDPMScheduler"),
        ("dpm", "ddim", "CogVideoXDPMScheduler"),
        ("ddim", "dpm", "CogVideoXDDIMScheduler"),
    ],
)
def test_sampler_defaults_to_the_checkpoints(chosen, saved, expected):
    sched = CogVideoXBackbone(CogVideoXOptions(scheduler=chosen)).make_scheduler(scheduler_config(saved, 3.0))
    assert type(sched).__name__ == expected
    assert sched.config.snr_shift_scale == 3.0 and sched.config.prediction_type == "v_prediction"


def _tiny(**options):
    bb = CogVideoXBackbone(CogVideoXOptions(**{**TINY, **options}))
    bb.load_tiny("cpu", torch.float32)
    return bb


def test_padded_latent_frame_and_frame_unit():
    """9 frames: 3 latent frames, one padding frame in front (temporal patch 2); 9 pixel frames decode."""
    bb = _tiny()
    bb.set_timesteps(2)
    z = bb.prepare_latents(1, torch.Generator().manual_seed(0))
    assert z.shape == (1, 4, 4, 4, 4) and bb.latent_padding == 1 and bb.num_latent_frames(z) == 9
    # 17 frames: 5 latent frames decode in the VAE's groups (3, 2): frame 4 needs the first group only
    assert [bb.decoded_prefix(k, 5) for k in range(5)] == [3, 3, 3, 5, 5]
    assert [bb.decoded_prefix(k, 2) for k in range(2)] == [2, 2]


def test_eta_needs_ddim_and_ddpo_needs_eta():
    with pytest.raises(ConfigError, match="scheduler=ddim"):
        _tiny(scheduler="dpm", eta=1.0)
    bb = _tiny()
    ts = bb.set_timesteps(2)
    z = torch.zeros(1, 4, 4, 4, 4)
    with pytest.raises(ConfigError, match="sampling.eta=1.0"):
        bb.step_log_prob(z, ts[0], z, z, 0)


def test_stochastic_ddim_step_samples_its_log_density():
    """With eta > 0 the step draws from the Gaussian whose log-density step_log_prob returns: the draw is most
    likely under its own mean, the density integrates the sampled noise exactly, and at eta -> 0 the mean is the
    deterministic CogVideoX DDIM step."""
    bb = _tiny(eta=1.0, steps=4)
    ts = bb.set_timesteps(4)
    g = torch.Generator().manual_seed(0)
    x, v = torch.randn(2, 4, 4, 4, 4, generator=g), torch.randn(2, 4, 4, 4, 4, generator=g)
    for i, t in enumerate(ts):
        mean, std = bb._ddim_mean_std(v, t, x)
        assert float(std) > 0, f"step {i} has no variance"
        prev = bb.scheduler_step(v, t, x, i, torch.Generator().manual_seed(i))
        noise = (prev - mean) / std
        logp = bb.step_log_prob(v, t, x, prev, i)
        expected = (-(noise**2) / 2 - std.log() - 0.5 * math.log(2 * math.pi)).mean(dim=(1, 2, 3, 4))
        torch.testing.assert_close(logp, expected, rtol=1e-4, atol=1e-4)
        assert (bb.step_log_prob(v, t, x, mean, i) > logp).all()
    det = _tiny(steps=4)
    ts = det.set_timesteps(4)
    for t in ts[:-1]:  # before the last step, eta = 0 is the scheduler's own DDIM step
        det.options.eta = 0.0
        ref = det.scheduler.step(v, t, x, return_dict=False)[0]
        det.options.eta = 1e-8
        mean, _ = det._ddim_mean_std(v, t, x)
        torch.testing.assert_close(mean, ref, rtol=1e-4, atol=1e-4)


def test_dpm_sampler_carries_the_previous_prediction_and_resets():
    """The DPM step reads the previous step's x0 prediction: a new chain starts without it (same frames twice)."""
    bb = _tiny(scheduler="dpm", steps=3)
    from vader_core.sampling import generate

    a = generate(bb, ["a cat"], None, torch.Generator().manual_seed(0))
    b = generate(bb, ["a cat"], None, torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert bb.scheduler.prev_pred_original_sample is not None
    bb.set_timesteps(3)
    assert bb.scheduler.prev_pred_original_sample is None


def test_learned_positions_fix_the_size():
    bb = CogVideoXI2VBackbone(CogVideoXI2VBackbone.Options(**{**TINY, "height": 48}))
    comps = tiny_components(0, "1.0-i2v")
    comps["scheduler"] = bb.make_scheduler(scheduler_config())
    with pytest.raises(ConfigError, match="32x32"):
        bb.setup(comps, "cpu", torch.float32)


def test_text_to_video_refuses_images_and_i2v_needs_them():
    with pytest.raises(ConfigError, match="cogvideox-i2v"):
        bb = _tiny()
        bb.set_timesteps(2)
        cond = bb.encode_condition(["a cat"])
        cond.pixels = torch.zeros(1, 3, 32, 32)
        bb.prepare_latents(1, torch.Generator(), cond)
    i2v = CogVideoXI2VBackbone(CogVideoXI2VBackbone.Options(**TINY))
    i2v.load_tiny("cpu", torch.float32)
    with pytest.raises(ConfigError, match="--image"):
        i2v.encode_condition(["a cat"])
