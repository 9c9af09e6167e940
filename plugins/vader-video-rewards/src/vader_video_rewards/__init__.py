"""Video rewards and guard metrics for vader.

Rewards (whole clips, ``scores = "clip"``, so vader decodes every frame of the videos they score):
``vjepa`` (V-JEPA 2 masked feature-prediction error, temporal consistency) and ``action`` (VideoMAE
Kinetics action log-probability). Guard metrics (never trained on): ``motion`` and ``dynamic_degree``
(RAFT optical flow, after VBench) and ``diversity`` (VideoMAE embeddings across seeds, the VADER paper's).

Registered through the ``vader`` entry point ``video_rewards``. Importing this package is instant:
torch, torchvision and transformers are imported only when a plugin loads its model.
"""

from __future__ import annotations

from collections.abc import Callable

from vader_core.hookspecs import hookimpl

from .action import Action
from .diversity import Diversity
from .motion import DynamicDegree, Motion
from .vjepa import VJEPA

__version__ = "0.1.0"

REWARDS = (VJEPA, Action)
METRICS = (Motion, DynamicDegree, Diversity)

__all__ = [
    "Action",
    "Diversity",
    "DynamicDegree",
    "METRICS",
    "Motion",
    "REWARDS",
    "VJEPA",
    "register_metrics",
    "register_rewards",
    "__version__",
]


@hookimpl
def register_rewards(register: Callable[[type], None]) -> None:
    """Register the two reward classes."""
    for cls in REWARDS:
        register(cls)


@hookimpl
def register_metrics(register: Callable[[type], None]) -> None:
    """Register the guard metrics."""
    for cls in METRICS:
        register(cls)
