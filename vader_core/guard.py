"""Guards against reward over-optimisation in validation: guard metrics, best checkpoint, early stop.

Guard metrics (``validation.metrics``) are metric plugins or rewards scored on the validation videos
(held-out prompts, fixed seeds) and never on training samples: they never enter the loss. The best
checkpoint maximises ``validation.select``, a weighted sum of ``reward`` (the held-out objective) and
guard metric names; early stopping ends a run when a guard metric falls by more than
``validation.early_stop.margin`` from its step-0 value. Both are written to ``summary.json``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .config import MetricSection, ValidationSection


def metric_kind(section: "MetricSection") -> str:
    """``metric`` or ``reward``: which registry ``section.name`` comes from."""
    from . import plugins

    if section.kind != "auto":
        return section.kind
    return "metric" if plugins.has("metric", section.name) else "reward"


def _metric_cls(section: "MetricSection") -> type:
    from . import plugins

    kind = metric_kind(section)
    if section.kind == "auto" and not plugins.has("reward", section.name) and not plugins.has("metric", section.name):
        from .errors import PluginNotFoundError

        reg = plugins.registry().entries
        raise PluginNotFoundError(
            f"`validation.metrics`: unknown metric or reward `{section.name}`; metrics: "
            f"{', '.join(sorted(reg['metric'])) or 'none'}; rewards: {', '.join(sorted(reg['reward'])) or 'none'}")
    return plugins.get_metric(section.name) if kind == "metric" else plugins.get_reward(section.name)


def resolve_validation(v: "ValidationSection") -> dict[str, Any]:
    """The ``validation`` section with every metric's options validated and written in; checks that
    ``select`` and ``early_stop`` name ``reward`` or a configured metric."""
    from .config import _validate_options

    data = json.loads(v.model_dump_json())
    names = []
    for i, m in enumerate(v.metrics):
        cls = _metric_cls(m)
        opts = _validate_options(cls.Options, m.options, f"validation.metrics.{i}")
        data["metrics"][i] = {"name": m.name, "kind": metric_kind(m), **opts.model_dump(mode="json")}
        names.append(m.name)
    if len(set(names)) != len(names):
        raise ConfigError(f"`validation.metrics`: each metric may appear once, got {names}")
    known = {"reward", *names}
    bad = [k for k in v.select if k not in known]
    if bad:
        raise ConfigError(f"`validation.select` names {bad}; use `reward` or a `validation.metrics` name ({sorted(known)})")
    if not v.select:
        raise ConfigError("`validation.select` needs at least one weight, e.g. {reward: 1.0}")
    if v.early_stop is not None and v.early_stop.metric not in known:
        raise ConfigError(f"`validation.early_stop.metric` is {v.early_stop.metric!r}; use `reward` or a "
                          f"`validation.metrics` name ({sorted(known)})")
    return data


class _RewardAsMetric:
    """A reward used as a guard metric: its raw score, without autograd."""

    def __init__(self, reward: Any) -> None:
        self.reward = reward

    def __call__(self, video: "torch.Tensor", prompts: Sequence[str]) -> "torch.Tensor":
        import torch

        with torch.no_grad():
            return self.reward(video, list(prompts)).detach().float().cpu()


def build_metrics(sections: Sequence["MetricSection"], device: Any, dtype: Any, tiny: bool = False,
                  seed: int = 0) -> dict[str, Callable[["torch.Tensor", Sequence[str]], "torch.Tensor"]]:
    """Load every guard metric; name -> callable ``(video (B, F, 3, H, W), prompts) -> (B,)`` on the CPU."""
    out: dict[str, Callable[..., Any]] = {}
    for s in sections:
        cls = _metric_cls(s)
        inst = cls(cls.Options.model_validate(s.options))
        if tiny:
            inst.load_tiny(device, dtype, seed=seed)
        else:
            inst.load(device, dtype)
        out[s.name] = inst if metric_kind(s) == "metric" else _RewardAsMetric(inst)
    return out


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

    def __init__(self, validation: "ValidationSection", metrics: dict[str, Callable[..., Any]]) -> None:
        self.metrics = metrics
        self.best = BestTracker(dict(validation.select))
        es = validation.early_stop
        self.stopper = EarlyStopper(es.metric, es.margin) if es is not None else None

    def score(self, videos: Sequence["torch.Tensor"], prompts: Sequence[str]) -> dict[str, float]:
        """Mean of each metric over the validation videos (one ``(B, F, 3, H, W)`` batch per seed)."""
        import torch

        out = {}
        for name, fn in self.metrics.items():
            vals = torch.cat([fn(v, list(prompts)) for v in videos])
            out[name] = float(vals.mean())
        return out

    def update(self, record: dict[str, Any]) -> tuple[bool, bool]:
        """``(is_new_best, should_stop)`` after one validation record."""
        improved = self.best.update(record)
        stop = self.stopper.update(record) if self.stopper is not None else False
        return improved, stop

    def summary(self, best_path: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {"best": {
            "step": self.best.step, "value": self.best.value if self.best.step is not None else None,
            "select": self.best.weights, "checkpoint": best_path if self.best.step is not None else None,
        }}
        if self.stopper is not None:
            s = self.stopper
            out["early_stop"] = {
                "metric": s.metric, "margin": s.margin, "start": s.start, "last": s.last,
                "stopped": s.stopped_at is not None, "step": s.stopped_at,
            }
        return out
