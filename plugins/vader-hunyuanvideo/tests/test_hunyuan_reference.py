"""``vader generate --backbone hunyuanvideo15[-i2v]`` against diffusers' HunyuanVideo 1.5 pipelines on the same
weights.

Tiny random components of the real architectures are saved in the diffusers layout by the stock pipeline
(Euler, shift 5, a ClassifierFreeGuidance guider at 6); the stock pipeline loads them with ``from_pretrained``,
vader with ``--set backbone.model=DIR``. Same seed, same options, fp32: the frames must agree to 1e-4, the
initial noise included. The tiny configurations differ from the default one on purpose (heads, head size,
rotary axes, patch size, depth, the VAE's spatial factor, frame count, shift, guidance below 1, MeanFlow).
"""

import numpy as np
import pytest
import torch
from vader_hunyuanvideo.tiny import save_tiny

from vader_core.testing import vader_frames

H, W = 32, 48
FRAMES, STEPS = 9, 3
TOL = 1e-4
I2V = "HunyuanVideo15ImageToVideoPipeline"


def _stock(
    model_dir,
    prompt,
    seed,
    *,
    pipeline="HunyuanVideo15Pipeline",
    frames=FRAMES,
    h=H,
    w=W,
    image=None,
    lora=None,
    guidance=None,
    negative_prompt=None,
):
    import diffusers
    from diffusers import ClassifierFreeGuidance

    pipe = getattr(diffusers, pipeline).from_pretrained(model_dir)
    pipe.set_progress_bar_config(disable=True)
    if guidance is not None:
        pipe.guider = ClassifierFreeGuidance.from_config(pipe.guider.config, guidance_scale=guidance)
    if lora is not None:
        # HunyuanVideo15Pipeline has no LoRA loader mixin (no load_lora_weights): the stock call is the
        # transformer's own PeftAdapterMixin.load_lora_adapter on the saved file.
        pipe.transformer.load_lora_adapter(
            str(lora), weight_name="pytorch_lora_weights.safetensors", prefix="transformer"
        )
    kw = {"negative_prompt": negative_prompt} if negative_prompt is not None else {}
    if image is not None:
        from PIL import Image

        kw["image"] = Image.open(image).convert("RGB")
    else:
        kw.update(height=h, width=w)
    out = pipe(
        prompt=prompt,
        num_frames=frames,
        num_inference_steps=STEPS,
        generator=torch.Generator().manual_seed(seed),
        output_type="np",
        **kw,
    ).frames
    return out[0]  # (F, H, W, 3) in [0, 1]


def _vader(tmp_path, model_dir, prompt, seed, *extra, frames=FRAMES, h=H, w=W, backbone="hunyuanvideo15", image=None):
    options = {"frames": frames, "steps": STEPS, **({"height": h, "width": w} if image is None else {})}
    return vader_frames(
        tmp_path / "vader", backbone, model_dir, prompt=prompt, seed=seed, options=options, image=image, extra=extra
    )


def _report(capsys, what, diff):
    with capsys.disabled():
        print(f"\n[{what}] max abs diff {diff:.3g}")


def test_t2v_matches_stock_pipeline(tmp_path, tiny_dir, capsys):
    prompt, seed = 'a panda riding a bike past a sign that says "OPEN"', 3  # quoted: the glyph encoder runs
    ours = _vader(tmp_path, tiny_dir, prompt, seed)
    ref = _stock(tiny_dir, prompt, seed)
    assert ours.shape == ref.shape == (FRAMES, H, W, 3)
    diff = float(np.abs(ours - ref).max())
    _report(capsys, "hunyuanvideo15 vs HunyuanVideo15Pipeline", diff)
    assert diff <= TOL
    other = _vader(tmp_path, tiny_dir, prompt, seed + 1)
    assert np.abs(other - ours).max() > 1e-3  # the seed matters: the noise comes from it


