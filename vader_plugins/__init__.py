"""Built-in vader plugins, registered through the same hooks as third-party ones.

Importing this module is cheap: classes import torch only when used.
"""

from __future__ import annotations

from vader_core.hookspecs import hookimpl

from .ddpo import DDPOMethod
from .methods import VaderMethod
from .rewards import REWARDS
from .tiny import TinyBackbone
from .toy import ToyBackbone
from .toy.metric import METRICS as TOY_METRICS


@hookimpl
def register_backbones(register):  # noqa: ANN001, ANN201
    register(TinyBackbone)
    register(ToyBackbone)


@hookimpl
def register_rewards(register):  # noqa: ANN001, ANN201
    for cls in REWARDS:
        register(cls)


@hookimpl
def register_methods(register):  # noqa: ANN001, ANN201
    register(VaderMethod)
    register(DDPOMethod)


@hookimpl
def register_metrics(register):  # noqa: ANN001, ANN201
    for cls in TOY_METRICS:
        register(cls)
