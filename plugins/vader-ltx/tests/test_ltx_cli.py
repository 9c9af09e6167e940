"""The command line with the ltx backbones: the CLI contract (training, generation, missing weights), ddpo smoke
runs, and errors a person can act on."""

import math

import pytest
import torch
from vader_ltx import LTXBackbone, LTXI2VBackbone, LTXOptions

from vader_core.cli import main as vader
from vader_core.errors import MissingWeightsError
from vader_core.testing import QUIET_TRAINING, BackboneCLIContractTests, lora_checkpoint, read_metrics, set_options

SIZE = {"height": 32, "width": 32, "frames": 9, "steps": 2}
TINY = [*set_options(SIZE, "backbone."), "--set", "lora.rank=4"]
QUIET = set_options(QUIET_TRAINING)


class TestLTXCommands(BackboneCLIContractTests):
    backbone_cls = LTXBackbone
    options = SIZE

    @pytest.fixture
    def saved_weights(self, tiny_dir):
        return {"model": tiny_dir}


class TestLTXI2VCommands(BackboneCLIContractTests):
    backbone_cls = LTXI2VBackbone
    options = SIZE

    @pytest.fixture
    def saved_weights(self, tiny_i2v_dir):
        return {"model": tiny_i2v_dir}


@pytest.mark.parametrize("backbone", ["ltx", "ltx-i2v"])
def test_ddpo_smoke_from_the_cli(tmp_path, backbone):
    """ddpo runs with the stochastic SDE step (sampling.eta > 0); image-to-video steps frames 1 and on."""
    from vader_core.testing import save_images

    out = tmp_path / "run"
    images = ["--set", f"train.images={tmp_path / 'images'}"] if backbone == "ltx-i2v" else []
    if images:
        save_images(tmp_path / "images", ["a_red_kite", "a_boat_at_sea"])
    vader(
        [
            "train",
            "--backbone",
            backbone,
            "--random-weights",
            "--reward",
            "brightness",
            "--method",
            "ddpo",
            "--max-steps",
            "2",
            *QUIET,
            *TINY,
            *images,
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


def test_i2v_keeps_the_image_frame_and_its_log_probability_leaves_it_out():
    """The stochastic step moves latent frames 1 and on; frame 0 (the image) is neither moved nor scored."""
    bb = LTXI2VBackbone(LTXOptions(**SIZE, eta=0.7, guidance=1.0))
    bb.load_tiny("cpu", torch.float32)
    ts = bb.set_timesteps(2)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, 3, 8, 8, generator=g)
    v = torch.randn(x.shape, generator=g)
    prev = bb.scheduler_step(v, ts[0], x, 0, torch.Generator().manual_seed(1))
    assert torch.equal(prev[:, :, 0], x[:, :, 0]) and not torch.allclose(prev[:, :, 1:], x[:, :, 1:])
    logp = bb.step_log_prob(v, ts[0], x, prev, 0)
    mean, std = bb.sde_step_mean_std(v[:, :, 1:], x[:, :, 1:], 0)
    ref = torch.distributions.Normal(mean, std).log_prob(prev[:, :, 1:]).mean(dim=(1, 2, 3, 4))
    torch.testing.assert_close(logp, ref, rtol=1e-5, atol=1e-5)


def test_not_a_diffusers_directory(tmp_path):
    (tmp_path / "transformer").mkdir()
    with pytest.raises(MissingWeightsError, match="no vae/, text_encoder/, tokenizer/, scheduler/"):
        LTXBackbone(LTXOptions(model=str(tmp_path))).load("cpu", torch.float32)


def test_local_directory_loads(tiny_dir):
    from diffusers import FlowMatchEulerDiscreteScheduler

    bb = LTXBackbone(LTXOptions(model=str(tiny_dir), **SIZE))
    bb.load("cpu", torch.float32)
    assert isinstance(bb.scheduler, FlowMatchEulerDiscreteScheduler) and bb.scheduler.config.use_dynamic_shifting
    assert not any(p.requires_grad for m in bb.modules().values() for p in m.parameters())


def test_default_and_smoke_sizes_pass_the_config_checks():
    """The released defaults pass the config-time size check, and --random-weights picks 8k+1 frames."""
    from vader_core.cli_errors import random_weight_sets
    from vader_core.config import build_config, resolve

    cfg = resolve(build_config(None, [], {"backbone.name": "ltx", "rewards": ["brightness"]}))
    assert (cfg.backbone.options["height"], cfg.backbone.options["width"], cfg.backbone.options["frames"]) == (
        512,
        704,
        161,
    )
    sets = random_weight_sets("ltx", None, [])
    frames = [s for s in sets if s.startswith("backbone.frames=")]
    assert frames and (int(frames[0].split("=")[1]) - 1) % 8 == 0, sets
