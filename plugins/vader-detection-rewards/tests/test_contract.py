"""vader's reward contract (vader_core.testing) on tiny random YOLOS and OWL-ViT detectors, loaded through
the real ``load`` (``from_pretrained`` of ``save_pretrained`` directories) with the default options."""

import pytest
import torch
from vader_detection_rewards import ObjectRemoval

from vader_core.testing import PluginPackageContractTests, RewardContractTests

INVALID = [
    {"no_such_option_xyz": 1},
    {"threshold": 1.5},
    {"threshold": -0.1},
    {"detector": "yolo"},
    {"target": "  "},
    {"temperature": -1},
    {"image_height": 8},
]


class _FromDirectory(RewardContractTests):
    options: dict = {}
    directory: str = ""

    @pytest.fixture(autouse=True)
    def _directory(self, saved, request):
        request.cls.model_dir = str(getattr(saved, self.directory))

    def make_reward(self):
        r = ObjectRemoval(ObjectRemoval.Options(model=self.model_dir, **self.options))
        r.load("cpu", torch.float32)
        return r


class TestYolosContract(_FromDirectory):
    reward_cls = ObjectRemoval
    directory = "yolos_small"
    video_size = (2, 2, 24, 40)
    invalid_options = INVALID


class TestYolosHardThresholdContract(_FromDirectory):
    """The official rule (``temperature: 0``): the gradient flows through the detected slots."""

    reward_cls = ObjectRemoval
    directory = "yolos_small"
    options = {"temperature": 0.0, "threshold": 0.1}
    invalid_options = INVALID


class TestOwlViTContract(_FromDirectory):
    reward_cls = ObjectRemoval
    directory = "owlvit"
    options = {"target": "a red umbrella"}
    video_size = (2, 2, 40, 24)
    invalid_options = INVALID


class TestTinyCocoContract(RewardContractTests):
    """``load_tiny`` (what `--random-weights` uses): YOLOS with the COCO labels of hustvl/yolos-*. With random
    weights `book` is never a slot's best class, so count any slot with a high target probability."""

    reward_cls = ObjectRemoval

    def make_reward(self):
        r = ObjectRemoval(ObjectRemoval.Options(top_class_only=False, threshold=0.01))
        r.load_tiny("cpu", torch.float32, seed=0)
        return r


class TestPackage(PluginPackageContractTests):
    package = "vader_detection_rewards"
    distribution = "vader-detection-rewards"
    plugin_classes = [ObjectRemoval]


def test_vader_names_this_distribution_for_an_unknown_object_removal():
    from vader_core import plugins

    assert plugins.KNOWN_PLUGINS["object_removal"] == "vader-detection-rewards"


@pytest.mark.parametrize("detector", ["yolos", "owlvit"])
def test_frozen_eval_and_run_dtype(detector):
    r = ObjectRemoval(ObjectRemoval.Options(detector=detector, target="book"))
    r.load_tiny("cpu", torch.bfloat16, seed=0)
    assert r.kind == detector
    assert not r.model.training and not any(p.requires_grad for p in r.model.parameters())
    assert all(p.dtype == torch.bfloat16 for p in r.model.parameters())
    video = torch.rand(1, 2, 3, 32, 32)
    out = r(video, ["a cat"])
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
