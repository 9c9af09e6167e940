"""``vader generate --backbone wan`` against diffusers' WanPipeline on the same weights.

Tiny random components are saved in the diffusers layout by the stock pipeline (with the 1.3B
checkpoint's UniPC scheduler config); the stock pipeline loads them with ``from_pretrained``, vader
with ``--set backbone.model=DIR``. Same seed, same options, fp32: the frames must agree to 1e-4, the
initial noise included. Several tiny configurations differ from the default one on purpose (head
counts, head size, patch size, frame count, flow shift, the sampler).
"""

import numpy as np
import pytest
import torch
from vader_wan.tiny import save_tiny

from vader_core.cli import main as vader
from vader_core.errors import ConfigError
from vader_core.lora import read_lora

H, W = 32, 48
FRAMES, STEPS, GUIDANCE = 9, 3, 5.0
TOL = 1e-4


def _stock(
    model_dir,
    prompt,
    seed,
    scheduler="unipc",
    lora=None,
    frames=FRAMES,
    guidance=GUIDANCE,
    h=H,
    w=W,
    pipeline="WanPipeline",
    image=None,
    lora_kwargs=None,
    **kwargs,
):
    import diffusers
    from diffusers import FlowMatchEulerDiscreteScheduler

    pipe = getattr(diffusers, pipeline).from_pretrained(model_dir)
    if scheduler == "euler":
        pipe.scheduler = FlowMatchEulerDiscreteScheduler(shift=pipe.scheduler.config.flow_shift)
    pipe.set_progress_bar_config(disable=True)
    if lora is not None:
        pipe.load_lora_weights(str(lora), **(lora_kwargs or {}))
    if image is not None:
        from PIL import Image

        kwargs["image"] = Image.open(image).convert("RGB")
    out = pipe(
        prompt=prompt,
        height=h,
        width=w,
        num_frames=frames,
        num_inference_steps=STEPS,
        guidance_scale=guidance,
        generator=torch.Generator().manual_seed(seed),
        output_type="np",
        **kwargs,
    ).frames
    return out[0]  # (F, H, W, 3) in [0, 1]


def _vader(tmp_path, model_dir, prompt, seed, *extra, frames=FRAMES, h=H, w=W, backbone="wan", image=None):
    out = tmp_path / f"vader-{seed}.npy"
    img = ["--image", str(image)] if image is not None else []
    vader(
        [
            "generate",
            "--backbone",
            backbone,
            "--set",
            f"backbone.model={model_dir}",
            "--prompt",
            prompt,
            *img,
            "--seed",
            str(seed),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--precision",
            "fp32",
            "--set",
            f"backbone.height={h}",
            "--set",
            f"backbone.width={w}",
            "--set",
            f"backbone.frames={frames}",
            "--set",
            f"backbone.steps={STEPS}",
            "--set",
            f"backbone.guidance={GUIDANCE}",
            *extra,
        ]
    )
    return np.load(out)


def _report(capsys, what, diff):
    with capsys.disabled():
        print(f"\n[{what}] max abs diff {diff:.3g}")


@pytest.mark.parametrize("scheduler", ["unipc", "euler"])
def test_generate_matches_stock_pipeline(tmp_path, tiny_dir, scheduler, capsys):
    prompt, seed = "a panda riding a bike", 3
    ours = _vader(tmp_path, tiny_dir, prompt, seed, "--set", f"backbone.scheduler={scheduler}")
    ref = _stock(tiny_dir, prompt, seed, scheduler)
    assert ours.shape == ref.shape == (FRAMES, H, W, 3)
    diff = float(np.abs(ours - ref).max())
    _report(capsys, f"wan ({scheduler}) vs WanPipeline", diff)
    assert diff <= TOL
    other = _vader(tmp_path, tiny_dir, prompt, seed + 1, "--set", f"backbone.scheduler={scheduler}")
    assert np.abs(other - ours).max() > 1e-3  # the seed matters: the noise comes from it


