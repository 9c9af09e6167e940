"""Weight-free differentiable rewards, for debugging, tests and simple controls.

All take frames in [0, 1]. Luma is ``Y = 0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field, field_validator

from vader_core.lazy import torch
from vader_core.reward import RewardOptions, RewardPlugin

_LUMA = (0.299, 0.587, 0.114)


def _luma(frames: torch.Tensor) -> torch.Tensor:
    w = frames.new_tensor(_LUMA).view(1, 3, 1, 1)
    return (frames * w).sum(dim=1)


class Brightness(RewardPlugin):
    """Mean luma of the frame: ``mean(Y)``, in [0, 1]."""

    name = "brightness"
    summary = "Mean luma of the frames, in [0, 1] (weight-free)."
    value_range = (0.0, 1.0)

    def score_frames(self, frames, prompts: Sequence[str]):  # noqa: ANN001
        return _luma(frames.float()).mean(dim=(1, 2))


class Saturation(RewardPlugin):
    """Mean chroma: ``mean(max(R, G, B) - min(R, G, B))``, in [0, 1] (0 for grey, 1 for pure hues)."""

    name = "saturation"
    summary = "Mean colour chroma max(RGB) - min(RGB), in [0, 1] (weight-free)."
    value_range = (0.0, 1.0)

    def score_frames(self, frames, prompts: Sequence[str]):  # noqa: ANN001
        f = frames.float()
        return (f.amax(dim=1) - f.amin(dim=1)).mean(dim=(1, 2))


class Contrast(RewardPlugin):
    """RMS contrast: standard deviation of the luma over the frame, in [0, 0.5]."""

    name = "contrast"
    summary = "RMS contrast (std of luma), in [0, 0.5] (weight-free)."
    value_range = (0.0, 0.5)

    def score_frames(self, frames, prompts: Sequence[str]):  # noqa: ANN001
        y = _luma(frames.float()).flatten(1)
        return (y.var(dim=1, unbiased=False) + 1e-12).sqrt()


class Sharpness(RewardPlugin):
    """Mean absolute luma gradient: ``mean(|dY/dx|) + mean(|dY/dy|)`` (finite differences), in [0, 2]."""

    name = "sharpness"
    summary = "Mean absolute luma gradient (edges), in [0, 2] (weight-free)."
    value_range = (0.0, 2.0)

    def score_frames(self, frames, prompts: Sequence[str]):  # noqa: ANN001
        y = _luma(frames.float())
        dx = (y[:, :, 1:] - y[:, :, :-1]).abs().mean(dim=(1, 2))
        dy = (y[:, 1:, :] - y[:, :-1, :]).abs().mean(dim=(1, 2))
        return dx + dy


class TemporalSmoothness(RewardPlugin):
    """Minus the mean absolute change between consecutive frames: ``-mean(|x[t+1] - x[t]|)``, in [-1, 0].

    Scores whole clips (every frame is decoded). A single-frame clip scores 0.
    """

    name = "temporal_smoothness"
    summary = "Penalises frame-to-frame change: -mean|x[t+1] - x[t]|, in [-1, 0] (weight-free)."
    scores = "clip"
    value_range = (-1.0, 0.0)

    def score_clip(self, video, prompts: Sequence[str]):  # noqa: ANN001
        v = video.float()
        if v.shape[1] < 2:
            return v.new_zeros(v.shape[0]) + 0.0 * v.sum(dim=(1, 2, 3, 4))
        return -(v[:, 1:] - v[:, :-1]).abs().mean(dim=(1, 2, 3, 4))


_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")
_NAMED = {
    "red": (1.0, 0.0, 0.0),
    "green": (0.0, 0.5, 0.0),
    "blue": (0.0, 0.0, 1.0),
    "yellow": (1.0, 1.0, 0.0),
    "cyan": (0.0, 1.0, 1.0),
    "magenta": (1.0, 0.0, 1.0),
    "white": (1.0, 1.0, 1.0),
    "black": (0.0, 0.0, 0.0),
    "orange": (1.0, 0.65, 0.0),
    "purple": (0.5, 0.0, 0.5),
    "gray": (0.5, 0.5, 0.5),
    "grey": (0.5, 0.5, 0.5),
}


class TargetColorOptions(RewardOptions):
    color: tuple[float, float, float] = Field(
        (1.0, 0.0, 0.0),
        description="Target RGB in [0, 1]: three numbers, a hex string like '#ff8800', or a colour name.",
    )

    @field_validator("color", mode="before")
    @classmethod
    def _parse(cls, v):  # noqa: ANN001, ANN206
        if isinstance(v, str):
            s = v.strip().lower()
            if s in _NAMED:
                return _NAMED[s]
            m = _HEX.match(s)
            if not m:
                raise ValueError(f"expected [r, g, b], '#rrggbb' or one of {', '.join(sorted(_NAMED))}")
            h = m.group(1)
            return tuple(int(h[i : i + 2], 16) / 255.0 for i in (0, 2, 4))
        return v

    @field_validator("color")
    @classmethod
    def _range(cls, v):  # noqa: ANN001, ANN206
        if any(not 0.0 <= c <= 1.0 for c in v):
            raise ValueError(f"each component must be in [0, 1], got {list(v)}")
        return v


class TargetColor(RewardPlugin):
    """Minus the distance of the frame's mean colour to ``color``: ``-||mean_rgb - color||_2 / sqrt(3)``, in [-1, 0]."""

    name = "target_color"
    summary = "Closeness of the mean colour to an RGB target, in [-1, 0] (weight-free)."
    Options: ClassVar = TargetColorOptions
    value_range = (-1.0, 0.0)

    def score_frames(self, frames, prompts: Sequence[str]):  # noqa: ANN001
        mean = frames.float().mean(dim=(2, 3))
        target = mean.new_tensor(self.options.color)
        return -((mean - target).pow(2).sum(dim=1) + 1e-12).sqrt() / 3**0.5


REWARDS = (Brightness, Saturation, Contrast, Sharpness, TemporalSmoothness, TargetColor)
