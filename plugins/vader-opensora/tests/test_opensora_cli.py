"""The command line with the opensora backbone: the CLI contract (training on tiny random weights, generation
from a saved tiny release with a LoRA, missing weights), ddpo refused in one line."""

import pytest
from vader_opensora import OpenSoraBackbone

from vader_core.cli import main as vader
from vader_core.testing import QUIET_TRAINING, BackboneCLIContractTests, set_options

#: A tiny size the official timestep transform accepts (17 frames: one temporal chunk of 5 latent frames).
TINY = {"height": 32, "width": 32, "frames": 17, "steps": 2}


class TestOpenSoraCommands(BackboneCLIContractTests):
    backbone_cls = OpenSoraBackbone
    options = TINY
    lora_keys = (
        "transformer.spatial_blocks.0.attn.qkv.lora_A.weight",
        "transformer.temporal_blocks.0.cross_attn.q_linear.lora_B.weight",
    )

    @pytest.fixture
    def saved_weights(self, tiny_release, tiny_architecture):
        return {
            "model": tiny_release["model"],
            "vae": tiny_release["vae"],
            "text_encoder": tiny_release["text_encoder"],
        }


def test_ddpo_is_refused_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        vader(
            [
                "train",
                "--backbone",
                "opensora",
                "--random-weights",
                "--method",
                "ddpo",
                "--reward",
                "brightness",
                "--max-steps",
                "1",
                *set_options(QUIET_TRAINING),
                *set_options(TINY, "backbone."),
                "--output-dir",
                str(tmp_path / "run"),
                "--device",
                "cpu",
                "-q",
            ]
        )
    assert e.value.code != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "stochastic" in err, err


def test_official_sizes_pass_the_config_checks():
    """276x368 (240p 3:4, the recipe's default) is not a multiple of 8 and must still pass; --random-weights
    picks a frame count the timestep transform accepts."""
    from vader_core.cli_errors import random_weight_sets
    from vader_core.config import build_config
    from vader_core.resolve import resolve_config

    cfg = resolve_config(build_config(None, [], {"backbone.name": "opensora", "rewards": ["brightness"]}))
    assert (cfg.backbone.options["height"], cfg.backbone.options["width"]) == (276, 368)
    assert "backbone.frames=17" in random_weight_sets("opensora", None, [])
