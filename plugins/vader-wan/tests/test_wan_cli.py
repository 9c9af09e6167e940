"""The command line with the wan backbone: the CLI contract (training, generation, missing weights), a ddpo
smoke run, and errors a person can act on."""

import math

import pytest
import torch
from vader_wan import WanBackbone, WanOptions

from vader_core.cli import main as vader
from vader_core.errors import MissingWeightsError
from vader_core.testing import QUIET_TRAINING, BackboneCLIContractTests, lora_checkpoint, read_metrics, set_options

SIZE = {"height": 32, "width": 32, "frames": 5, "steps": 2}
TINY = [*set_options(SIZE, "backbone."), "--set", "lora.rank=4"]
QUIET = set_options(QUIET_TRAINING)


def _lora_changed(out, step):
    lora = lora_checkpoint(out, step)
    assert lora and all(k.startswith("transformer.") for k in lora)
    return any(t.abs().sum() > 0 for k, t in lora.items() if "lora_B" in k)


class TestWanCommands(BackboneCLIContractTests):
    backbone_cls = WanBackbone
    options = SIZE

    @pytest.fixture
    def saved_weights(self, tiny_dir):
        return {"model": tiny_dir}


def test_ddpo_smoke_from_the_cli(tmp_path):
    """ddpo runs on wan with the stochastic SDE step (sampling.eta > 0)."""
    out = tmp_path / "run"
    vader(
        [
            "train",
            "--backbone",
            "wan",
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
    assert _lora_changed(out, 2)


def test_ddpo_without_noise_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        vader(
            [
                "train",
                "--backbone",
                "wan",
                "--random-weights",
                "--reward",
                "brightness",
                "--method",
                "ddpo",
                "--max-steps",
                "1",
                *QUIET,
                *TINY,
                "--output-dir",
                str(tmp_path / "run"),
                "--device",
                "cpu",
                "-q",
            ]
        )
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "sampling.eta" in err, err


def test_not_a_diffusers_directory(tmp_path):
    (tmp_path / "transformer").mkdir()
    with pytest.raises(MissingWeightsError, match="no vae/, text_encoder/, tokenizer/, scheduler/"):
        WanBackbone(WanOptions(model=str(tmp_path))).load("cpu", torch.float32)


def test_local_directory_loads(tiny_dir):
    from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

    bb = WanBackbone(WanOptions(model=str(tiny_dir), height=32, width=32, frames=5, steps=2))
    bb.load("cpu", torch.float32)
    assert isinstance(bb.scheduler, UniPCMultistepScheduler) and bb.scheduler.config.flow_shift == 3.0
    assert not any(p.requires_grad for m in bb.modules().values() for p in m.parameters())
    bb = WanBackbone(WanOptions(model=str(tiny_dir), frames=5, scheduler="euler", flow_shift=5.0))
    bb.load("cpu", torch.float32)
    assert isinstance(bb.scheduler, FlowMatchEulerDiscreteScheduler) and bb.scheduler.config.shift == 5.0


def test_default_and_smoke_sizes_pass_the_config_checks():
    """The released defaults pass the config-time size check, and --random-weights picks 4k+1 frames."""
    from vader_core.cli_errors import random_weight_sets
    from vader_core.config import build_config
    from vader_core.errors import ConfigError
    from vader_core.resolve import resolve_config

    cfg = resolve_config(build_config(None, [], {"backbone.name": "wan", "rewards": ["brightness"]}))
    assert (cfg.backbone.options["height"], cfg.backbone.options["frames"]) == (480, 81)
    assert "backbone.frames=5" in random_weight_sets("wan", None, [])
    with pytest.raises(ConfigError, match="multiple of 16"):
        resolve_config(build_config(None, ["backbone.height=472"], {"backbone.name": "wan", "rewards": ["brightness"]}))


def test_train_both_experts_from_the_cli(tmp_path):
    """A14B with `lora_expert=both` and both steps kept: the reward trains both experts' LoRA (one file)."""
    from vader_wan.tiny import save_tiny

    d = save_tiny(tmp_path / "a14b", extra={"boundary_ratio": 0.9}, two_experts=True)
    out = tmp_path / "run"
    vader(
        [
            "train",
            "--backbone",
            "wan",
            "--set",
            f"backbone.model={d}",
            "--set",
            "backbone.lora_expert=both",
            "--set",
            "truncation.k=2",
            "--reward",
            "brightness",
            "--max-steps",
            "2",
            *QUIET,
            *TINY,
            "--output-dir",
            str(out),
            "--device",
            "cpu",
            "--precision",
            "fp32",
            "-q",
        ]
    )
    assert all(math.isfinite(r["loss"]) for r in read_metrics(out))
    b = {k: t for k, t in lora_checkpoint(out, 2).items() if "lora_B" in k}
    for expert in ("transformer.transformer.", "transformer.transformer_2."):
        mine = [t for k, t in b.items() if k.startswith(expert)]
        assert mine and any(t.abs().sum() > 0 for t in mine), f"{expert} LoRA did not train"
