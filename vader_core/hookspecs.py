"""Writing a vader plugin in five minutes.

vader finds plugins through Python entry points in the group ``vader``. A plugin is a module
with one or more *hook implementations*; each hook receives a ``register`` callback and calls it
with **classes** (never instances), so that listing plugins stays instant and no weights load
until a run asks for them.

A reward plugin, complete::

    # my_reward/__init__.py
    from vader_core import RewardPlugin, RewardOptions, hookimpl
    from pydantic import Field


    class Redness(RewardPlugin):
        name = "redness"
        summary = "Mean red minus mean green and blue."
        scores = "frames"            # "frames": per frame, averaged; "clip": whole videos

        class Options(RewardOptions):
            gain: float = Field(1.0, description="Multiplier of the score.")

        def score_frames(self, frames, prompts):
            # frames: (N, 3, H, W) in [0, 1]; return (N,), differentiable in frames
            r, g, b = frames.unbind(dim=1)
            return self.options.gain * (r - (g + b) / 2).mean(dim=(1, 2))


    @hookimpl
    def register_rewards(register):
        register(Redness)

and its ``pyproject.toml``::

    [project]
    name = "vader-redness"
    version = "0.1.0"
    dependencies = ["vader"]

    [project.entry-points.vader]
    redness = "my_reward"

After ``pip install .`` it appears in ``vader plugins`` and ``vader train --reward redness`` uses
it. Backbones work the same way through :func:`register_backbones` with a subclass of
:class:`vader_core.BackbonePlugin`, and training algorithms through :func:`register_methods` with a
subclass of :class:`vader_core.MethodPlugin`. Test your plugin with the contract mixins in
:mod:`vader_core.testing`. ``docs/plugins.md`` walks through packaging and testing in detail.

Hooks only ever gain keyword arguments; an implementation may accept any subset of them.
Module-level imports of a plugin should stay light: import torch-heavy code inside methods, or
from :mod:`vader_core.lazy`, so that ``vader plugins`` never loads it.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

PROJECT = "vader"

hookspec = pluggy.HookspecMarker(PROJECT)
#: Decorator for hook implementations in plugins: ``@hookimpl``.
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_backbones(register: Callable[[type], None]) -> None:
    """Register backbone classes (subclasses of :class:`vader_core.BackbonePlugin`).

    Args:
        register (`Callable[[type], None]`): call once per backbone class.
    """


@hookspec
def register_rewards(register: Callable[[type], None]) -> None:
    """Register reward classes (subclasses of :class:`vader_core.RewardPlugin`).

    Args:
        register (`Callable[[type], None]`): call once per reward class.
    """


@hookspec
def register_methods(register: Callable[[type], None]) -> None:
    """Register training methods (subclasses of :class:`vader_core.MethodPlugin`), e.g. ``vader``
    (reward backpropagation) or a policy-gradient baseline.

    Args:
        register (`Callable[[type], None]`): call once per method class.
    """


@hookspec
def register_metrics(register: Callable[[type], None]) -> None:
    """Register guard metrics (subclasses of :class:`vader_core.MetricPlugin`): non-differentiable scores
    per video (or, with ``scores = "seeds"``, per prompt from its videos of every seed), higher is better,
    evaluated in validation and ``vader eval``, never trained on.

    Args:
        register (`Callable[[type], None]`): call once per metric class.
    """
