"""``vader generate --backbone modelscope`` against diffusers' TextToVideoSDPipeline on the same weights.

Tiny random components are saved in the diffusers layout (with the hub repository's DDIM scheduler
config); the stock pipeline loads them with ``from_pretrained`` and switches to DPM-Solver the usual
way, vader with ``--set backbone.model=DIR``. Same seed, same options, fp32: the frames must agree to
1e-4, the initial noise included.
"""

import numpy as np
import pytest
import torch

from vader_core.cli import main as vader

H = W = 32
FRAMES, STEPS, GUIDANCE = 4, 3, 9.0
TOL = 1e-4


def _stock(model_dir, prompt, seed, scheduler="dpmsolver", lora=None, guidance=GUIDANCE):
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, TextToVideoSDPipeline

    pipe = TextToVideoSDPipeline.from_pretrained(model_dir)
    cls = DPMSolverMultistepScheduler if scheduler == "dpmsolver" else DDIMScheduler
    pipe.scheduler = cls.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    if lora is not None:
        from vader_core.lora import load_lora

        load_lora(pipe, lora)
    frames = pipe(
        prompt,
        height=H,
        width=W,
        num_frames=FRAMES,
        num_inference_steps=STEPS,
        guidance_scale=guidance,
        generator=torch.Generator().manual_seed(seed),
        output_type="np",
    ).frames
    return frames[0]  # (F, H, W, 3) in [0, 1]


def _vader(tmp_path, model_dir, prompt, seed, *extra):
    out = tmp_path / f"vader-{seed}.npy"
    vader(
        [
            "generate",
            "--backbone",
            "modelscope",
            "--set",
            f"backbone.model={model_dir}",
            "--prompt",
            prompt,
            "--seed",
            str(seed),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--precision",
            "fp32",
            "--set",
            f"backbone.height={H}",
            "--set",
            f"backbone.width={W}",
            "--set",
            f"backbone.frames={FRAMES}",
            "--set",
            f"backbone.steps={STEPS}",
            "--set",
            f"backbone.guidance={GUIDANCE}",
            *extra,
        ]
    )
    return np.load(out)


@pytest.mark.parametrize("scheduler", ["dpmsolver", "ddim"])
def test_generate_matches_stock_pipeline(tmp_path, tiny_dir, scheduler, capsys):
    prompt, seed = "a panda riding a bike", 3
    ours = _vader(tmp_path, tiny_dir, prompt, seed, "--set", f"backbone.scheduler={scheduler}")
    ref = _stock(tiny_dir, prompt, seed, scheduler)
    assert ours.shape == ref.shape == (FRAMES, H, W, 3)
    diff = float(np.abs(ours - ref).max())
    with capsys.disabled():
        print(f"\n[modelscope ({scheduler}) vs TextToVideoSDPipeline] max abs diff {diff:.3g}")
    assert diff <= TOL
    other = _vader(tmp_path, tiny_dir, prompt, seed + 1, "--set", f"backbone.scheduler={scheduler}")
    assert np.abs(other - ours).max() > 1e-3  # the seed matters: the noise comes from it


def test_lora_loads_into_the_stock_pipeline(tmp_path, tiny_dir, capsys):
    """A LoRA saved by vader gives the same frames in the stock pipeline (load_lora) and in vader generate."""
    from diffusers import UNet3DConditionModel

    from vader_core.testing import save_random_lora

    lora_dir = save_random_lora(UNet3DConditionModel.from_pretrained(tiny_dir, subfolder="unet"), tmp_path / "lora")

    prompt, seed = "a dog surfing a wave", 0
    ours = _vader(tmp_path, tiny_dir, prompt, seed, "--lora", str(lora_dir))
    ref = _stock(tiny_dir, prompt, seed, lora=lora_dir)
    plain = _stock(tiny_dir, prompt, seed)
    diff = float(np.abs(ours - ref).max())
    with capsys.disabled():
        print(
            f"\n[modelscope + LoRA vs TextToVideoSDPipeline + load_lora] max abs diff {diff:.3g}; "
            f"LoRA changed the frames by up to {np.abs(ref - plain).max():.3g}"
        )
    assert diff <= TOL
    assert np.abs(ref - plain).max() > 1e-3, "the LoRA had no effect"
