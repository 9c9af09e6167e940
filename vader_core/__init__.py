"""vader: align video diffusion models with reward gradients.

The public API imports without torch: contracts, hooks and the registry. The engine
(:mod:`vader_core.trainer`, :mod:`vader_core.sampling`) imports torch when used.
"""

from __future__ import annotations

from .backbone import BackboneOptions, BackbonePlugin
from .errors import VaderError
from .hookspecs import hookimpl
from .method import Batch, MethodOptions, MethodPlugin, StepOutput, TrainContext
from .metric import MetricOptions, MetricPlugin
from .plugins import get_backbone, get_method, get_metric, get_reward, list_plugins
from .reward import RewardOptions, RewardPlugin

__version__ = "0.1.0"

__all__ = [
    "BackboneOptions",
    "BackbonePlugin",
    "Batch",
    "MethodOptions",
    "MethodPlugin",
    "MetricOptions",
    "MetricPlugin",
    "RewardOptions",
    "RewardPlugin",
    "StepOutput",
    "TrainContext",
    "VaderError",
    "get_backbone",
    "get_method",
    "get_metric",
    "get_reward",
    "hookimpl",
    "list_plugins",
    "__version__",
]
