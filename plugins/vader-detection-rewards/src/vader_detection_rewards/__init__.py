"""Detection rewards for vader: ``object_removal``.

Registered through the ``vader`` entry point ``detection_rewards``. Importing this package is instant:
torch and transformers are imported only when the reward loads its model.
"""

from __future__ import annotations

from collections.abc import Callable

from vader_core.hookspecs import hookimpl

from .object_removal import ObjectRemoval

__version__ = "0.1.0"

REWARDS = (ObjectRemoval,)

__all__ = ["ObjectRemoval", "REWARDS", "register_rewards", "__version__"]


@hookimpl
def register_rewards(register: Callable[[type], None]) -> None:
    """Register the reward classes."""
    for cls in REWARDS:
        register(cls)
