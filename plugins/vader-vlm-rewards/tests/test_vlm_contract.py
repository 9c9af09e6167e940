"""The reward contract (vader_core.testing) for both rewards, on tiny random Qwen2-VL models with their heads."""

import warnings

import pytest
import torch
from vader_vlm_rewards import HPSv3, VideoReward

from vader_core.testing import PluginPackageContractTests, RewardContractTests


class TestHPSv3Contract(RewardContractTests):
    reward_cls = HPSv3
    video_size = (2, 2, 32, 40)  # each frame resized to the tiny budget: 56x56, 4 image tokens
    invalid_options = [{"no_such_option_xyz": 1}, {"min_pixels": 10}, {"allow_pickle": "maybe"}]


class TestHPSv3NoCheckpointingContract(RewardContractTests):
    reward_cls = HPSv3
    video_size = (2, 1, 40, 32)

    def make_reward(self):
        r = HPSv3(HPSv3.Options(gradient_checkpointing=False, offload=True))
        r.load_tiny("cpu", torch.float32, seed=1)
        return r


class TestVideoRewardContract(RewardContractTests):
    reward_cls = VideoReward
    video_size = (2, 16, 32, 40)  # 16 frames at 8 fps: 4 frames sampled, 2 temporal patches
    invalid_options = [
        {"no_such_option_xyz": 1},
        {"dimensions": "aesthetic"},
        {"dimensions": {}},
        {"dimensions": {"vq": 0}},
        {"dimensions": {"vq": 1, "beauty": 2}},
        {"video_fps": 0},
        {"num_frames": 1},
    ]

    def make_reward(self):
        r = VideoReward(VideoReward.Options(video_fps=8))
        r.load_tiny("cpu", torch.float32, seed=0)
        return r


class TestVideoRewardWeightsContract(RewardContractTests):
    reward_cls = VideoReward
    video_size = (2, 6, 32, 32)

    def make_reward(self):
        r = VideoReward(VideoReward.Options(dimensions={"vq": 1.0, "mq": 0.5}, normalize=False, offload=True))
        r.load_tiny("cpu", torch.float32, seed=2)
        return r

    @pytest.fixture(autouse=True)
    def _short_clips(self):
        with warnings.catch_warnings():  # 6 frames at 16 fps: 4 frames is more than 2 per second
            warnings.simplefilter("ignore", UserWarning)
            yield


class TestPackage(PluginPackageContractTests):
    package = "vader_vlm_rewards"
    distribution = "vader-vlm-rewards"
    plugin_classes = [HPSv3, VideoReward]


def test_scores_frames_and_clips():
    assert HPSv3.scores == "frames" and VideoReward.scores == "clip"
    assert HPSv3.value_range is None and VideoReward.value_range is None
