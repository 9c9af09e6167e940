"""With the real published weights (VADER_TEST_WEIGHTS=1, files in the Hugging Face cache or given by
the VADER_AESTHETIC_MLP / VADER_HPS_CHECKPOINT environment variables): load every reward at full size
and check that scores are finite, in the models' known ranges and differentiable. Skipped otherwise."""

import os

import pytest
import torch

pytestmark = [
    pytest.mark.weights,
    pytest.mark.skipif(os.environ.get("VADER_TEST_WEIGHTS") != "1", reason="needs real weights (VADER_TEST_WEIGHTS=1)"),
]


def _options(name):
    return {
        "aesthetic": {"mlp_path": os.environ.get("VADER_AESTHETIC_MLP")},
        "hps": {"checkpoint": os.environ.get("VADER_HPS_CHECKPOINT")},
    }.get(name, {})


@pytest.mark.parametrize(
    "name,lo,hi",
    [("aesthetic", 0.0, 11.0), ("hps", -1.0, 1.0), ("pickscore", -100.0, 100.0), ("clip_score", -1.0, 1.0)],
)
def test_real_model_scores(name, lo, hi, image_tools):
    from vader_core import plugins

    draw, to_tensor = image_tools
    cls = plugins.get_reward(name)
    r = cls(cls.Options(**_options(name)))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    r.load(device, torch.float32)
    video = to_tensor(draw(320, 512, seed=0))[:, None].to(device).requires_grad_(True)
    score = r(video, ["a colourful abstract painting with circles and squares"])
    assert torch.isfinite(score).all() and lo <= score.item() <= hi
    score.sum().backward()
    assert video.grad is not None and video.grad.abs().sum() > 0
