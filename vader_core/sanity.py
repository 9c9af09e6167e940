"""Input that validates field by field yet means nothing as a whole: one-line errors and warnings,
found when the configuration is resolved (before any weights load).

Warnings go to the ``vader`` logger; the CLI prints each as one ``warning:`` line on stderr.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from .errors import ConfigError

log = logging.getLogger("vader")


def warn(message: str) -> None:
    """One warning line (``warning: message`` on the CLI's stderr)."""
    log.warning(message)


def check_finite(data: Any, where: str = "") -> None:
    """Refuse infinite and NaN numbers anywhere in a configuration tree (``optim.lr=.inf``)."""
    if isinstance(data, float) and not math.isfinite(data):
        raise ConfigError(f"`{where or 'value'}` must be a finite number, got {data}")
    if isinstance(data, dict):
        for k, v in data.items():
            check_finite(v, f"{where}.{k}" if where else str(k))
    elif isinstance(data, (list, tuple)):
        for i, v in enumerate(data):
            check_finite(v, f"{where}.{i}" if where else str(i))


def check_resolved(config: Any, backbone_cls: type, bopts: Any) -> None:
    """Errors and warnings about a configuration whose every field is valid on its own."""
    m = int(getattr(backbone_cls, "size_multiple", 1) or 1)
    for side in ("height", "width"):
        v = getattr(bopts, side, None)
        if isinstance(v, int) and v % m:
            lo, hi = (v // m) * m, (v // m + 1) * m
            near = f"{lo} or {hi}" if lo >= m else f"{hi}"
            raise ConfigError(
                f"`backbone.{side}` must be a multiple of {m} for backbone `{config.backbone.name}` (its VAE and "
                f"denoiser halve the size), got {v}; use {near}"
            )
    weights = [r.weight for r in config.rewards]
    if sum(weights) == 0:
        shown = ", ".join(f"{r.name}={r.weight:g}" for r in config.rewards)
        raise ConfigError(
            f"the reward weights sum to 0 ({shown}): the objective means nothing; give the rewards positive "
            "weights, e.g. --reward NAME=1"
        )
    for r in config.rewards:
        if r.weight == 0:
            warn(f"reward `{r.name}` has weight 0: it is computed and logged but does not train; remove it or "
                 "give it a weight")
    if config.train.prompts is not None and not [p for p in config.train.prompts if str(p).strip()]:
        raise ConfigError("`train.prompts` is an empty list; give prompts, or remove the key to use "
                          "`train.prompt_file` or the built-in prompt set")
    if config.validation.prompts is not None and not [p for p in config.validation.prompts if str(p).strip()]:
        raise ConfigError("`validation.prompts` is an empty list; give held-out prompts, or remove the key to use "
                          "the prompt set's held-out prompts")
    if not config.validation.seeds:
        raise ConfigError("`validation.seeds` is an empty list; give at least one seed, e.g. [0]")
    frames = getattr(bopts, "frames", None)
    d = config.memory.decoded_frames
    if isinstance(frames, int) and d is not None and d > frames:
        warn(f"`memory.decoded_frames` is {d}, above the {frames} frames of `backbone.frames`: every frame is "
             "decoded (the same as `memory.decoded_frames: null`)")
