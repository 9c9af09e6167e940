"""Guard metrics of the bundled toy model: does each clip follow its prompt's colour and direction?

The deterministic check of :mod:`vader_plugins.toy.quality` as metric plugins (one score per clip, 1
when it follows the prompt, 0 when not; the mean over clips is the share), for ``validation.metrics``
and ``vader eval``::

    validation:
      metrics: [{name: toy_color}, {name: toy_direction}]
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from vader_core.lazy import torch
from vader_core.metric import MetricOptions, MetricPlugin


class ToyCheckOptions(MetricOptions):
    threshold: float = Field(
        0.3, gt=0, description="RGB distance from the background above which a pixel is the object's."
    )
    min_travel: float = Field(
        2.0, ge=0, description="Centroid travel in pixels below which the object counts as still."
    )


class _ToyCheck(MetricPlugin):
    Options = ToyCheckOptions
    value_range = (0.0, 1.0)
    field: str = ""

    def compute(self, video: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        from .data import parse_caption
        from .quality import analyze_clip

        out = []
        for clip, prompt in zip(video, prompts, strict=True):
            try:
                want = getattr(parse_caption(prompt), self.field)
            except ValueError:
                raise ValueError(
                    f"metric `{self.name}` needs toy captions such as 'a red circle moving left on a "
                    f"gray background', got {prompt!r}"
                ) from None
            got = analyze_clip(clip, self.options.threshold, self.options.min_travel)[self.field]
            out.append(1.0 if got == want else 0.0)
        return torch.tensor(out, dtype=torch.float32)


class ToyColor(_ToyCheck):
    name = "toy_color"
    summary = "Toy model: 1 when the clip's moving object has the prompted colour, else 0 (guard metric)."
    field = "color"


class ToyDirection(_ToyCheck):
    name = "toy_direction"
    summary = "Toy model: 1 when the clip's object moves in the prompted direction, else 0 (guard metric)."
    field = "direction"


METRICS = (ToyColor, ToyDirection)
