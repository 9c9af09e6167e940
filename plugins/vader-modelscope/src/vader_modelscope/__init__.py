"""ModelScope text-to-video for vader: the ``modelscope`` backbone.

Registered through the ``vader`` entry point ``modelscope``. Importing this package is instant: torch,
diffusers and transformers are imported only when a run loads the model.
"""

from __future__ import annotations

from collections.abc import Callable

from vader_core.hookspecs import hookimpl

from .backbone import HUB_ID, ModelScopeBackbone, ModelScopeOptions

__version__ = "0.1.0"

__all__ = ["HUB_ID", "ModelScopeBackbone", "ModelScopeOptions", "register_backbones", "__version__"]


@hookimpl
def register_backbones(register: Callable[[type], None]) -> None:
    """Register the ``modelscope`` backbone class."""
    register(ModelScopeBackbone)
