"""Image rewards for vader: the CLIP family ``aesthetic``, ``hps``, ``pickscore``, ``clip_score`` and
``mps`` (CLIP-H with a cross-attention head), and ``image_reward`` (BLIP).

All score decoded frames through the same differentiable preprocessing (:mod:`.preprocess`) and load
their weights through the same one-line-error helpers. Registered through the ``vader`` entry point
``clip_rewards``. Importing this package is instant: torch, open_clip and transformers are imported
only when a reward loads its model.
"""

from __future__ import annotations

from collections.abc import Callable

from vader_core.hookspecs import hookimpl

from .aesthetic import Aesthetic
from .clip_score import ClipScore
from .hps import HPS
from .image_reward import ImageReward
from .mps import MPS
from .pickscore import PickScore

__version__ = "0.1.0"

REWARDS = (Aesthetic, HPS, PickScore, ClipScore, MPS, ImageReward)

__all__ = [
    "Aesthetic",
    "ClipScore",
    "HPS",
    "ImageReward",
    "MPS",
    "PickScore",
    "REWARDS",
    "register_rewards",
    "__version__",
]


@hookimpl
def register_rewards(register: Callable[[type], None]) -> None:
    """Register the reward classes."""
    for cls in REWARDS:
        register(cls)
