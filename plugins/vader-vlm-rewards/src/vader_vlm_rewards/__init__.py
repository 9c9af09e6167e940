"""Vision-language preference rewards for vader: ``hpsv3`` (HPSv3, Qwen2-VL-7B, per frame) and
``video_reward`` (VideoAlign's VideoReward, Qwen2-VL-2B, whole clips), differentiable end to end on
transformers' own Qwen2-VL classes.

Registered through the ``vader`` entry point ``vlm_rewards``. Importing this package is instant: torch
and transformers are imported only when a reward loads its model.
"""

from __future__ import annotations

from collections.abc import Callable

from vader_core.hookspecs import hookimpl

from .hpsv3 import HPSv3
from .video_reward import VideoReward

__version__ = "0.1.0"

REWARDS = (HPSv3, VideoReward)

__all__ = ["HPSv3", "REWARDS", "VideoReward", "register_rewards", "__version__"]


@hookimpl
def register_rewards(register: Callable[[type], None]) -> None:
    """Register the two reward classes."""
    for cls in REWARDS:
        register(cls)
