"""CLIP-family rewards for vader: ``aesthetic``, ``hps``, ``pickscore`` and ``clip_score``.

Registered through the ``vader`` entry point ``clip_rewards``. Importing this package is instant:
torch, open_clip and transformers are imported only when a reward loads its model.
"""

from __future__ import annotations

from collections.abc import Callable

from vader_core.hookspecs import hookimpl

from .aesthetic import Aesthetic
from .clip_score import ClipScore
from .hps import HPS
from .pickscore import PickScore

__version__ = "0.1.0"

REWARDS = (Aesthetic, HPS, PickScore, ClipScore)

__all__ = ["Aesthetic", "ClipScore", "HPS", "PickScore", "REWARDS", "register_rewards", "__version__"]


@hookimpl
def register_rewards(register: Callable[[type], None]) -> None:
    """Register the four reward classes."""
    for cls in REWARDS:
        register(cls)
