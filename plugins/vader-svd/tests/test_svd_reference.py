"""``vader generate --backbone svd`` against diffusers' StableVideoDiffusionPipeline on the same weights.

Tiny random components are saved in the diffusers layout; the stock pipeline loads them with
``from_pretrained``, vader with ``--set backbone.model=DIR``. Same seed, same options, fp32: the frames
must agree to 1e-4 (they agree to the last bit on a CPU), the initial noise included.
"""

import numpy as np
import pytest
import torch

from vader_core.cli import main as vader

STEPS = 3
FRAMES = 14  # img2vid's frame count (the loader accepts 14 and 25)
TOL = 1e-4


def _stock(model_dir, image, seed, lora=None, **kwargs):
    from diffusers import StableVideoDiffusionPipeline
    from PIL import Image

    pipe = StableVideoDiffusionPipeline.from_pretrained(model_dir)
    pipe.set_progress_bar_config(disable=True)
    if lora is not None:
        from vader_core.lora import load_lora

        load_lora(pipe, lora)
    frames = pipe(
        Image.open(image),
        height=32,
        width=32,
        num_frames=FRAMES,
        num_inference_steps=STEPS,
        generator=torch.Generator().manual_seed(seed),
        output_type="np",
        **kwargs,
    ).frames
    return frames[0]  # (F, H, W, 3) in [0, 1]


def _vader(tmp_path, model_dir, image, seed, *extra):
    out = tmp_path / f"vader-{seed}.npy"
    vader(
        [
            "generate",
            "--backbone",
            "svd",
            "--set",
            f"backbone.model={model_dir}",
            "--image",
            str(image),
            "--seed",
            str(seed),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--precision",
            "fp32",
            "--set",
            "backbone.height=32",
            "--set",
            "backbone.width=32",
            "--set",
            f"backbone.frames={FRAMES}",
            "--set",
            f"backbone.steps={STEPS}",
            *extra,
        ]
    )
    return np.load(out)


@pytest.mark.parametrize(
    "stock_kwargs,vader_sets",
    [
        ({}, []),
        # Every conditioning option away from its default, and a decode in chunks of 4 frames (4+4+4+2).
        (
            {
                "min_guidance_scale": 1.5,
                "max_guidance_scale": 2.5,
                "fps": 10,
                "motion_bucket_id": 60,
                "noise_aug_strength": 0.1,
                "decode_chunk_size": 4,
            },
            [
                "backbone.min_guidance=1.5",
                "backbone.max_guidance=2.5",
                "backbone.fps=10",
                "backbone.motion_bucket_id=60",
                "backbone.noise_aug_strength=0.1",
                "memory.decode_chunk_size=4",
            ],
        ),
    ],
    ids=["defaults", "options"],
)
def test_generate_matches_stock_pipeline(tmp_path, tiny_dir, image_file, stock_kwargs, vader_sets, capsys):
    seed = 3
    ours = _vader(tmp_path, tiny_dir, image_file, seed, *[a for s in vader_sets for a in ("--set", s)])
    ref = _stock(tiny_dir, image_file, seed, **stock_kwargs)
    assert ours.shape == ref.shape == (FRAMES, 32, 32, 3)
    diff = float(np.abs(ours - ref).max())
    with capsys.disabled():
        print(f"\n[svd vs StableVideoDiffusionPipeline, {stock_kwargs or 'defaults'}] max abs diff {diff:.3g}")
    assert diff <= TOL
    other = _vader(tmp_path, tiny_dir, image_file, seed + 1, *[a for s in vader_sets for a in ("--set", s)])
    assert np.abs(other - ours).max() > 1e-3  # the seed matters: the noise comes from it


def test_lora_loads_into_the_stock_pipeline(tmp_path, tiny_dir, image_file, capsys):
    """A LoRA saved by vader gives the same frames in the stock pipeline (load_lora) and in vader generate."""
    from diffusers import UNetSpatioTemporalConditionModel

    from vader_core.testing import save_random_lora

    unet = UNetSpatioTemporalConditionModel.from_pretrained(tiny_dir, subfolder="unet")
    lora_dir = save_random_lora(unet, tmp_path / "lora")

    seed = 0
    ours = _vader(tmp_path, tiny_dir, image_file, seed, "--lora", str(lora_dir))
    ref = _stock(tiny_dir, image_file, seed, lora=lora_dir)
    plain = _stock(tiny_dir, image_file, seed)
    diff = float(np.abs(ours - ref).max())
    with capsys.disabled():
        print(
            f"\n[svd + LoRA vs StableVideoDiffusionPipeline + load_lora] max abs diff {diff:.3g}; "
            f"LoRA changed the frames by up to {np.abs(ref - plain).max():.3g}"
        )
    assert diff <= TOL
    assert np.abs(ref - plain).max() > 1e-3, "the LoRA had no effect"
