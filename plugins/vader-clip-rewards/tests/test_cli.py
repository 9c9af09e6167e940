"""The rewards through vader's CLI and configuration: the CLI contract (`vader score`, a training smoke run
with the six rewards), reward options, and the objective settings that reproduce VADER's official losses."""

import pytest
import torch

from vader_core.testing import RewardCLIContractTests, save_video


class TestClipRewardCommands(RewardCLIContractTests):
    rewards = ["aesthetic", "hps", "pickscore", "clip_score", "mps", "image_reward"]

    def test_vader_score_takes_reward_options(self, tmp_path):
        video = save_video(tmp_path / "video.npy", *self.video_size)
        plain = self.cli_score(video, "clip_score", "--prompt", "a cat")
        scaled = self.cli_score(video, "clip_score", "--prompt", "a cat", "--set", "scale=100")
        assert scaled == pytest.approx(100 * plain, rel=1e-4, abs=1e-4)
        letterbox = self.cli_score(
            video, "hps", "--prompt", "a cat", "--set", "version=v2", "--set", "resize_mode=longest"
        )
        squash = self.cli_score(video, "hps", "--prompt", "a cat", "--set", "resize_mode=squash")
        assert letterbox != squash


OFFICIAL = """
rewards:
  - {name: aesthetic, weight: 0.1, objective: {target: 10}}
  - {name: hps, weight: 1.0, version: v2.1}
  - {name: pickscore, weight: 0.01, objective: {target: 100}}
"""


def test_objective_settings_reproduce_the_official_losses(tmp_path):
    """aesthetic 0.1*|s-10|, HPS 1-s, PickScore |1-s/100|: the README's YAML gives the same losses."""
    from vader_core.config import build_config
    from vader_core.resolve import build_objective, resolve_config

    (tmp_path / "run.yaml").write_text(OFFICIAL)
    cfg = resolve_config(build_config(tmp_path / "run.yaml"))
    assert cfg.rewards[1].version == "v2.1" and cfg.rewards[0].mlp_path is None  # options resolved in place
    objective = build_objective(cfg.rewards)
    objective.load("cpu", torch.float32, tiny=True, seed=0)
    video = torch.rand(2, 2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    prompts = ["a cat", "a dog"]
    with torch.no_grad():
        total, scores = objective(video, prompts)
    a, h, p = scores["aesthetic"], scores["hps"], scores["pickscore"]
    official = 0.1 * (a - 10).abs() + (1 - h) + (1 - p / 100).abs()
    # the core's loss is -total; the official sum differs by the constant 1 of the HPS term
    torch.testing.assert_close(-total + 1, official)
    for t in objective.terms:
        torch.testing.assert_close(
            -t.value(scores[t.name]) + (1 if t.name == "hps" else 0),
            {"aesthetic": 0.1 * (a - 10).abs(), "hps": 1 - h, "pickscore": (1 - p / 100).abs()}[t.name],
        )


COMBINED = """
rewards:
  - {name: aesthetic, weight: 0.075, objective: {target: 10}}
  - {name: hps, weight: 0.5, objective: {target: 1}}
"""


def test_objective_settings_reproduce_the_official_aesthetic_hps_loss(tmp_path):
    """VADER's aesthetic+HPS loss (1.5 * 0.1 * |a - 10| + |1 - h|) / 2, exactly."""
    from vader_core.config import build_config
    from vader_core.resolve import build_objective, resolve_config

    (tmp_path / "run.yaml").write_text(COMBINED)
    objective = build_objective(resolve_config(build_config(tmp_path / "run.yaml")).rewards)
    objective.load("cpu", torch.float32, tiny=True, seed=0)
    video = torch.rand(2, 2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        total, scores = objective(video, ["a cat", "a dog"])
    a, h = scores["aesthetic"], scores["hps"]
    torch.testing.assert_close(-total, (1.5 * 0.1 * (a - 10).abs() + (1 - h).abs()) / 2)
