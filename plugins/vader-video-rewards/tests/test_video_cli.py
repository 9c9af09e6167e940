"""The rewards through vader's CLI: the CLI contract (`vader score` with tiny random weights, training steps
on the built-in `tiny` backbone, where vader decodes every frame because both rewards score whole clips),
reward options, one-line errors."""

import pytest

from vader_core.testing import RewardCLIContractTests, assert_one_line_error, run_cli, save_video


class TestVideoRewardCommands(RewardCLIContractTests):
    rewards = ["vjepa", "action"]
    prompt = "a man playing guitar"  # `action` reads its class from the prompt
    video_size = (6, 40, 64)
    reward_options = {"vjepa": {"mask_draws": 1}}
    train_prompts = ["a bear riding a bike", "a panda playing piano"]
    train_options = {"backbone.steps": 2, "validation.max_prompts": 1, "memory.decoded_frames": 1}

    @pytest.fixture
    def video(self, tmp_path):
        return save_video(tmp_path / "video.npy", *self.video_size)

    def test_clip_rewards_decode_every_frame(self, training_run):
        # whatever memory.decoded_frames says: every latent frame of the tiny backbone
        assert [row["extras"]["decoded_frames"] for row in training_run.rows] == [4, 4]

    def test_vader_score_takes_reward_options(self, video):
        guitar = self.cli_score(video, "action", "--prompt", "a man playing guitar")
        fixed = self.cli_score(video, "action", "--prompt", "a cat", "--set", "label=playing guitar")
        assert fixed == pytest.approx(guitar, abs=1e-6)
        one = self.cli_score(video, "vjepa", "--set", "mask_draws=1")
        other = self.cli_score(video, "vjepa", "--set", "mask_draws=1", "--set", "mask_seed=5")
        assert one != other

    @pytest.mark.parametrize(
        "args, expected",
        [
            (["--prompt", "a cat"], "no class name of the model occurs in the prompt 'a cat'"),
            (["--prompt", "a cat", "--set", "label=playing guitr"], "did you mean `playing guitar`"),
        ],
    )
    def test_vader_score_errors_are_one_line(self, video, args, expected):
        res = run_cli(["score", video, "--reward", "action", "--device", "cpu", "--random-weights", *args])
        assert_one_line_error(res, expected)
