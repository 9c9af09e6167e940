"""The backbone contract on tiny random SVD components, and the steps against diffusers' scheduler."""

import pytest
import torch
from pydantic import ValidationError
from vader_svd import SVDBackbone, SVDOptions

from vader_core.testing import BackboneContractTests, PluginPackageContractTests


class TestSVD(BackboneContractTests):
    backbone_cls = SVDBackbone
    options = {"height": 32, "width": 32, "frames": 3, "steps": 2}
    invalid_options = [{"frames": 0}, {"no_such_option_xyz": 1}, {"height": 36}, {"noise_aug_strength": -1}]


class TestSVDNoGuidanceChunked(BackboneContractTests):
    """Without guidance (one UNet batch), decoding in chunks of two frames."""

    backbone_cls = SVDBackbone
    options = {"height": 32, "width": 32, "frames": 3, "steps": 2, "guidance": 1.0, "decode_chunk_size": 2}


def _backbone(**options):
    bb = SVDBackbone(SVDOptions(**{"height": 32, "width": 32, "frames": 3, "steps": 3, **options}))
    bb.load_tiny("cpu", torch.float32, seed=0)
    return bb


class TestPackage(PluginPackageContractTests):
    package = "vader_svd"
    distribution = "vader-svd"
    plugin_classes = [SVDBackbone]


def test_defaults_are_the_stock_pipeline_s():
    o = SVDOptions()
    assert (o.height, o.width, o.frames, o.steps) == (576, 1024, 14, 25)
    assert (o.min_guidance, o.guidance, o.fps, o.motion_bucket_id, o.noise_aug_strength) == (1.0, 3.0, 7, 127, 0.02)
    assert o.model == "stabilityai/stable-video-diffusion-img2vid"
    assert SVDBackbone.conditioning == "image" and SVDBackbone.default_lora_targets == (
        "to_q",
        "to_k",
        "to_v",
        "to_out.0",
    )
    with pytest.raises(ValidationError, match="multiple of 8"):
        SVDOptions(width=1020)


def test_max_guidance_is_an_alias_of_guidance():
    assert SVDBackbone(SVDOptions(guidance=2.5)).guidance_range == (1.0, 2.5)
    assert SVDBackbone(SVDOptions(guidance=2.5, max_guidance=4.0, min_guidance=0.5)).guidance_range == (0.5, 4.0)
    assert not SVDBackbone(SVDOptions(guidance=1.0)).do_cfg


def test_latents_are_frames_first():
    bb = _backbone()
    latents = bb.prepare_latents(2, torch.Generator().manual_seed(0))
    assert latents.shape == (2, 3, 4, 16, 16)  # (B, F, C, h, w)
    assert bb.num_latent_frames(latents) == 3


def test_guidance_ramp_over_frames():
    bb = _backbone(frames=5, min_guidance=1.0, guidance=3.0)
    cond = bb.encode_condition(["a", "b"], [torch.rand(3, 32, 32), torch.rand(3, 32, 32)])
    assert cond.guidance.shape == (2, 5, 1, 1, 1)
    torch.testing.assert_close(cond.guidance[0, :, 0, 0, 0], torch.tensor([1.0, 1.5, 2.0, 2.5, 3.0]))
    assert cond.image_embeddings.shape[0] == 4 and cond.added_time_ids.shape == (4, 3)
    torch.testing.assert_close(cond.added_time_ids[0], torch.tensor([6.0, 127.0, 0.02]))  # fps - 1
    assert torch.all(cond.image_embeddings[:2] == 0)  # the unconditional branch


