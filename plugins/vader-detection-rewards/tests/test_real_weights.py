"""With the real published weights (VADER_TEST_WEIGHTS=1, models in the Hugging Face cache): load
`hustvl/yolos-base`, `hustvl/yolos-tiny` and `google/owlvit-base-patch32` at full size and check that the
reward is finite, in [0, 1] and differentiable. Skipped otherwise."""

import os

import pytest
import torch

pytestmark = [
    pytest.mark.weights,
    pytest.mark.skipif(os.environ.get("VADER_TEST_WEIGHTS") != "1", reason="needs real weights (VADER_TEST_WEIGHTS=1)"),
]


@pytest.mark.parametrize(
    "options",
    [{}, {"model": "hustvl/yolos-tiny", "target": "dog"}, {"detector": "owlvit", "target": "a photo of a book"}],
)
def test_real_detector(options):
    from vader_detection_rewards import ObjectRemoval

    r = ObjectRemoval(ObjectRemoval.Options(**options))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    r.load(device, torch.float32)
    video = torch.rand(1, 1, 3, 320, 512, generator=torch.Generator().manual_seed(0)).to(device).requires_grad_(True)
    score = r(video, [""])
    assert torch.isfinite(score).all() and 0 <= score.item() <= 1
    score.sum().backward()
    assert video.grad is not None and torch.isfinite(video.grad).all()
