"""The backbone contract on tiny random Open-Sora 1.2 components, the official options and sampler."""

import pytest
import torch
from pydantic import ValidationError
from vader_opensora import OpenSoraBackbone, OpenSoraOptions
from vader_opensora.backbone import MODEL_ID, TEXT_ID, VAE_ID, shift_ratio, timestep_transform

from vader_core.testing import BackboneContractTests, PluginPackageContractTests

TINY = {"height": 32, "width": 32, "frames": 17, "steps": 2}


class TestOpenSora(BackboneContractTests):
    """Guidance 7 (the official), the official timestep transform, one temporal chunk."""

    backbone_cls = OpenSoraBackbone
    options = TINY
    invalid_options = [{"frames": 0}, {"no_such_option_xyz": 1}, {"frames": 8}, {"resolution": "999p"}]


class TestOpenSoraTwoChunksNoGuidance(BackboneContractTests):
    """20 frames: a full 17-frame chunk and a 3-frame remainder; guidance off."""

    backbone_cls = OpenSoraBackbone
    options = {"height": 32, "width": 48, "frames": 20, "steps": 3, "guidance": 1.0}


class TestPackage(PluginPackageContractTests):
    package = "vader_opensora"
    distribution = "vader-opensora"
    plugin_classes = [OpenSoraBackbone]


def test_defaults_are_the_official_vader_recipe():
    """VADER-Open-Sora's run_text2video_train.sh: 240p, 3:4, 2s (51 frames); vader_train.py: 30 steps,
    cfg 7.0, fps 24, T5 length 300; LoRA on qkv / q_linear / kv_linear."""
    o = OpenSoraOptions()
    assert (o.model, o.vae, o.text_encoder) == (MODEL_ID, VAE_ID, TEXT_ID)
    assert (o.height, o.width, o.frames, o.steps, o.guidance, o.fps, o.token_length) == (276, 368, 51, 30, 7.0, 24, 300)
    assert OpenSoraBackbone.default_lora_targets == ("qkv", "q_linear", "kv_linear")
    assert OpenSoraBackbone.denoiser_name == "transformer"


def test_official_sizes():
    o = OpenSoraOptions(resolution="360p", aspect_ratio="9:16", num_frames="4s")
    assert (o.height, o.width, o.frames) == (360, 640, 102)
    assert OpenSoraOptions(num_frames="68").frames == 68
    with pytest.raises(ValidationError, match="aspect ratio"):
        OpenSoraOptions(resolution="240p", aspect_ratio="5:4")
    assert OpenSoraOptions(frames=8, timestep_transform=False).frames == 8


def test_plugin_is_registered():
    from vader_core import plugins

    assert plugins.get_backbone("opensora") is OpenSoraBackbone


