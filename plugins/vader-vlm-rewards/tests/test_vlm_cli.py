"""Both rewards through vader's CLI: the CLI contract (`vader score --random-weights`, two training steps on the
built-in `tiny` backbone: HPSv3 on the decoded frames vader picks, VideoReward on every frame), reward
options, and one-line errors."""

import pytest

from vader_core.testing import RewardCLIContractTests, assert_one_line_error, run_cli, save_video


class TestVLMRewardCommands(RewardCLIContractTests):
    rewards = ["hpsv3", "video_reward"]
    video_size = (6, 40, 64)
    reward_options = {"video_reward": {"video_fps": 3}}  # 6 frames at 3 fps: 4 sampled, about the 2 fps trained
    train_options = {"backbone.steps": 2, "validation.max_prompts": 1, "memory.decoded_frames": 1}

    def test_clip_reward_decodes_every_frame(self, training_run):
        assert [row["extras"]["decoded_frames"] for row in training_run.rows] == [4, 4]

    def test_vader_score_takes_the_dimension_options(self, tmp_path):
        video = save_video(tmp_path / "video.npy", *self.video_size)
        fps = ["--set", "video_fps=3"]
        vq = self.cli_score(video, "video_reward", *fps, "--set", "dimensions=vq")
        mq = self.cli_score(video, "video_reward", *fps, "--set", "dimensions=mq")
        ta = self.cli_score(video, "video_reward", *fps, "--set", "dimensions=ta")
        overall = self.cli_score(video, "video_reward", *fps)
        assert overall == pytest.approx(vq + mq + ta, abs=1e-4) and len({vq, mq, ta}) == 3


@pytest.mark.parametrize(
    "reward, size, expected",
    [
        ("hpsv3", (2, 16, 40), "frames of 16x40 pixels are too small for Qwen2-VL"),
        ("video_reward", (1, 40, 40), "a video of 1 frame(s) is too short"),
    ],
)
def test_vader_score_errors_are_one_line(tmp_path, reward, size, expected):
    video = save_video(tmp_path / "video.npy", *size)
    res = run_cli(["score", video, "--reward", reward, "--device", "cpu", "--random-weights", "--prompt", "a cat"])
    assert_one_line_error(res, expected)
