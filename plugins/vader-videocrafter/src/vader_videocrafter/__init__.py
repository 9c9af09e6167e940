"""VideoCrafter2 text-to-video for vader: the ``videocrafter2`` backbone.

Registered through the ``vader`` entry point ``videocrafter2``. Importing this package is instant:
torch, diffusers and open_clip are imported only when a run loads the model.
"""

from __future__ import annotations

from collections.abc import Callable

from vader_core.hookspecs import hookimpl

from .backbone import HUB_ID, VideoCrafterBackbone, VideoCrafterOptions

__version__ = "0.1.0"

__all__ = ["HUB_ID", "VideoCrafterBackbone", "VideoCrafterOptions", "register_backbones", "__version__"]


@hookimpl
def register_backbones(register: Callable[[type], None]) -> None:
    """Register the ``videocrafter2`` backbone class."""
    register(VideoCrafterBackbone)
