"""The backbone contract on tiny random Wan components, and the plugin's options."""

import pytest
import torch
from vader_wan import T2V_1_3B, WanBackbone, WanI2VBackbone, WanOptions, nearest_frame_counts

from vader_core.errors import ConfigError
from vader_core.testing import BackboneContractTests, PluginPackageContractTests


class TestWan(BackboneContractTests):
    """The default sampler (UniPC), with guidance."""

    backbone_cls = WanBackbone
    options = {"height": 32, "width": 32, "frames": 5, "steps": 2}
    invalid_options = [{"frames": 0}, {"frames": 8}, {"no_such_option_xyz": 1}, {"scheduler": "ddim"}]


class TestWanEulerSDE(BackboneContractTests):
    """Flow-match Euler without guidance, sampling with the stochastic SDE step (the ddpo policy)."""

    backbone_cls = WanBackbone
    options = {"height": 32, "width": 32, "frames": 9, "steps": 2, "scheduler": "euler", "guidance": 1.0, "eta": 0.7}


class TestWanI2V(BackboneContractTests):
    """Wan 2.1 image-to-video (CLIP image features, mask + image latents as extra channels)."""

    backbone_cls = WanI2VBackbone
    options = {"height": 32, "width": 32, "frames": 5, "steps": 2}


class TestPackage(PluginPackageContractTests):
    package = "vader_wan"
    distribution = "vader-wan"
    plugin_classes = [WanBackbone, WanI2VBackbone]


def test_defaults_are_the_1_3b_checkpoint_s():
    o = WanOptions()
    assert (o.model, o.height, o.width, o.frames, o.steps, o.guidance, o.scheduler, o.flow_shift) == (
        T2V_1_3B,
        480,
        832,
        81,
        50,
        5.0,
        "auto",
        None,
    )
    # auto: the sampler the checkpoint ships, UniPC for Wan (the tiny components carry the 1.3B's config)
    bb = WanBackbone(WanOptions(height=32, width=32, frames=5, steps=2))
    bb.load_tiny("cpu", torch.float32)
    assert type(bb.scheduler).__name__ == "UniPCMultistepScheduler" and bb.scheduler.config.flow_shift == 3.0
    assert WanBackbone.denoiser_name == "transformer" and WanBackbone.conditioning == "text"
    assert WanI2VBackbone.conditioning == "text+image"


def test_frame_count_error_names_the_nearest_valid_counts():
    assert nearest_frame_counts(80) == (77, 81) and nearest_frame_counts(3) == (1, 5)


def test_frame_count_error_is_one_line(capsys):
    from vader_core.cli import main as vader

    with pytest.raises(SystemExit) as exit_:
        vader(
            [
                "generate",
                "--backbone",
                "wan",
                "--prompt",
                "a cat",
                "--out",
                "/tmp/x.npy",
                "--set",
                "backbone.frames=80",
                "--device",
                "cpu",
            ]
        )
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "77" in err and "81" in err, err


def test_height_must_suit_the_patch():
    bb = WanBackbone(WanOptions(height=40, width=32, frames=5, steps=2))
    with pytest.raises(ConfigError, match="multiples of 16"):
        bb.load_tiny("cpu", torch.float32)


def test_plugin_is_registered():
    from vader_core import plugins

    assert plugins.get_backbone("wan") is WanBackbone
    assert plugins.get_backbone("wan-i2v") is WanI2VBackbone


def test_save_pretrained_round_trip(tmp_path):
    """save_pretrained writes the stock pipeline's layout, which load reads back to the same frames."""
    from vader_core.sampling import generate

    o = WanOptions(height=32, width=32, frames=5, steps=2)
    bb = WanBackbone(o)
    bb.load_tiny("cpu", torch.float32)
    bb.save_pretrained(tmp_path / "model")
    assert (tmp_path / "model" / "model_index.json").is_file()
    again = WanBackbone(o.model_copy(update={"model": str(tmp_path / "model")}))
    again.load("cpu", torch.float32)
    a = generate(bb, ["a cat"], None, torch.Generator().manual_seed(0))
    b = generate(again, ["a cat"], None, torch.Generator().manual_seed(0))
    torch.testing.assert_close(
        a, b, rtol=0, atol=1e-5
    )  # weights bit-equal; the reloaded transformer rounds ~5e-7 differently
