"""The command line with the HunyuanVideo 1.5 backbones: the CLI contract (training, generation, missing
weights), a ddpo smoke run, and errors a person can act on."""

import math

import pytest
import torch
from vader_hunyuanvideo import HunyuanVideoBackbone, HunyuanVideoI2VBackbone, HunyuanVideoOptions

from vader_core.cli import main as vader
from vader_core.errors import MissingWeightsError
from vader_core.testing import QUIET_TRAINING, BackboneCLIContractTests, lora_checkpoint, read_metrics, set_options

SIZE = {"height": 32, "width": 32, "frames": 5, "steps": 2}
TINY = [*set_options(SIZE, "backbone."), "--set", "lora.rank=4"]
QUIET = set_options(QUIET_TRAINING)


class TestHunyuanCommands(BackboneCLIContractTests):
    backbone_cls = HunyuanVideoBackbone
    options = SIZE

    @pytest.fixture
    def saved_weights(self, tiny_dir):
        return {"model": tiny_dir}


class TestHunyuanI2VCommands(BackboneCLIContractTests):
    backbone_cls = HunyuanVideoI2VBackbone
    options = SIZE

    @pytest.fixture
    def saved_weights(self, tiny_i2v_dir):
        return {"model": tiny_i2v_dir}


def test_ddpo_smoke_from_the_cli(tmp_path):
    """ddpo runs on hunyuanvideo15 with the stochastic SDE step (sampling.eta > 0)."""
    out = tmp_path / "run"
    vader(
        [
            "train",
            "--backbone",
            "hunyuanvideo15",
            "--random-weights",
            "--reward",
            "brightness",
            "--method",
            "ddpo",
            "--max-steps",
            "2",
            *QUIET,
            *TINY,
            "--set",
            "sampling.eta=0.7",
            "--set",
            "method.sample_batches=2",
            "--set",
            "method.clip_range=0.2",
            "--output-dir",
            str(out),
            "--device",
            "cpu",
            "-q",
        ]
    )
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [1, 2]
    assert all(math.isfinite(r["loss"]) and not r["skipped"] for r in rows)
    lora = lora_checkpoint(out, 2)
    assert lora and all(k.startswith("transformer.") for k in lora)
    assert any(t.abs().sum() > 0 for k, t in lora.items() if "lora_B" in k)


def test_frame_count_error_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        vader(
            [
                "generate",
                "--backbone",
                "hunyuanvideo15",
                "--prompt",
                "a cat",
                "--out",
                "/tmp/x.npy",
                "--set",
                "backbone.frames=120",
                "--device",
                "cpu",
            ]
        )
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "117" in err and "121" in err, err


def test_not_a_diffusers_directory(tmp_path):
    (tmp_path / "transformer").mkdir()
    with pytest.raises(MissingWeightsError, match="no vae/, text_encoder/, tokenizer/, text_encoder_2/"):
        HunyuanVideoBackbone(HunyuanVideoOptions(model=str(tmp_path))).load("cpu", torch.float32)


def test_local_directory_loads(tiny_dir):
    from diffusers import FlowMatchEulerDiscreteScheduler

    bb = HunyuanVideoBackbone(HunyuanVideoOptions(model=str(tiny_dir), height=32, width=32, frames=5, steps=2))
    bb.load("cpu", torch.float32)
    assert isinstance(bb.scheduler, FlowMatchEulerDiscreteScheduler) and bb.scheduler.config.shift == 5.0
    assert bb.guider.guidance_scale == 6.0
    assert not any(p.requires_grad for m in bb.modules().values() for p in m.parameters())
    bb = HunyuanVideoBackbone(HunyuanVideoOptions(model=str(tiny_dir), frames=5, flow_shift=7.0, guidance=3.5))
    bb.load("cpu", torch.float32)
    assert bb.scheduler.config.shift == 7.0 and bb.guider.guidance_scale == 3.5


def test_default_and_smoke_sizes_pass_the_config_checks():
    """The released defaults pass the config-time size check, and --random-weights picks 4k+1 frames."""
    from vader_core.cli_errors import random_weight_sets
    from vader_core.config import build_config, resolve

    cfg = resolve(build_config(None, [], {"backbone.name": "hunyuanvideo15", "rewards": ["brightness"]}))
    assert (cfg.backbone.options["height"], cfg.backbone.options["width"], cfg.backbone.options["frames"]) == (
        480,
        848,
        121,
    )
    assert "backbone.frames=5" in random_weight_sets("hunyuanvideo15", None, [])


def test_i2v_images_of_different_shapes_need_a_size(tmp_path):
    """Without height/width the size follows each image's aspect ratio, as in the stock pipeline: a batch whose
    images give different sizes is a one-line error that says what to set."""
    from vader_core.errors import ConfigError
    from vader_core.testing.helpers import draw_image

    bb = HunyuanVideoI2VBackbone(HunyuanVideoI2VBackbone.Options(frames=5, steps=2))
    bb.load_tiny("cpu", torch.float32)
    with pytest.raises(ConfigError, match="backbone.height"):
        bb.encode_condition(["a", "b"], [draw_image(32, 64), draw_image(64, 32)])
    cond = bb.encode_condition(["a"], [draw_image(40, 48)])
    assert cond.size == (32, 32)  # the tiny transformer's target size 32: the bucket of 5:6 is 32x32
