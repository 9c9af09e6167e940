"""The command line with the cogvideox backbones: the CLI contract (training, generation, missing weights), a
ddpo smoke run on the stochastic DDIM step, and errors a person can act on."""

import math

import pytest
import torch
from vader_cogvideox import CogVideoXBackbone, CogVideoXI2VBackbone, CogVideoXOptions

from vader_core.cli import main as vader
from vader_core.errors import MissingWeightsError
from vader_core.testing import QUIET_TRAINING, BackboneCLIContractTests, lora_checkpoint, read_metrics, set_options

SIZE = {"height": 32, "width": 32, "frames": 9, "steps": 2}
TINY = [*set_options(SIZE, "backbone."), "--set", "lora.rank=4"]
QUIET = set_options(QUIET_TRAINING)


class TestCogVideoXCommands(BackboneCLIContractTests):
    backbone_cls = CogVideoXBackbone
    options = SIZE

    @pytest.fixture
    def saved_weights(self, tiny_dir):
        return {"model": tiny_dir}


class TestCogVideoXI2VCommands(BackboneCLIContractTests):
    backbone_cls = CogVideoXI2VBackbone
    options = SIZE

    @pytest.fixture
    def saved_weights(self, tiny_i2v_dir):
        return {"model": tiny_i2v_dir}


def _train(out, *extra):
    vader(
        [
            "train",
            "--backbone",
            "cogvideox",
            "--random-weights",
            "--reward",
            "brightness",
            "--max-steps",
            "2",
            *QUIET,
            *TINY,
            *extra,
            "--output-dir",
            str(out),
            "--device",
            "cpu",
            "-q",
        ]
    )
    return read_metrics(out)


def test_ddpo_smoke_from_the_cli(tmp_path):
    """ddpo runs on cogvideox with DDIM's stochastic step (backbone.eta > 0): finite losses, a LoRA that moved."""
    out = tmp_path / "run"
    rows = _train(
        out,
        "--method",
        "ddpo",
        "--set",
        "sampling.eta=1.0",
        "--set",
        "method.sample_batches=2",
        "--set",
        "method.clip_range=0.2",
    )
    assert [r["step"] for r in rows] == [1, 2]
    assert all(math.isfinite(r["loss"]) and not r["skipped"] for r in rows)
    lora = lora_checkpoint(out, 2)
    assert any(t.abs().sum() > 0 for k, t in lora.items() if "lora_B" in k)


def test_ddpo_without_noise_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        _train(tmp_path / "run", "--method", "ddpo")
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "sampling.eta=1.0" in err, err


def test_vader_training_with_the_dpm_sampler(tmp_path):
    """The reward-gradient method through the DPM sampler (noise from the generator, the previous x0 carried)."""
    rows = _train(tmp_path / "run", "--set", "backbone.scheduler=dpm", "--set", "truncation.k=2")
    assert all(math.isfinite(r["loss"]) and r["grad_norm"] > 0 for r in rows)


def test_not_a_diffusers_directory(tmp_path):
    (tmp_path / "transformer").mkdir()
    with pytest.raises(MissingWeightsError, match="no vae/, text_encoder/, tokenizer/, scheduler/"):
        CogVideoXBackbone(CogVideoXOptions(model=str(tmp_path))).load("cpu", torch.float32)


def test_local_directory_loads_with_its_sampler(tmp_path):
    from vader_cogvideox.tiny import save_tiny

    d = save_tiny(tmp_path / "dpm", "1.0-rope", "dpm")
    bb = CogVideoXBackbone(CogVideoXOptions(model=str(d), **SIZE))
    bb.load("cpu", torch.float32)
    assert type(bb.scheduler).__name__ == "CogVideoXDPMScheduler" and bb.text_length == 16
    assert not any(p.requires_grad for m in bb.modules().values() for p in m.parameters())
    bb = CogVideoXBackbone(CogVideoXOptions(model=str(d), scheduler="ddim", **SIZE))
    bb.load("cpu", torch.float32)
    assert type(bb.scheduler).__name__ == "CogVideoXDDIMScheduler"


def test_default_and_smoke_sizes_pass_the_config_checks():
    from vader_core.cli_errors import random_weight_sets
    from vader_core.config import build_config, resolve
    from vader_core.errors import ConfigError

    cfg = resolve(build_config(None, [], {"backbone.name": "cogvideox", "rewards": ["brightness"]}))
    assert (cfg.backbone.options["height"], cfg.backbone.options["width"], cfg.backbone.options["frames"]) == (
        768,
        1360,
        81,
    )
    assert "backbone.frames=9" in random_weight_sets("cogvideox", None, [])
    with pytest.raises(ConfigError, match="multiple of 16"):
        resolve(build_config(None, ["backbone.height=760"], {"backbone.name": "cogvideox", "rewards": ["brightness"]}))
