"""Several rewards combined with weights into one objective, each one logged.

Pure arithmetic over reward instances: :func:`vader_core.resolve.build_objective` makes one from the
configuration's ``rewards``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .config import RewardSection
    from .reward import RewardPlugin


@dataclass
class Term:
    name: str
    reward: RewardPlugin
    weight: float
    target: float | None  # None: maximize

    def value(self, score: torch.Tensor) -> torch.Tensor:
        """Signed contribution to the total reward (higher is better)."""
        if self.target is None:
            return self.weight * score
        return -self.weight * (score - self.target).abs()


class Objective:
    """Weighted sum of rewards.

    For ``maximize`` the term is ``weight * score``; for ``target`` it is ``-weight * |score - target|``
    (so the official losses, e.g. aesthetic ``0.1 * |s - 10|``, are ``target: 10, weight: 0.1``).
    The loss is minus the total, averaged over the batch.
    """

    def __init__(self, terms: Sequence[Term]) -> None:
        if not terms:
            raise ValueError("an objective needs at least one reward")
        names = [t.name for t in terms]
        if len(set(names)) != len(names):
            raise ValueError(f"each reward may appear once, got {names}")
        self.terms = list(terms)

    @classmethod
    def from_config(cls, sections: Sequence[RewardSection]) -> Objective:
        """Deprecated alias of :func:`vader_core.resolve.build_objective` (kept for one release)."""
        warnings.warn(
            "`Objective.from_config` is deprecated; use `vader_core.resolve.build_objective`",
            DeprecationWarning,
            stacklevel=2,
        )
        from .resolve import build_objective

        return build_objective(sections)

    @property
    def needs_clip(self) -> bool:
        """True when a reward scores whole clips, so every frame must be decoded."""
        return any(t.reward.scores == "clip" for t in self.terms)

    def load(self, device: torch.device | str, dtype: torch.dtype, tiny: bool = False, seed: int = 0) -> None:
        for t in self.terms:
            if tiny:
                t.reward.load_tiny(device, dtype, seed=seed)
            else:
                t.reward.load(device, dtype)

    def __call__(self, video: torch.Tensor, prompts: Sequence[str]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Returns the weighted total ``(B,)`` and each raw score ``(B,)``."""
        scores = {t.name: t.reward(video, prompts) for t in self.terms}
        total = sum(t.value(scores[t.name]) for t in self.terms)
        return total, scores  # type: ignore[return-value]
