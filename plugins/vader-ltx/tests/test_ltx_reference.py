"""``vader generate --backbone ltx / ltx-i2v`` against diffusers' LTXPipeline / LTXImageToVideoPipeline on the same
weights.

Tiny random components are saved in the diffusers layout by the stock pipeline; the stock pipeline loads them
with ``from_pretrained``, vader with ``--set backbone.model=DIR``. Same seed, same options, fp32: the frames must
agree to 1e-4, the initial noise, the image latents' sample and the decode noise included. The configurations
differ on purpose: the three VAE layouts (0.9.0; 0.9.1's timestep-conditioned decoder with decode noise; 0.9.5's
encoder), both schedulers the checkpoints ship (dynamic shifting or not), head counts and sizes, depth, frame
count, guidance on and off, guidance rescale.
"""

import numpy as np
import pytest
from vader_ltx.tiny import save_tiny

from vader_core.testing import assert_frames_match, stock_frames, vader_frames

STEPS = 3


def _report(capsys, what, diff):
    with capsys.disabled():
        print(f"\n[{what}] max abs diff {diff:.3g}")


CONFIGS = {
    # id: (tiny components, dynamic shift, options: height, width, frames, guidance, ...)
    "0.9.0-dynamic-shift": ({"vae": "0.9.0"}, True, {"height": 32, "width": 64, "frames": 9, "guidance": 3.0}),
    "0.9.1-decode-noise": (
        {"vae": "0.9.1", "heads": 3, "head_dim": 4, "layers": 1},
        True,
        {"height": 64, "width": 32, "frames": 9, "guidance": 4.5, "decode_timestep": 0.05, "decode_noise_scale": 0.3},
    ),
    "0.9.5-static-shift": (
        {"vae": "0.9.5", "heads": 1, "head_dim": 16, "layers": 3, "text_dim": 24},
        False,
        {"height": 32, "width": 32, "frames": 17, "guidance": 2.0, "guidance_rescale": 0.7, "frame_rate": 24},
    ),
    "no-guidance": (
        {"vae": "0.9.0", "heads": 4, "head_dim": 6},
        True,
        {"height": 32, "width": 32, "frames": 9, "guidance": 1.0},
    ),
}


def _call_kwargs(options):
    rename = {
        "decode_timestep": "decode_timestep",
        "decode_noise_scale": "decode_noise_scale",
        "guidance_rescale": "guidance_rescale",
        "frame_rate": "frame_rate",
    }
    return {rename[k]: v for k, v in options.items() if k in rename}


@pytest.mark.parametrize("i2v", [False, True], ids=["t2v", "i2v"])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_generate_matches_stock_pipeline(tmp_path, image_file, config, i2v, capsys):
    components, dynamic, options = CONFIGS[config]
    pipeline, backbone = ("LTXImageToVideoPipeline", "ltx-i2v") if i2v else ("LTXPipeline", "ltx")
    d = save_tiny(tmp_path / "model", pipeline=pipeline, dynamic_shift=dynamic, seed=1, **components)
    image = image_file if i2v else None
    prompt, seed = "a panda riding a bike", 3
    options = {**options, "steps": STEPS}
    ours = vader_frames(tmp_path, backbone, d, prompt=prompt, seed=seed, options=options, image=image)
    ref = stock_frames(
        d,
        pipeline,
        prompt=prompt,
        seed=seed,
        steps=STEPS,
        guidance=options["guidance"],
        height=options["height"],
        width=options["width"],
        frames=options["frames"],
        image=image,
        **_call_kwargs(options),
    )
    assert ours.shape == (options["frames"], options["height"], options["width"], 3)
    diff = assert_frames_match(ours, ref, what=f"{backbone} {config}")
    _report(capsys, f"{backbone} {config} vs {pipeline}", diff)
    other = vader_frames(tmp_path, backbone, d, prompt=prompt, seed=seed + 1, options=options, image=image)
    assert np.abs(other - ours).max() > 1e-3  # the seed matters: the noise comes from it


def test_decode_noise_comes_from_the_generator(tmp_path, capsys):
    """0.9.1's decoder: decode_noise_scale mixes generator noise into the latents (it changes the frames), drawn
    after the chain as the stock pipeline draws it (the frames still match)."""
    d = save_tiny(tmp_path / "model", vae="0.9.1")
    options = {"height": 32, "width": 32, "frames": 9, "guidance": 3.0, "steps": STEPS, "decode_timestep": 0.05}
    plain = vader_frames(tmp_path, "ltx", d, prompt="a cat", seed=0, options=options)
    noisy = vader_frames(tmp_path, "ltx", d, prompt="a cat", seed=0, options={**options, "decode_noise_scale": 0.5})
    assert np.abs(noisy - plain).max() > 1e-3
    ref = stock_frames(
        d,
        "LTXPipeline",
        prompt="a cat",
        seed=0,
        steps=STEPS,
        guidance=3.0,
        height=32,
        width=32,
        frames=9,
        decode_timestep=0.05,
        decode_noise_scale=0.5,
    )
    _report(capsys, "ltx 0.9.1 decode noise 0.5 vs LTXPipeline", assert_frames_match(noisy, ref))


@pytest.mark.parametrize("i2v", [False, True], ids=["t2v", "i2v"])
def test_lora_loads_into_the_stock_pipeline(tmp_path, image_file, i2v, capsys):
    """A LoRA saved by vader loads with LTXPipeline.load_lora_weights and gives vader generate --lora's frames."""
    from diffusers import LTXVideoTransformer3DModel

    from vader_core.testing import save_random_lora

    pipeline, backbone = ("LTXImageToVideoPipeline", "ltx-i2v") if i2v else ("LTXPipeline", "ltx")
    d = save_tiny(tmp_path / "model", pipeline=pipeline)
    lora_dir = save_random_lora(
        LTXVideoTransformer3DModel.from_pretrained(d, subfolder="transformer"),
        tmp_path / "lora",
        prefix="transformer",
        std=0.5,
    )
    image = image_file if i2v else None
    options = {"height": 32, "width": 64, "frames": 9, "guidance": 3.0, "steps": STEPS}
    size = {"steps": STEPS, "guidance": 3.0, "height": 32, "width": 64, "frames": 9, "image": image}
    ours = vader_frames(
        tmp_path, backbone, d, prompt="a dog surfing a wave", seed=0, options=options, image=image, lora=lora_dir
    )
    ref = stock_frames(d, pipeline, prompt="a dog surfing a wave", seed=0, lora=lora_dir, **size)
    plain = stock_frames(d, pipeline, prompt="a dog surfing a wave", seed=0, **size)
    changed = float(np.abs(ref - plain).max())
    diff = assert_frames_match(ours, ref, what="LoRA")
    _report(capsys, f"{backbone} + LoRA vs {pipeline}.load_lora_weights; LoRA changed frames by {changed:.3g}", diff)
    assert changed > 1e-3, "the LoRA had no effect"