@pytest.mark.parametrize(
    "components,frames,shift",
    [
        ({"heads": 3, "head_dim": 6, "layers": 1}, 5, 5.0),
        ({"heads": 1, "head_dim": 18, "patch_size": (1, 1, 1), "text_dim": 24}, 13, 1.0),
        ({"heads": 4, "head_dim": 12, "patch_size": (2, 2, 2), "layers": 3}, 5, 8.0),
    ],
    ids=["3-heads-1-layer", "patch-1x1x1", "temporal-patch-2"],
)
def test_other_tiny_configs_match(tmp_path, components, frames, shift, capsys):
    d = save_tiny(tmp_path / "model", seed=1, flow_shift=shift, **components)
    prompt, seed = "a red kite in the sky", 5
    ours = _vader(tmp_path, d, prompt, seed, frames=frames)
    ref = _stock(d, prompt, seed, frames=frames)
    assert ours.shape == ref.shape == (frames, H, W, 3)
    diff = float(np.abs(ours - ref).max())
    _report(capsys, f"wan {components}, {frames} frames, shift {shift} vs WanPipeline", diff)
    assert diff <= TOL


def test_lora_loads_into_the_stock_pipeline(tmp_path, tiny_dir, capsys):
    """A LoRA saved by vader loads with WanPipeline.load_lora_weights and gives vader generate --lora's frames."""
    from diffusers import WanTransformer3DModel

    from vader_core.testing import save_random_lora

    lora_dir = save_random_lora(
        WanTransformer3DModel.from_pretrained(tiny_dir, subfolder="transformer"),
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
    _report(capsys, f"wan + LoRA vs WanPipeline.load_lora_weights; LoRA changed frames by {changed:.3g}", diff)
    assert diff <= TOL
    assert np.abs(ref - plain).max() > 1e-3, "the LoRA had no effect"


# ------------------------------------------------------------------ image-to-video, TI2V 5B, A14B
def test_i2v_matches_stock_pipeline(tmp_path, image_file, capsys):
    """Wan 2.1 I2V: CLIP image features, the first-frame mask and image latents as extra input channels."""
    d = save_tiny(tmp_path / "i2v", pipeline="WanImageToVideoPipeline")
    prompt, seed = "a red kite", 2
    ours = _vader(tmp_path, d, prompt, seed, backbone="wan-i2v", image=image_file, h=32, w=32)
    ref = _stock(d, prompt, seed, pipeline="WanImageToVideoPipeline", image=image_file, h=32, w=32)
    assert ours.shape == ref.shape == (FRAMES, 32, 32, 3)
    diff = float(np.abs(ours - ref).max())
    _report(capsys, "wan-i2v (2.1, CLIP) vs WanImageToVideoPipeline", diff)
    assert diff <= TOL


@pytest.mark.parametrize("with_image", [False, True], ids=["text", "text+image"])
def test_ti2v_5b_layout_matches_stock_pipeline(tmp_path, image_file, with_image, capsys):
    """Wan 2.2 TI2V 5B: the Wan 2.2 VAE (16x, 2x2 patchified pixels), a timestep per token (expand_timesteps);
    with an image the first latent frame is the image's, at timestep 0."""
    pipeline = "WanImageToVideoPipeline" if with_image else "WanPipeline"
    d = save_tiny(tmp_path / "ti2v", pipeline=pipeline, wan22_vae=True, extra={"expand_timesteps": True})
    prompt, seed, h, w = "a boat at sea", 4, 32, 64
    backbone, image = ("wan-i2v", image_file) if with_image else ("wan", None)
    ours = _vader(tmp_path, d, prompt, seed, backbone=backbone, image=image, h=h, w=w)
    ref = _stock(d, prompt, seed, pipeline=pipeline, image=image, h=h, w=w)
    assert ours.shape == ref.shape == (FRAMES, h, w, 3)
    diff = float(np.abs(ours - ref).max())
    _report(capsys, f"wan TI2V layout ({'image' if with_image else 'text'}) vs {pipeline}", diff)
    assert diff <= TOL


def _count_expert_calls(monkeypatch):
    from diffusers import WanTransformer3DModel

    calls = []
    forward = WanTransformer3DModel.forward

    def counted(self, *args, **kwargs):
        calls.append(id(self))
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(WanTransformer3DModel, "forward", counted)
    return calls


@pytest.mark.parametrize("pipeline", ["WanPipeline", "WanImageToVideoPipeline"])
def test_a14b_two_experts_match_stock_pipeline(tmp_path, image_file, pipeline, monkeypatch, capsys):
    """Wan 2.2 A14B: `transformer` above boundary_ratio * 1000, `transformer_2` below, each with its guidance."""
    i2v = pipeline == "WanImageToVideoPipeline"
    comps = {"two_experts": True, **({"in_channels": 36} if i2v else {})}
    d = save_tiny(tmp_path / "a14b", pipeline=pipeline, extra={"boundary_ratio": 0.9}, **comps)
    prompt, seed = "a horse running", 6
    kw = {"backbone": "wan-i2v", "image": image_file} if i2v else {}
    calls = _count_expert_calls(monkeypatch)
    ours = _vader(tmp_path, d, prompt, seed, "--set", "backbone.guidance_2=2.5", h=32, w=32, **kw)
    assert len(set(calls)) == 2, "both experts must run"  # 3 UniPC steps, shift 3: timesteps 999 (high), 857, 600
    ref = _stock(d, prompt, seed, pipeline=pipeline, guidance_scale_2=2.5, h=32, w=32, image=kw.get("image"))
    diff = float(np.abs(ours - ref).max())
    _report(capsys, f"wan A14B two experts vs {pipeline}", diff)
    assert diff <= TOL
    single = _stock(d, prompt, seed, pipeline=pipeline, guidance_scale_2=5.0, h=32, w=32, image=kw.get("image"))
    # guidance_2 acts: the low-noise expert ran (fp32 noise is about 1e-7; tiny random weights move the frames
    # by some 1e-4 to 1e-2 depending on the tokenizer and image)
    assert np.abs(single - ref).max() > 1e-5


def test_a14b_lora_goes_on_the_low_noise_expert(tmp_path, capsys):
    """The default LoRA expert of A14B is `transformer_2`; its file loads with load_lora_weights(...,
    load_into_transformer_2=True) and gives vader generate --lora's frames."""
    from diffusers import WanTransformer3DModel
    from vader_wan import WanBackbone, WanOptions

    from vader_core.testing import save_random_lora

    d = save_tiny(tmp_path / "a14b", extra={"boundary_ratio": 0.9}, two_experts=True)
    bb = WanBackbone(WanOptions(model=str(d), frames=5))
    bb.load("cpu", torch.float32)
    assert bb.denoiser is bb.components["transformer_2"]
    lora_dir = save_random_lora(
        WanTransformer3DModel.from_pretrained(d, subfolder="transformer_2"),
        tmp_path / "lora",
        prefix="transformer",
        std=0.5,
    )
    prompt, seed = "a cat", 1
    ours = _vader(tmp_path, d, prompt, seed, "--lora", str(lora_dir))
    ref = _stock(d, prompt, seed, lora=lora_dir, lora_kwargs={"load_into_transformer_2": True})
    plain = _stock(d, prompt, seed)
    diff = float(np.abs(ours - ref).max())
    _report(
        capsys,
        f"wan A14B + low-expert LoRA vs load_lora_weights(load_into_transformer_2); LoRA changed "
        f"frames by {np.abs(ref - plain).max():.3g}",
        diff,
    )
    assert diff <= TOL and np.abs(ref - plain).max() > 1e-3


def test_a14b_lora_on_both_experts(tmp_path, capsys):
    """`lora_expert=both`: one file with both experts' LoRA; vader generate --lora reads it as it is, and
    `vader_wan.export` splits it into the two files stock diffusers loads (the low one with
    load_into_transformer_2=True), which give the same frames."""
    import diffusers
    from vader_wan import WanBackbone, WanOptions
    from vader_wan.export import HIGH_NAME, LOW_NAME
    from vader_wan.export import main as export_main

    from vader_core.testing import save_random_lora

    d = save_tiny(tmp_path / "a14b", extra={"boundary_ratio": 0.9}, two_experts=True)
    bb = WanBackbone(WanOptions(model=str(d), frames=5, lora_expert="both"))
    bb.load("cpu", torch.float32)
    assert set(bb.denoiser) == {"transformer", "transformer_2"}
    lora_dir = save_random_lora(bb.denoiser, tmp_path / "lora", prefix="transformer", std=0.5)
    sd, _ = read_lora(lora_dir)
    assert any(k.startswith("transformer.transformer.") for k in sd)
    assert any(k.startswith("transformer.transformer_2.") for k in sd)
    assert export_main([str(lora_dir), "--out", str(tmp_path / "split")]) == 0
    prompt, seed = "a cat", 1
    ours = _vader(tmp_path, d, prompt, seed, "--lora", str(lora_dir), "--set", "backbone.lora_expert=both")
    pipe = diffusers.WanPipeline.from_pretrained(d)
    pipe.set_progress_bar_config(disable=True)
    pipe.load_lora_weights(str(tmp_path / "split"), weight_name=HIGH_NAME, adapter_name="high")
    pipe.load_lora_weights(
        str(tmp_path / "split"), weight_name=LOW_NAME, adapter_name="low", load_into_transformer_2=True
    )
    ref = pipe(
        prompt=prompt,
        height=H,
        width=W,
        num_frames=FRAMES,
        num_inference_steps=STEPS,
        guidance_scale=GUIDANCE,
        generator=torch.Generator().manual_seed(seed),
        output_type="np",
    ).frames[0]
    low_only = _stock(
        d, prompt, seed, lora=tmp_path / "split", lora_kwargs={"weight_name": LOW_NAME, "load_into_transformer_2": True}
    )
    diff = float(np.abs(ours - ref).max())
    _report(
        capsys,
        f"wan A14B + LoRA on both experts vs the two split files in load_lora_weights; the high "
        f"expert's LoRA changed frames by {np.abs(ref - low_only).max():.3g}",
        diff,
    )
    assert diff <= TOL and np.abs(ref - low_only).max() > 1e-3
    # A one-expert LoRA is not split, and `both` needs two experts.
    one = save_random_lora(
        diffusers.WanTransformer3DModel.from_pretrained(d, subfolder="transformer_2"),
        tmp_path / "one",
        prefix="transformer",
    )
    assert export_main([str(one), "--out", str(tmp_path / "x")]) == 2
    single = save_tiny(tmp_path / "single")
    with pytest.raises(ConfigError, match="two-expert"):
        WanBackbone(WanOptions(model=str(single), frames=5, lora_expert="both")).load("cpu", torch.float32)


def test_default_sampler_is_the_checkpoints_and_the_parity_helpers_agree(tmp_path, tiny_dir, capsys):
    """With `backbone.scheduler` left at `auto`, a Wan checkpoint (UniPC) samples with UniPC as released; the
    core's parity helpers (vader_core.testing.parity) reproduce the comparison above."""
    from vader_core.testing import assert_frames_match, stock_frames, vader_frames

    opts = {"height": H, "width": W, "frames": FRAMES, "steps": STEPS, "guidance": GUIDANCE}
    ours = vader_frames(tmp_path, "wan", tiny_dir, prompt="a cat playing chess", seed=5, options=opts)
    ref = stock_frames(
        tiny_dir,
        "WanPipeline",
        prompt="a cat playing chess",
        seed=5,
        steps=STEPS,
        guidance=GUIDANCE,
        height=H,
        width=W,
        frames=FRAMES,
    )
    _report(capsys, "wan (auto) vs WanPipeline", assert_frames_match(ours, ref, atol=TOL, what="wan auto"))
