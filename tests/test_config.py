import pytest

from vader_core.config import VaderConfig, apply_set, build_config
from vader_core.errors import ConfigError
from vader_core.resolve import resolve_config


def test_precedence_defaults_file_set_flags(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("optim:\n  lr: 0.001\n  grad_accum: 4\ntrain:\n  max_steps: 7\n")
    cfg = build_config(f, ["optim.lr=0.002"], {"train.max_steps": 9})
    assert cfg.optim.lr == 0.002  # --set beats file
    assert cfg.optim.grad_accum == 4  # file beats default
    assert cfg.train.max_steps == 9  # flag beats file
    assert cfg.optim.betas == (0.9, 0.999)  # default


def test_toml_config(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[backbone]\nname = "tiny"\nframes = 2\n[[rewards]]\nname = "saturation"\nweight = 2.0\n')
    cfg = resolve_config(build_config(f))
    assert cfg.backbone.options["frames"] == 2
    assert cfg.rewards[0].name == "saturation" and cfg.rewards[0].weight == 2.0


def test_reward_flags_and_target_objective():
    cfg = build_config(None, ["rewards.0.objective={target: 0.8}"], {})
    assert cfg.rewards[0].target == 0.8
    cfg = build_config(None, [], {"rewards": ["brightness=0.5", "target_color"]})
    assert [(r.name, r.weight) for r in cfg.rewards] == [("brightness", 0.5), ("target_color", 1.0)]
    # `--set rewards.N.x` addresses the rewards the flag chose, whatever the order on the command line.
    cfg = resolve_config(
        build_config(
            None,
            ["rewards.1.color=#ff8000", "rewards.0.objective={target: 0.3}"],
            {"rewards": ["brightness", "target_color=2"]},
        )
    )
    assert cfg.rewards[1].options["color"] == pytest.approx([1.0, 128 / 255, 0.0])
    assert cfg.rewards[1].weight == 2.0 and cfg.rewards[0].target == 0.3


def test_bad_values_name_field_and_value():
    with pytest.raises(ConfigError) as e:
        build_config(None, ["optim.lr=-1"])
    assert "optim.lr" in str(e.value) and "-1" in str(e.value)
    with pytest.raises(ConfigError) as e:
        resolve_config(build_config(None, ["backbone.frames=0"]))
    assert "backbone.frames" in str(e.value) and "0" in str(e.value)
    with pytest.raises(ConfigError, match="unknown option `backbone.framez`"):
        resolve_config(build_config(None, ["backbone.framez=3"]))
    with pytest.raises(ConfigError, match="rewards.0.color"):
        resolve_config(build_config(None, ["rewards.0.name=target_color", "rewards.0.color=nocolour"]))
    with pytest.raises(ConfigError, match="weight must be a number"):
        build_config(None, [], {"rewards": ["brightness=heavy"]})
    with pytest.raises(ConfigError, match="config file not found"):
        build_config("/nonexistent/c.yaml")


def test_resolve_fills_plugin_defaults_and_sampling():
    cfg = resolve_config(VaderConfig())
    assert cfg.backbone.options["frames"] == 4 and cfg.sampling.steps == cfg.backbone.options["steps"]
    cfg = resolve_config(build_config(None, ["sampling.steps=2"]))
    assert cfg.backbone.options["steps"] == 2
    with pytest.raises(ConfigError, match="truncation.k"):
        resolve_config(build_config(None, ["truncation.k=9"]))


def test_apply_set_lists_and_values():
    d = {"rewards": [{"name": "a"}]}
    apply_set(d, "rewards.0.weight=2")
    apply_set(d, "x.y=[1, 2]")
    assert d == {"rewards": [{"name": "a", "weight": 2}], "x": {"y": [1, 2]}}
    with pytest.raises(ConfigError):
        apply_set(d, "novalue")