def test_scheduler_step_matches_the_scheduler_s_own_step():
    """A whole chain: our Euler step (by step_index) equals EulerDiscreteScheduler.step (by its counter),
    and our input scaling equals scale_model_input."""
    from diffusers import EulerDiscreteScheduler

    bb = _backbone(steps=4)
    ref = EulerDiscreteScheduler.from_config(bb.scheduler.config)
    timesteps = bb.set_timesteps(4)
    ref.set_timesteps(4)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, 4, 16, 16, generator=g) * ref.init_noise_sigma
    ours = x.clone()
    for i, t in enumerate(timesteps):
        out = torch.randn(x.shape, generator=g)
        scaled = ref.scale_model_input(x, t)
        sigma = bb.scheduler.sigmas[i]
        torch.testing.assert_close(ours / ((sigma**2 + 1) ** 0.5), scaled, rtol=0, atol=0)
        x = ref.step(out, t, x, return_dict=False)[0]
        ours = bb.scheduler_step(out, t, ours, i, None)
        torch.testing.assert_close(ours, x, rtol=0, atol=0)


def test_predict_is_pure():
    """predict reads the sigma of step_index: calling it again after the scheduler moved on (as
    gradient checkpointing does in backward) gives the same output."""
    bb = _backbone()
    cond = bb.encode_condition(["a"], [torch.rand(3, 32, 32)])
    latents = bb.prepare_latents(1, torch.Generator().manual_seed(0))
    timesteps = bb.set_timesteps(3)
    with torch.no_grad():
        first = bb.predict(latents, timesteps[0], cond, 0)
        for i, t in enumerate(timesteps):
            bb.scheduler.step(bb.predict(latents, t, cond, i), t, latents)  # moves the scheduler's own counter
        again = bb.predict(latents, timesteps[0], cond, 0)
    torch.testing.assert_close(first, again, rtol=0, atol=0)


def test_prepare_latents_draws_the_augmentation_noise_first():
    """Same generator order as the stock pipeline: (B, 3, H, W) image noise, then the latents."""
    bb = _backbone()
    g = torch.Generator().manual_seed(5)
    torch.randn((1, 3, 32, 32), generator=g)
    expected = torch.randn((1, 3, 4, 16, 16), generator=g)
    bb.set_timesteps(1)  # the initial sigma must not depend on what the scheduler ran before
    latents = bb.prepare_latents(1, torch.Generator().manual_seed(5))
    from diffusers import EulerDiscreteScheduler

    ref = EulerDiscreteScheduler.from_config(bb.scheduler.config)
    ref.set_timesteps(3)
    torch.testing.assert_close(latents, expected * ref.init_noise_sigma)


def test_condition_needs_images_and_latents():
    from vader_core.errors import ConfigError

    bb = _backbone()
    with pytest.raises(ConfigError, match="image-to-video"):
        bb.encode_condition(["a"], None)
    with pytest.raises(ConfigError, match="one image per prompt"):
        bb.encode_condition(["a", "b"], [torch.rand(3, 32, 32)])
    with pytest.raises(ConfigError, match=r"\(3, H, W\)"):
        bb.encode_condition(["a"], [torch.rand(32, 32)])
    cond = bb.encode_condition(["a"], [torch.rand(3, 32, 32)])
    with pytest.raises(ConfigError, match="prepare_latents"):
        bb.predict(torch.zeros(1, 3, 4, 16, 16), bb.set_timesteps(2)[0], cond, 0)


def test_images_as_pil_tensor_or_path_agree(tmp_path, make_image):
    """A PIL image, its (3, H, W) tensor and its file give the same condition (at the video size)."""
    import numpy as np

    bb = _backbone()
    im = make_image(32, 32, seed=2)
    im.save(tmp_path / "x.png")
    t = torch.from_numpy(np.asarray(im).astype(np.float32) / 255.0).permute(2, 0, 1)
    conds = [bb.encode_condition(["a"], [x]) for x in (im, t, tmp_path / "x.png", str(tmp_path / "x.png"))]
    for c in conds[1:]:
        torch.testing.assert_close(c.image_embeddings, conds[0].image_embeddings, atol=1e-6, rtol=0)
        torch.testing.assert_close(c.pixels, conds[0].pixels, atol=1e-6, rtol=0)
