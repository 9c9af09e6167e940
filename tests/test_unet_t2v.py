"""``UNetT2VBackbone`` with either diffusers video UNet: ``UNet3DConditionModel`` or ``UNetMotionModel``."""

from typing import Any

import pytest
import torch

from vader_core.errors import ConfigError
from vader_core.sampling import generate
from vader_core.testing import BackboneContractTests
from vader_plugins.tiny import TinyBackbone, TinyOptions, tiny_components


def tiny_motion_unet(seed: int = 0) -> Any:
    """A tiny AnimateDiff-layout UNet (2D blocks + temporal attention with sinusoidal frame positions)."""
    from diffusers import UNetMotionModel

    torch.manual_seed(seed)
    return UNetMotionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlockMotion", "DownBlockMotion"),
        up_block_types=("UpBlockMotion", "CrossAttnUpBlockMotion"),
        block_out_channels=(32, 64),
        layers_per_block=1,
        norm_num_groups=32,
        cross_attention_dim=32,
        num_attention_heads=4,
        motion_num_attention_heads=4,
        motion_max_seq_length=16,
    )


class TinyMotionBackbone(TinyBackbone):
    """``tiny`` with a ``UNetMotionModel`` in place of the UNet3D."""

    def load_tiny(self, device: Any, dtype: Any, seed: int = 0) -> None:
        comps = tiny_components(seed)
        comps["unet"] = tiny_motion_unet(seed)
        comps["scheduler"] = self.make_scheduler()
        self.setup(comps, device, dtype)


class TestTinyMotionContract(BackboneContractTests):
    backbone_cls = TinyMotionBackbone
    options = {"frames": 3, "steps": 2}


def test_motion_unet_gets_the_text_once_per_frame():
    bb = TinyMotionBackbone(TinyOptions(frames=3, guidance=2.0))
    bb.load("cpu", torch.float32)
    assert bb.text_per_frame
    cond = bb.encode_condition(["a red ball", "a cat"])
    latents = bb.prepare_latents(2, torch.Generator().manual_seed(0))
    t = bb.scheduler.timesteps[0] if len(bb.scheduler.timesteps) else torch.tensor(999)
    with torch.no_grad():
        out = bb.predict(latents, torch.as_tensor(t), cond, 0)
        x = torch.cat([latents] * 2)
        raw = bb.denoiser(x, t, encoder_hidden_states=cond["encoder_hidden_states"].repeat_interleave(3, dim=0)).sample
    uncond, text = raw.chunk(2)
    torch.testing.assert_close(out, uncond + 2.0 * (text - uncond))
    # Each video sees its own prompt: swapping the prompts swaps the predictions.
    swapped = bb.encode_condition(["a cat", "a red ball"])
    with torch.no_grad():
        out2 = bb.predict(latents.flip(0), torch.as_tensor(t), swapped, 0)
    torch.testing.assert_close(out2, out.flip(0), atol=1e-5, rtol=1e-4)


def test_unet_class_is_read_from_the_saved_config(tmp_path):
    src = TinyMotionBackbone(TinyOptions(frames=2, steps=2))
    src.load("cpu", torch.float32)
    src.save_pretrained(tmp_path / "m")
    bb = TinyBackbone(TinyOptions(model=str(tmp_path / "m"), frames=2, steps=2))
    bb.load("cpu", torch.float32)
    assert type(bb.denoiser).__name__ == "UNetMotionModel" and bb.text_per_frame
    a = generate(src, ["a red ball"], None, torch.Generator().manual_seed(1))
    b = generate(bb, ["a red ball"], None, torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)
    plain = TinyBackbone(TinyOptions(frames=2, steps=2))
    plain.load("cpu", torch.float32)
    assert not plain.text_per_frame


def test_unsupported_unet_class_is_a_clear_error(tmp_path):
    from diffusers import UNet2DConditionModel

    src = TinyBackbone(TinyOptions(frames=2, steps=2))
    src.load("cpu", torch.float32)
    src.save_pretrained(tmp_path / "m")
    UNet2DConditionModel(
        sample_size=8,
        block_out_channels=(32, 64),
        layers_per_block=1,
        cross_attention_dim=32,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    ).save_pretrained(tmp_path / "m" / "unet")
    with pytest.raises(ConfigError, match="UNet2DConditionModel in unet/.*UNet3DConditionModel or UNetMotionModel"):
        TinyBackbone(TinyOptions(model=str(tmp_path / "m"))).load("cpu", torch.float32)