@pytest.mark.parametrize(
    "components,frames,extra",
    [
        ({"heads": 3, "head_dim": 4, "rope_axes": (0, 2, 2), "layers": 1, "shift": 7.0}, 5, {}),
        ({"heads": 1, "head_dim": 16, "rope_axes": (4, 6, 6), "patch_size": 2, "spatial": 8, "text_dim": 24}, 13, {}),
        ({"layers": 3, "refiner_layers": 2, "guidance": 1.0, "shift": 9.0}, 9, {}),
        ({"heads": 2, "head_dim": 8}, 5, {"guidance": 0.5, "negative_prompt": "a blue car"}),
    ],
    ids=["3-heads-1-layer", "patch-2-vae-8x", "distilled-no-guidance", "guidance-0.5-negative"],
)
def test_other_tiny_configs_match(tmp_path, components, frames, extra, capsys):
    d = save_tiny(tmp_path / "model", seed=1, **components)
    prompt, seed = "a red kite in the sky", 5
    sets = []
    if "guidance" in extra:
        sets += ["--set", f"backbone.guidance={extra['guidance']}"]
    if "negative_prompt" in extra:
        sets += ["--set", f"backbone.negative_prompt={extra['negative_prompt']}"]
    ours = _vader(tmp_path, d, prompt, seed, *sets, frames=frames)
    ref = _stock(d, prompt, seed, frames=frames, **extra)
    assert ours.shape == ref.shape == (frames, H, W, 3)
    diff = float(np.abs(ours - ref).max())
    _report(capsys, f"hunyuanvideo15 {components} {extra}, {frames} frames vs HunyuanVideo15Pipeline", diff)
    assert diff <= TOL


def test_lora_loads_with_the_stock_adapter_loader(tmp_path, tiny_dir, capsys):
    """A LoRA saved by vader loads with the transformer's ``load_lora_adapter(path, prefix="transformer")`` (the
    1.5 pipeline has no ``load_lora_weights``) and gives ``vader generate --lora``'s frames."""
    from diffusers import HunyuanVideo15Pipeline, HunyuanVideo15Transformer3DModel

    from vader_core.testing import save_random_lora

    assert not hasattr(HunyuanVideo15Pipeline, "load_lora_weights")
    lora_dir = save_random_lora(
        HunyuanVideo15Transformer3DModel.from_pretrained(tiny_dir, subfolder="transformer"),
        tmp_path / "lora",
        prefix="transformer",
        std=0.5,
    )
    prompt, seed = "a dog surfing a wave", 0
    ours = _vader(tmp_path, tiny_dir, prompt, seed, "--lora", str(lora_dir))
    ref = _stock(tiny_dir, prompt, seed, lora=lora_dir)
    plain = _stock(tiny_dir, prompt, seed)
    diff = float(np.abs(ours - ref).max())
    changed = float(np.abs(ref - plain).max())
    _report(capsys, f"hunyuanvideo15 + LoRA vs load_lora_adapter; LoRA changed frames by {changed:.3g}", diff)
    assert diff <= TOL
    assert changed > 1e-3, "the LoRA had no effect"


# ------------------------------------------------------------------ image-to-video
@pytest.mark.parametrize(
    "components,size",
    [
        ({}, (40, 48)),
        (
            {
                "use_meanflow": True,
                "guidance": 1.0,
                "shift": 7.0,
                "heads": 3,
                "head_dim": 4,
                "rope_axes": (0, 2, 2),
                "target_size": 64,  # a 64x40 image: the 64x48 bucket
            },
            (64, 40),
        ),
    ],
    ids=["i2v", "step-distilled-meanflow"],
)
def test_i2v_matches_stock_pipeline(tmp_path, components, size, capsys):
    """The size comes from the image (the bucket of the transformer's target size nearest its aspect ratio), the
    image's latents sit at latent frame 0 with a mask, SigLIP tokens join the text."""
    from vader_core.testing.helpers import save_images

    d = save_tiny(tmp_path / "i2v", pipeline=I2V, seed=2, **components)
    image = save_images(tmp_path / "img", ["a_red_kite"], h=size[0], w=size[1])[0]
    prompt, seed = "a red kite", 2
    ours = _vader(tmp_path, d, prompt, seed, backbone="hunyuanvideo15-i2v", image=image)
    ref = _stock(d, prompt, seed, pipeline=I2V, image=image)
    assert ours.shape == ref.shape and ours.shape[0] == FRAMES
    diff = float(np.abs(ours - ref).max())
    _report(capsys, f"hunyuanvideo15-i2v {components} (video {ref.shape[1]}x{ref.shape[2]}) vs {I2V}", diff)
    assert diff <= TOL
