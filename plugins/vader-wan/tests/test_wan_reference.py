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

from vader_core.cli import main as vader
from vader_wan.tiny import save_tiny

H, W = 32, 48
FRAMES, STEPS, GUIDANCE = 9, 3, 5.0
TOL = 1e-4


def _stock(model_dir, prompt, seed, scheduler="unipc", lora=None, frames=FRAMES, guidance=GUIDANCE, h=H, w=W,
           pipeline="WanPipeline", image=None, **kwargs):
    import diffusers
    from diffusers import FlowMatchEulerDiscreteScheduler

    pipe = getattr(diffusers, pipeline).from_pretrained(model_dir)
    if scheduler == "euler":
        pipe.scheduler = FlowMatchEulerDiscreteScheduler(shift=pipe.scheduler.config.flow_shift)
    pipe.set_progress_bar_config(disable=True)
    if lora is not None:
        pipe.load_lora_weights(str(lora))
    if image is not None:
        from PIL import Image

        kwargs["image"] = Image.open(image).convert("RGB")
    out = pipe(prompt, height=h, width=w, num_frames=frames, num_inference_steps=STEPS, guidance_scale=guidance,
               generator=torch.Generator().manual_seed(seed), output_type="np", **kwargs).frames
    return out[0]  # (F, H, W, 3) in [0, 1]


def _vader(tmp_path, model_dir, prompt, seed, *extra, frames=FRAMES, h=H, w=W, backbone="wan", image=None):
    out = tmp_path / f"vader-{seed}.npy"
    img = ["--image", str(image)] if image is not None else []
    vader(["generate", "--backbone", backbone, "--set", f"backbone.model={model_dir}", "--prompt", prompt, *img,
           "--seed", str(seed), "--out", str(out), "--device", "cpu", "--precision", "fp32",
           "--set", f"backbone.height={h}", "--set", f"backbone.width={w}", "--set", f"backbone.frames={frames}",
           "--set", f"backbone.steps={STEPS}", "--set", f"backbone.guidance={GUIDANCE}", *extra])
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

    lora_dir = save_random_lora(WanTransformer3DModel.from_pretrained(tiny_dir, subfolder="transformer"),
                                tmp_path / "lora", prefix="transformer", std=0.5)
    prompt, seed = "a dog surfing a wave", 0
    ours = _vader(tmp_path, tiny_dir, prompt, seed, "--lora", str(lora_dir))
    ref = _stock(tiny_dir, prompt, seed, lora=lora_dir)
    plain = _stock(tiny_dir, prompt, seed)
    diff = float(np.abs(ours - ref).max())
    _report(capsys, f"wan + LoRA vs WanPipeline.load_lora_weights; LoRA changed frames by {np.abs(ref - plain).max():.3g}",
            diff)
    assert diff <= TOL
    assert np.abs(ref - plain).max() > 1e-3, "the LoRA had no effect"
