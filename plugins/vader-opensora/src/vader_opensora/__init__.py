"""Open-Sora 1.2 text-to-video for vader: the ``opensora`` backbone.

Registered through the ``vader`` entry point ``opensora``. Importing this package is instant: torch,
diffusers and transformers are imported only when a run loads the model.
"""

from __future__ import annotations

from collections.abc import Callable

from vader_core.hookspecs import hookimpl

from .backbone import OpenSoraBackbone, OpenSoraOptions

__version__ = "0.1.0"

__all__ = ["OpenSoraBackbone", "OpenSoraOptions", "register_backbones", "__version__"]


@hookimpl
def register_backbones(register: Callable[[type], None]) -> None:
    """Register the ``opensora`` backbone class."""
    register(OpenSoraBackbone)
