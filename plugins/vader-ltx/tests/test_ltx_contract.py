"""The backbone contract on tiny random LTX-Video components, and the plugin's options."""

import pytest
import torch
from vader_ltx import (
    LTX_VIDEO,
    LTX2Backbone,
    LTX2I2VBackbone,
    LTXBackbone,
    LTXI2VBackbone,
    LTXOptions,
    nearest_frame_counts,
)

from vader_core.errors import ConfigError
from vader_core.testing import BackboneContractTests, PluginPackageContractTests

SIZE = {"height": 32, "width": 32, "frames": 9, "steps": 2}


class TestLTX(BackboneContractTests):
    """Dynamically shifted flow-match Euler (0.9.0 / 0.9.1), with guidance (one call on both halves)."""

    backbone_cls = LTXBackbone
    options = SIZE
    invalid_options = [{"frames": 0}, {"frames": 8}, {"no_such_option_xyz": 1}, {"scheduler": "ddim"}]


class TestLTXSDE(BackboneContractTests):
    """Without guidance, sampling with the stochastic SDE step (the ddpo policy), 17 frames."""

    backbone_cls = LTXBackbone
    options = {**SIZE, "frames": 17, "guidance": 1.0, "eta": 0.7}


class TestLTXTemporalTiles(BackboneContractTests):
    """Tiled decoding (tiles of 12 frames every 8, blended over 4): a subset decodes only its tiles."""

    backbone_cls = LTXBackbone
    options = {**SIZE, "frames": 25, "vae_temporal_tiling": True, "vae_tile_frames": 12, "vae_tile_stride": 8}


class TestLTXI2V(BackboneContractTests):
    """Image-to-video: the image's latents at frame 0, timestep 0 there, not stepped."""

    backbone_cls = LTXI2VBackbone
    options = SIZE


class TestPackage(PluginPackageContractTests):
    package = "vader_ltx"
    distribution = "vader-ltx"
    plugin_classes = [LTXBackbone, LTXI2VBackbone, LTX2Backbone, LTX2I2VBackbone]


def test_defaults_are_the_pipeline_s():
    o = LTXOptions()
    assert (o.model, o.height, o.width, o.frames, o.steps, o.guidance, o.max_sequence_length, o.frame_rate) == (
        LTX_VIDEO,
        512,
        704,
        161,
        50,
        3.0,
        128,
        25.0,
    )
    assert (o.decode_timestep, o.decode_noise_scale, o.flow_shift, o.vae_temporal_tiling) == (0.0, None, None, None)
    assert LTXBackbone.denoiser_name == "transformer" and LTXBackbone.conditioning == "text"
    assert LTXI2VBackbone.conditioning == "text+image"


def test_frame_count_error_names_the_nearest_valid_counts():
    assert nearest_frame_counts(160) == (153, 161) and nearest_frame_counts(3) == (1, 9)


def test_frame_count_error_is_one_line():
    from vader_core.testing import assert_one_line_error, run_cli

    res = run_cli(
        ["generate", "--backbone", "ltx", "--prompt", "a cat", "--out", "/tmp/x.npy", "--set", "backbone.frames=160"]
    )
    assert_one_line_error(res, "153", "161")


def test_size_must_suit_the_vae():
    from vader_core.testing import assert_one_line_error, run_cli

    res = run_cli(
        ["generate", "--backbone", "ltx", "--prompt", "a cat", "--out", "/tmp/x.npy", "--set", "backbone.height=500"]
    )
    assert_one_line_error(res, "multiple of 32")


def test_tiles_must_suit_the_vae():
    bb = LTXBackbone(LTXOptions(**SIZE, vae_temporal_tiling=True, vae_tile_frames=10))
    with pytest.raises(ConfigError, match="multiple of 4"):
        bb.load_tiny("cpu", torch.float32)


def test_plugin_is_registered():
    from vader_core import plugins

    assert plugins.get_backbone("ltx") is LTXBackbone
    assert plugins.get_backbone("ltx-i2v") is LTXI2VBackbone


def test_dynamic_shift_follows_the_resolution_and_flow_shift_turns_it_off():
    """0.9.0 / 0.9.1 shift the sigmas by the number of latent tokens (mu); a flow_shift is a static shift."""
    small = LTXBackbone(LTXOptions(**SIZE))
    small.load_tiny("cpu", torch.float32)
    large = LTXBackbone(LTXOptions(**{**SIZE, "height": 256, "width": 256}))
    large.load_tiny("cpu", torch.float32)
    small.set_timesteps(4)
    large.set_timesteps(4)
    assert small.sigma(0) == pytest.approx(1.0) and small.sigma(4) == 0.0
    assert large.sigma(1) > small.sigma(1)  # more tokens: more shift towards noise
    fixed = LTXBackbone(LTXOptions(**SIZE, flow_shift=3.0))
    fixed.load_tiny("cpu", torch.float32)
    assert not fixed.scheduler.config.use_dynamic_shifting
    fixed.set_timesteps(4)
    s = 0.75  # linspace(1, 1/4, 4)[1]
    shifted = 3 * s / (1 + 2 * s)
    terminal = 1 - (1 - shifted) / (1 - 3 * 0.25 / (1 + 2 * 0.25)) * (1 - 0.1)  # stretched to terminal sigma 0.1
    assert fixed.sigma(1) == pytest.approx(terminal, abs=1e-6)


def test_save_pretrained_round_trip(tmp_path):
    """save_pretrained writes the stock pipeline's layout, which load reads back to the same frames."""
    from vader_core.sampling import generate

    o = LTXOptions(**SIZE)
    bb = LTXBackbone(o)
    bb.load_tiny("cpu", torch.float32)
    bb.save_pretrained(tmp_path / "model")
    assert (tmp_path / "model" / "model_index.json").is_file()
    again = LTXBackbone(o.model_copy(update={"model": str(tmp_path / "model")}))
    again.load("cpu", torch.float32)
    a = generate(bb, ["a cat"], None, torch.Generator().manual_seed(0))
    b = generate(again, ["a cat"], None, torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
