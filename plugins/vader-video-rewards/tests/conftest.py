import pytest
import torch

from vader_core.testing import only_plugin

pytest_plugins = ["vader_core.testing.fixtures"]
vader_plugin_name = only_plugin("video_rewards")


def moving_clip(batch: int, frames: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Smooth colour waves drifting a little each frame: ``(B, F, 3, H, W)`` in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    phase = torch.rand(batch, 3, 1, 1, generator=g) * 6
    return torch.stack([0.5 + 0.5 * torch.sin(6 * xx + 4 * yy + phase + 0.3 * t) for t in range(frames)], dim=1)


@pytest.fixture
def clip():
    """:func:`moving_clip`, for tests (conftest modules are not importable under --import-mode=importlib)."""
    return moving_clip
