"""With the real published weights (VADER_TEST_WEIGHTS=1, models in the Hugging Face cache or given by the
VADER_VJEPA_MODEL / VADER_ACTION_MODEL environment variables): load both rewards at full size and check
that scores are finite, <= 0 and differentiable, and the behaviour the rewards are for. Skipped otherwise."""

import os

import pytest
import torch

pytestmark = [
    pytest.mark.weights,
    pytest.mark.skipif(os.environ.get("VADER_TEST_WEIGHTS") != "1", reason="needs real weights (VADER_TEST_WEIGHTS=1)"),
]

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _reward(name, **opts):
    from vader_core import plugins

    env = {"vjepa": "VADER_VJEPA_MODEL", "action": "VADER_ACTION_MODEL"}[name]
    if os.environ.get(env):
        opts["model"] = os.environ[env]
    cls = plugins.get_reward(name)
    r = cls(cls.Options(**opts))
    r.load(DEVICE, torch.float32)
    return r


def _moving_square(frames=16, h=240, w=320, seed=0):
    """A bright square gliding over a textured background: a smooth, temporally consistent clip."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    bg = torch.stack([0.4 + 0.2 * torch.sin(20 * xx), 0.4 + 0.2 * torch.cos(15 * yy), 0.3 + 0.1 * xx])
    bg = bg + 0.05 * torch.rand(3, h, w, generator=g)
    clip = []
    for t in range(frames):
        f = bg.clone()
        y, x = 40 + 4 * t, 30 + 10 * t
        f[:, y : y + 60, x : x + 60] = torch.tensor([0.95, 0.9, 0.2]).view(3, 1, 1)
        clip.append(f)
    return torch.stack(clip)[None].clamp(0, 1)


def test_vjepa_real_model():
    r = _reward("vjepa", num_frames=16, mask_draws=2)
    smooth = _moving_square().to(DEVICE).requires_grad_(True)
    score = r(smooth, [""])
    assert torch.isfinite(score).all() and score.item() <= 0
    score.sum().backward()
    assert smooth.grad is not None and smooth.grad.abs().sum() > 0
    # the behaviour the reward is for: shuffling the frames of a smooth clip makes it less predictable
    shuffled = smooth.detach()[:, torch.randperm(16, generator=torch.Generator().manual_seed(0))]
    with torch.no_grad():
        assert r(smooth.detach(), [""]).item() > r(shuffled, [""]).item()
    # which mask token transformers' predictor uses (index 1) must hold trained values
    assert r.model.predictor.embeddings.mask_tokens[1].abs().sum() > 0


def test_action_real_model():
    r = _reward("action")
    clip = _moving_square().to(DEVICE).requires_grad_(True)
    score = r(clip, ["a person playing guitar"])
    assert torch.isfinite(score).all() and -20 < score.item() <= 0
    score.sum().backward()
    assert clip.grad is not None and clip.grad.abs().sum() > 0
    assert len(r.labels.names) == 400 and r.labels.index("playing guitar") is not None