def test_timesteps_are_the_official_transform():
    """At 240p 3:4, 51 frames: ratio sqrt(276 * 368 / 512^2) * sqrt(15); the chain starts at 1000 and each
    timestep is r t / (1 + (r - 1) t); diffusers' FlowMatchEuler shift gives the same chain."""
    o = OpenSoraOptions(steps=30)
    r = shift_ratio(276, 368, 51)
    assert abs(r - (276 * 368 / 512**2) ** 0.5 * 15**0.5) < 1e-12 and 2.40 < r < 2.42
    bb = OpenSoraBackbone(o)
    bb.components = {"scheduler": bb.make_scheduler()}
    bb.device = torch.device("cpu")
    ts = torch.stack(bb.set_timesteps(30))
    u = torch.tensor([1 - i / 30 for i in range(30)])
    torch.testing.assert_close(ts, r * u / (1 + (r - 1) * u) * 1000, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(ts, bb.scheduler.timesteps.float(), rtol=1e-5, atol=1e-3)
    assert float(ts[0]) == pytest.approx(1000, abs=1e-3)
    # no transform: the plain uniform chain
    plain = OpenSoraBackbone(OpenSoraOptions(steps=4, timestep_transform=False))
    plain.components, plain.device = {"scheduler": plain.make_scheduler()}, torch.device("cpu")
    assert [float(t) for t in plain.set_timesteps(4)] == [1000.0, 750.0, 500.0, 250.0]
    # images count as one frame
    torch.testing.assert_close(timestep_transform(torch.tensor([500.0]), 512, 512, 1), torch.tensor([500.0]))


def test_step_is_diffusers_flow_match_euler():
    """Our step z + v dt equals diffusers' FlowMatchEulerDiscreteScheduler.step with model output -v."""
    bb = OpenSoraBackbone(OpenSoraOptions(**TINY, guidance=1.0))
    bb.load_tiny("cpu", torch.float32)
    timesteps = bb.set_timesteps(4)
    sched = bb.scheduler
    g = torch.Generator().manual_seed(0)
    z, v = torch.randn(1, 4, 5, 8, 8, generator=g), torch.randn(1, 4, 5, 8, 8, generator=g)
    for i, t in enumerate(timesteps):
        ours = bb.scheduler_step(v, t, z, i, None)
        ref = sched.step(-v, sched.timesteps[i], z, return_dict=False)[0]
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_prompt_text_is_the_official_pipeline():
    """append_score_to_prompts with the recipe's aes 6.5, then T5 text_preprocessing (lower case, one space)."""
    bb = OpenSoraBackbone(OpenSoraOptions(**TINY))
    assert bb.prompt_text("A woman in a Red dress,  walking in Tokyo") == (
        "a woman in a red dress, walking in tokyo aesthetic score: 6.5."
    )
    assert bb.prompt_text("a cat aesthetic score: 5.0.") == "a cat aesthetic score: 5.0."
    raw = OpenSoraBackbone(OpenSoraOptions(**TINY, aesthetic_score=None, prompt_preprocessing=False))
    assert raw.prompt_text("A Cat") == "A Cat"


def test_null_caption_uses_the_prompt_mask():
    bb = OpenSoraBackbone(OpenSoraOptions(**TINY, aesthetic_score=None))
    bb.load_tiny("cpu", torch.float32)
    cond = bb.encode_condition(["a cat", "a red robot walking in the city"])
    y, mask = cond["y"], cond["mask"]
    assert y.shape == (4, 12, 16) and mask.shape == (4, 12)
    assert mask[:2].sum(1).tolist() == [3, 8]  # tokens + </s>
    torch.testing.assert_close(mask[2:], mask[:2])
    torch.testing.assert_close(y[2], bb.denoiser.y_embedder.y_embedding)


def test_decode_frames_are_those_of_a_full_decode():
    """Frame subsampling: frames of both chunks decoded alone equal the same frames of a full decode."""
    bb = OpenSoraBackbone(OpenSoraOptions(height=32, width=32, frames=20, steps=1))
    bb.load_tiny("cpu", torch.float32)
    z = bb.prepare_latents(1, torch.Generator().manual_seed(0))
    assert z.shape[2] == 6 and bb.num_latent_frames(z) == 20
    with torch.no_grad():
        full = bb.decode(z)
        sub = bb.decode(z, [18, 3, 16])
    assert full.shape[1] == 20
    torch.testing.assert_close(sub, full[:, [18, 3, 16]], atol=1e-5, rtol=1e-5)


def test_ddpo_is_a_one_line_error():
    from vader_core.errors import ConfigError

    bb = OpenSoraBackbone(OpenSoraOptions(**TINY))
    bb.load_tiny("cpu", torch.float32)
    with pytest.raises(ConfigError, match="stochastic"):  # the CLI path is tested in test_opensora_cli
        bb.step_log_prob(torch.zeros(1), torch.zeros(()), torch.zeros(1), torch.zeros(1), 0)


def test_low_precision_runs():
    """bf16 weights: the float32 Euler step keeps the frames close to fp32's."""
    from vader_core.sampling import generate

    videos = []
    for dtype in (torch.float32, torch.bfloat16):
        bb = OpenSoraBackbone(OpenSoraOptions(**TINY))
        bb.load_tiny("cpu", dtype)
        assert next(bb.denoiser.parameters()).dtype == dtype
        videos.append(generate(bb, ["a cat"], None, torch.Generator().manual_seed(0)))
    assert torch.isfinite(videos[1]).all() and (videos[1] - videos[0]).abs().max() < 0.15


@pytest.mark.parametrize("guidance", [0.0, 0.5, 1.0, 7.0])
def test_guidance_is_the_official_formula_for_every_scale(guidance):
    """The official sampler computes both branches and ``v_null + g (v_text - v_null)`` for every g: below 1 too
    (dropping the null branch there moved the latents by 0.69 at g = 0.5)."""
    bb = OpenSoraBackbone(OpenSoraOptions(**TINY, guidance=guidance))
    bb.load_tiny("cpu", torch.float32)
    timesteps = bb.set_timesteps(2)
    cond = bb.encode_condition(["a cat playing chess"])
    z = bb.prepare_latents(1, torch.Generator().manual_seed(0))
    assert cond["y"].shape[0] == 2, "the null caption is encoded for every guidance scale"
    with torch.no_grad():
        v = bb.predict(z, timesteps[0], cond, 0)
        args = bb._model_args(1)
        ts = timesteps[0].reshape(-1)
        text = bb.denoiser(z, ts, cond["y"][:1], mask=cond["mask"][:1], **args)[:, :4]
        null = bb.denoiser(z, ts, cond["y"][1:], mask=cond["mask"][1:], **args)[:, :4]
    torch.testing.assert_close(v, null + guidance * (text - null), rtol=1e-5, atol=1e-5)
    if guidance != 1.0:
        assert (v - text).abs().max() > 1e-4, "the null branch must enter the velocity"
