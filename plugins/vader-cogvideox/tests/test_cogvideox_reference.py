"""``vader generate --backbone cogvideox`` / ``cogvideox-i2v`` against diffusers' CogVideoXPipeline /
CogVideoXImageToVideoPipeline on the same weights.

Tiny random components are saved in the diffusers layout by the stock pipeline with the checkpoints'
scheduler configuration; the stock pipeline loads them with ``from_pretrained``, vader with
``--set backbone.model=DIR``. Same seed, same options, fp32: the frames must agree to 1e-4, the initial noise
(and the image latents, and the DPM sampler's step noise) included. The configurations differ on purpose: the
1.0 layout (sine-cosine positions, no temporal patch), the 5B layout (rotary), the 1.5 layout (rotary, temporal
patches of 2 with a padded latent frame), image-to-video 1.0 (learned positions) and 1.5 (ofs, inverted
latent scale), each with the DDIM and the DPM sampler.
"""

import pytest
from vader_cogvideox.tiny import TEXT_LEN, TINY_SIZE, save_tiny

from vader_core.testing import assert_frames_match, save_images, save_random_lora, stock_frames, vader_frames

H, W, FRAMES = TINY_SIZE
STEPS, GUIDANCE = 3, 6.0
TOL = 1e-4
OPTS = {"height": H, "width": W, "frames": FRAMES, "steps": STEPS, "guidance": GUIDANCE}


def _report(capsys, what, diff):
    with capsys.disabled():
        print(f"\n[{what}] max abs diff {diff:.3g}")


def _compare(tmp_path, capsys, model_dir, variant, scheduler, *, seed=3, image=None, options=None, stock=None):
    i2v = variant.endswith("i2v")
    backbone, pipeline = (
        ("cogvideox-i2v", "CogVideoXImageToVideoPipeline") if i2v else ("cogvideox", "CogVideoXPipeline")
    )
    prompt = "a panda riding a bike"
    ours = vader_frames(
        tmp_path, backbone, model_dir, prompt=prompt, seed=seed, options={**OPTS, **(options or {})}, image=image
    )
    ref = stock_frames(
        model_dir,
        pipeline,
        prompt=prompt,
        seed=seed,
        steps=STEPS,
        guidance=GUIDANCE,
        height=H,
        width=W,
        frames=FRAMES,
        image=image,
        max_sequence_length=TEXT_LEN,
        **(stock or {}),
    )
    assert ours.shape == (FRAMES, H, W, 3)
    _report(capsys, f"cogvideox {variant} ({scheduler}) vs {pipeline}", assert_frames_match(ours, ref, atol=TOL))
    return ours


@pytest.mark.parametrize("scheduler", ["ddim", "dpm"])
@pytest.mark.parametrize("variant", ["1.0", "1.0-rope", "1.5"])
def test_text_to_video_matches_stock_pipeline(tmp_path_factory, tmp_path, capsys, variant, scheduler):
    shift = 3.0 if variant == "1.0" else 1.0  # the 2B checkpoint's snr_shift_scale
    model_dir = save_tiny(
        tmp_path_factory.mktemp(f"cog-{variant}-{scheduler}"), variant, scheduler, snr_shift_scale=shift
    )
    ours = _compare(tmp_path, capsys, model_dir, variant, scheduler)
    other = vader_frames(tmp_path, "cogvideox", model_dir, prompt="a panda riding a bike", seed=4, options=OPTS)
    assert abs(other - ours).max() > 1e-3  # the seed matters


@pytest.mark.parametrize("scheduler", ["ddim", "dpm"])
@pytest.mark.parametrize("variant", ["1.0-i2v", "1.5-i2v"])
def test_image_to_video_matches_stock_pipeline(tmp_path_factory, tmp_path, capsys, variant, scheduler):
    model_dir = save_tiny(tmp_path_factory.mktemp(f"cog-{variant}-{scheduler}"), variant, scheduler)
    image = save_images(tmp_path / "img", ["a_red_kite"], h=40, w=56)[0]
    _compare(tmp_path, capsys, model_dir, variant, scheduler, image=image)


def test_dynamic_guidance_and_negative_prompt_match_stock_pipeline(tmp_path, capsys, tiny_dir):
    _compare(
        tmp_path,
        capsys,
        tiny_dir,
        "1.5",
        "ddim",
        options={"use_dynamic_cfg": "true", "negative_prompt": "blurry", "scheduler": "dpm"},
        stock={"use_dynamic_cfg": True, "negative_prompt": "blurry", "scheduler": _dpm(tiny_dir)},
    )


def _dpm(model_dir):
    from diffusers import CogVideoXDPMScheduler

    return CogVideoXDPMScheduler.from_pretrained(model_dir, subfolder="scheduler")


def test_lora_matches_stock_load_lora_weights(tmp_path, capsys, tiny_dir):
    """A LoRA saved as vader's trainer saves it loads with the stock pipeline's load_lora_weights and gives
    vader generate --lora's frames."""
    import torch
    from vader_cogvideox import CogVideoXBackbone, CogVideoXOptions

    bb = CogVideoXBackbone(CogVideoXOptions(**OPTS, model=str(tiny_dir)))
    bb.load("cpu", torch.float32)
    lora = save_random_lora(
        bb.denoiser, tmp_path / "lora", prefix="transformer", targets=bb.default_lora_targets, std=0.5
    )
    prompt = "a cat playing chess"
    ours = vader_frames(tmp_path, "cogvideox", tiny_dir, prompt=prompt, seed=2, options=OPTS, lora=lora)
    plain = vader_frames(tmp_path, "cogvideox", tiny_dir, prompt=prompt, seed=2, options=OPTS)
    ref = stock_frames(
        tiny_dir,
        "CogVideoXPipeline",
        prompt=prompt,
        seed=2,
        steps=STEPS,
        guidance=GUIDANCE,
        height=H,
        width=W,
        frames=FRAMES,
        lora=lora,
        max_sequence_length=TEXT_LEN,
    )
    _report(capsys, "cogvideox --lora vs load_lora_weights", assert_frames_match(ours, ref, atol=TOL))
    assert abs(ours - plain).max() > 1e-3, "the LoRA did not change the frames"
