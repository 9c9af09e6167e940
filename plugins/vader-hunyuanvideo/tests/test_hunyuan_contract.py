"""The backbone contract on tiny random HunyuanVideo 1.5 components, and the plugin's options."""

import pytest
import torch
from vader_hunyuanvideo import (
    I2V_480P,
    T2V_480P,
    HunyuanVideoBackbone,
    HunyuanVideoI2VBackbone,
    HunyuanVideoOptions,
    nearest_frame_counts,
)

from vader_core.errors import ConfigError
from vader_core.testing import BackboneContractTests, PluginPackageContractTests


class TestHunyuan(BackboneContractTests):
    """The checkpoint's sampler (Euler) and guider (guidance 6: two calls per step)."""

    backbone_cls = HunyuanVideoBackbone
    options = {"height": 32, "width": 32, "frames": 5, "steps": 2}
    invalid_options = [{"frames": 0}, {"frames": 8}, {"no_such_option_xyz": 1}, {"scheduler": "ddim"}]


class TestHunyuanSDE(BackboneContractTests):
    """Without guidance, sampling with the stochastic SDE step (the ddpo policy)."""

    backbone_cls = HunyuanVideoBackbone
    options = {"height": 32, "width": 48, "frames": 9, "steps": 2, "guidance": 1.0, "eta": 0.7}


class TestHunyuanI2V(BackboneContractTests):
    """Image-to-video: SigLIP tokens, the image's latents at latent frame 0 with a mask."""

    backbone_cls = HunyuanVideoI2VBackbone
    options = {"height": 32, "width": 32, "frames": 5, "steps": 2}


class TestPackage(PluginPackageContractTests):
    package = "vader_hunyuanvideo"
    distribution = "vader-hunyuanvideo"
    plugin_classes = [HunyuanVideoBackbone, HunyuanVideoI2VBackbone]


def test_defaults_are_the_480p_checkpoint_s():
    o = HunyuanVideoOptions()
    assert (o.model, o.height, o.width, o.frames, o.steps, o.guidance, o.scheduler, o.flow_shift) == (
        T2V_480P,
        480,
        848,
        121,
        50,
        None,  # the checkpoint's guider: 6.0
        "auto",  # the checkpoint's sampler: flow-match Euler
        None,  # the checkpoint's shift: 5.0
    )
    i2v = HunyuanVideoI2VBackbone.Options()
    assert (i2v.model, i2v.height, i2v.width) == (I2V_480P, None, None)
    assert HunyuanVideoBackbone.denoiser_name == "transformer" and HunyuanVideoBackbone.conditioning == "text"
    assert HunyuanVideoI2VBackbone.conditioning == "text+image"


def test_default_size_is_the_stock_pipeline_s():
    """480x848: what HunyuanVideo15Pipeline picks without height/width for the 480p target size (640)."""
    from diffusers.pipelines.hunyuan_video1_5.image_processor import HunyuanVideo15ImageProcessor

    assert HunyuanVideo15ImageProcessor(vae_scale_factor=16).calculate_default_height_width(9, 16, 640) == (480, 848)


def test_text_constants_are_the_stock_pipeline_s():
    from diffusers import HunyuanVideo15Pipeline
    from vader_hunyuanvideo import backbone as b
    from vader_hunyuanvideo.tiny import tiny_components

    pipe = HunyuanVideo15Pipeline(**tiny_components())
    assert (pipe.tokenizer_max_length, pipe.prompt_template_encode_start_idx, pipe.tokenizer_2_max_length) == (
        b.TEXT_TOKENS,
        b.TEMPLATE_TOKENS,
        b.GLYPH_TOKENS,
    )
    assert pipe.vision_num_semantic_tokens == b.IMAGE_TOKENS


def test_frame_count_error_names_the_nearest_valid_counts():
    assert nearest_frame_counts(120) == (117, 121) and nearest_frame_counts(3) == (1, 5)


def test_height_must_suit_the_vae():
    bb = HunyuanVideoBackbone(HunyuanVideoOptions(height=40, width=32, frames=5, steps=2))
    with pytest.raises(ConfigError, match="multiples of 16"):
        bb.load_tiny("cpu", torch.float32)


def test_plugin_is_registered():
    from vader_core import plugins

    assert plugins.get_backbone("hunyuanvideo15") is HunyuanVideoBackbone
    assert plugins.get_backbone("hunyuanvideo15-i2v") is HunyuanVideoI2VBackbone


def test_decode_of_any_frame_subset_matches_full():
    """The causal VAE: a prefix decode gives the same frames as the full decode, for a middle frame too."""
    bb = HunyuanVideoBackbone(HunyuanVideoOptions(height=32, width=32, frames=13, steps=2))
    bb.load_tiny("cpu", torch.float32)
    latents = bb.prepare_latents(1, torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = bb.decode(latents, None)
        sub = bb.decode(latents, [0, 5, 6])
    assert full.shape[1] == 13 and bb.num_latent_frames(latents) == 13
    torch.testing.assert_close(sub, full[:, [0, 5, 6]], atol=1e-5, rtol=1e-5)


def test_save_pretrained_round_trip(tmp_path):
    """save_pretrained writes the stock pipeline's layout, which load reads back to the same frames."""
    from vader_core.sampling import generate

    o = HunyuanVideoOptions(height=32, width=32, frames=5, steps=2)
    bb = HunyuanVideoBackbone(o)
    bb.load_tiny("cpu", torch.float32)
    bb.save_pretrained(tmp_path / "model")
    assert (tmp_path / "model" / "model_index.json").is_file()
    again = HunyuanVideoBackbone(o.model_copy(update={"model": str(tmp_path / "model")}))
    again.load("cpu", torch.float32)
    assert again.guider.guidance_scale == 6.0 and again.scheduler.config.shift == 5.0
    a = generate(bb, ["a cat"], None, torch.Generator().manual_seed(0))
    b = generate(again, ["a cat"], None, torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_i2v_without_an_image_is_a_config_error():
    bb = HunyuanVideoI2VBackbone(HunyuanVideoI2VBackbone.Options(height=32, width=32, frames=5, steps=2))
    bb.load_tiny("cpu", torch.float32)
    with pytest.raises(ConfigError, match="--image"):
        bb.encode_condition(["a cat"], None)
