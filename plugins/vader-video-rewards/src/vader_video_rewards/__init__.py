"""Video rewards for vader: ``vjepa`` (V-JEPA 2 masked feature-prediction error, temporal consistency)
and ``action`` (VideoMAE Kinetics action log-probability).

Registered through the ``vader`` entry point ``video_rewards``. Both score whole clips
(``scores = "clip"``), so vader decodes every frame of the videos they score. Importing this package
is instant: torch and transformers are imported only when a reward loads its model.
"""

from __future__ import annotations

from collections.abc import Callable

from vader_core.hookspecs import hookimpl

from .action import Action
from .vjepa import VJEPA

__version__ = "0.1.0"

REWARDS = (VJEPA, Action)

__all__ = ["Action", "REWARDS", "VJEPA", "register_rewards", "__version__"]


@hookimpl
def register_rewards(register: Callable[[type], None]) -> None:
    """Register the two reward classes."""
    for cls in REWARDS:
        register(cls)
