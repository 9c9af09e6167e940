"""The reward through vader's CLI and configuration: the CLI contract (`vader score`, two training steps on
the built-in `tiny` backbone with the reward from a YAML file), detector options, one-line errors."""

import pytest

from vader_core.testing import RewardCLIContractTests, assert_one_line_error, run_cli, save_video


class TestObjectRemovalCommands(RewardCLIContractTests):
    rewards = ["object_removal"]
    # random logits near the threshold: the target is detected in some slots, so the gradient is not zero
    reward_options = {"object_removal": {"target": "book", "threshold": 0.005, "top_class_only": False}}

    @pytest.fixture
    def video(self, tmp_path):
        return save_video(tmp_path / "video.npy", *self.video_size)

    @pytest.mark.parametrize(
        "sets",
        [
            [],
            ["--set", "detector=owlvit", "--set", "target=a red umbrella"],
            ["--set", "target=dog", "--set", "threshold=0.005", "--set", "top_class_only=false"],
        ],
    )
    def test_vader_score_detector_options(self, video, sets):
        assert 0 <= self.cli_score(video, "object_removal", *sets) <= 1

    @pytest.mark.parametrize("sets, expected", [("target=bok", "did you mean `book`"), ("threshold=2", "threshold")])
    def test_vader_score_bad_option_is_one_line(self, video, sets, expected):
        res = run_cli(
            ["score", video, "--reward", "object_removal", "--set", sets, "--device", "cpu", "--random-weights"]
        )
        assert_one_line_error(res, expected)
