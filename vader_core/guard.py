"""Guards against reward over-optimisation in validation: guard metrics, best checkpoint, early stop.

Pure policy: given validation records, which step is best and whether to stop. The metrics themselves
are built by :func:`vader_core.resolve.build_metrics`.

Guard metrics (``validation.metrics``) are metric plugins or rewards scored on the validation videos
(held-out prompts, fixed seeds) and never on training samples: they never enter the loss. The best
checkpoint maximises ``validation.select``, a weighted sum of ``reward`` (the held-out objective) and
guard metric names; early stopping ends a run when a guard metric falls by more than
``validation.early_stop.margin`` from its step-0 value. Both are written to ``summary.json``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .config import ValidationSection
    from .metric import MetricPlugin


_MOVED = ("build_metrics", "metric_kind", "resolve_validation")


def __getattr__(name: str) -> Any:
    # Deprecated aliases (one release): building metrics and resolving the section moved to vader_core.resolve.
    if name in _MOVED:
        warnings.warn(
            f"`vader_core.guard.{name}` is deprecated; use `vader_core.resolve.{name}`",
            DeprecationWarning,
            stacklevel=2,
        )
        from . import resolve

        return getattr(resolve, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def selection_value(record: dict[str, Any], weights: dict[str, float]) -> float:
    """``sum(w * value)`` over ``weights`` of one validation record (``reward`` or a metric name);
    NaN when a value is missing or not finite."""
    total = 0.0
    for k, w in weights.items():
        v = record.get("reward") if k == "reward" else (record.get("metrics") or {}).get(k)
        if v is None or not math.isfinite(float(v)):
            return float("nan")
        total += w * float(v)
    return total


@dataclass
class BestTracker:
    """The validation step with the highest :func:`selection_value` (the first one on ties)."""

    weights: dict[str, float]
    step: int | None = None
    value: float = float("-inf")

    def update(self, record: dict[str, Any]) -> bool:
        """Consider one validation record; True when it is the new best."""
        v = selection_value(record, self.weights)
        if math.isfinite(v) and v > self.value:
            self.step, self.value = int(record["step"]), v
            return True
        return False


@dataclass
class EarlyStopper:
    """Stops when ``metric`` falls more than ``margin`` below its first (step-0) value."""

    metric: str
    margin: float
    start: float | None = None
    last: float | None = None
    stopped_at: int | None = None
    history: list[tuple[int, float]] = field(default_factory=list)

    def _value(self, record: dict[str, Any]) -> float | None:
        v = record.get("reward") if self.metric == "reward" else (record.get("metrics") or {}).get(self.metric)
        return None if v is None else float(v)

    def update(self, record: dict[str, Any]) -> bool:
        """Consider one validation record; True when the run should stop now."""
        v = self._value(record)
        if v is None:
            return False
        self.history.append((int(record["step"]), v))
        self.last = v
        if self.start is None:
            self.start = v
            return False
        if self.stopped_at is None and v < self.start - self.margin:
            self.stopped_at = int(record["step"])
            return True
        return False


class ValidationGuard:
    """What the trainer asks at each validation: the metric values, and whether to keep or stop."""

    def __init__(self, validation: ValidationSection, metrics: dict[str, Callable[..., Any]]) -> None:
        self.metrics = metrics
        self.best = BestTracker(dict(validation.select))
        es = validation.early_stop
        self.stopper = EarlyStopper(es.metric, es.margin) if es is not None else None

    def score(self, videos: Sequence[torch.Tensor], prompts: Sequence[str]) -> dict[str, float]:
        """Mean of each metric over the validation videos (one ``(B, F, 3, H, W)`` batch per seed); a metric of
        ``scores = "seeds"`` scores each prompt from its videos of every seed, and the mean is over prompts."""
        import torch

        out = {}
        for name, fn in self.metrics.items():
            if getattr(fn, "scores", "video") == "seeds":
                seeds = cast("MetricPlugin", fn)  # only a metric plugin scores across seeds
                feats = torch.stack([seeds.video_features(v, list(prompts)) for v in videos], dim=1)  # (P, S, D)
                vals = seeds.score_seeds(feats, list(prompts))
            else:
                vals = torch.cat([fn(v, list(prompts)) for v in videos])
            out[name] = float(vals.mean())
        return out

    def update(self, record: dict[str, Any]) -> tuple[bool, bool]:
        """``(is_new_best, should_stop)`` after one validation record."""
        improved = self.best.update(record)
        stop = self.stopper.update(record) if self.stopper is not None else False
        return improved, stop

    def summary(self, best_path: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "best": {
                "step": self.best.step,
                "value": self.best.value if self.best.step is not None else None,
                "select": self.best.weights,
                "checkpoint": best_path if self.best.step is not None else None,
            }
        }
        if self.stopper is not None:
            s = self.stopper
            out["early_stop"] = {
                "metric": s.metric,
                "margin": s.margin,
                "start": s.start,
                "last": s.last,
                "stopped": s.stopped_at is not None,
                "step": s.stopped_at,
            }
        return out
