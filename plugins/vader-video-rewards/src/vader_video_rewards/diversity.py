"""``diversity``: how different the videos of one prompt are across seeds, the VADER paper's measure.

The paper reports "the variance of VideoMAE latent space embeddings across the videos of each prompt,
averaged over prompts" (VideoCrafter2 0.0037, VADER-Aesthetic+HPS 0.0023): reward fine-tuning narrows
what a prompt can produce. It does not say which checkpoint, which pooling or which variance; here:

- the encoder of the ``action`` reward's classifier (``MCG-NJU/videomae-base-finetuned-kinetics``): one
  download serves both, and its features tell actions and scenes apart, which is what diversity should
  count (a pixel-level encoder would count noise);
- the clip resampled as ``action`` does (16 frames, 224x224, ImageNet normalisation), the last hidden
  state averaged over tokens: a 768-wide embedding per video;
- per prompt, the unbiased variance across its seeds of each embedding dimension, averaged over the
  dimensions; the reported value is its mean over prompts.

So the numbers are comparable between runs of vader, not with the paper's. A metric with
``scores = "seeds"``: validation (``validation.seeds``, two or more) and ``vader eval`` (``--seed`` twice or
more) give it every seed's video of each prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from vader_core.metric import MetricOptions, MetricPlugin
from vader_core.modules import freeze, seeded

from ._common import ResizeMode, as_size, load_pretrained, normalize, resample_clip
from .action import VIDEOMAE_REPO, tiny_config

if TYPE_CHECKING:  # pragma: no cover
    import torch


class DiversityOptions(MetricOptions):
    model: str = Field(
        VIDEOMAE_REPO,
        description="VideoMAE checkpoint whose encoder embeds the videos (a hub id or a local directory); the "
        "default is the `action` reward's.",
    )
    resize_mode: ResizeMode = Field(
        "squash",
        description="Frame to the model's image_size: `squash` (whole frame) or `crop` (VideoMAE's processor).",
    )


def tiny_model(seed: int = 0) -> Any:
    """The seeded tiny random ``VideoMAEModel`` (the ``action`` reward's tiny configuration)."""
    from transformers import VideoMAEModel

    with seeded(seed):
        return VideoMAEModel(tiny_config())


class Diversity(MetricPlugin):
    """Mean per-dimension variance, across seeds, of each prompt's mean-pooled VideoMAE embeddings."""

    name = "diversity"
    summary = "Diversity across seeds of a prompt: variance of VideoMAE video embeddings (VADER paper), guard metric."
    Options: ClassVar = DiversityOptions
    value_range = (0.0, float("inf"))
    scores = "seeds"

    def __init__(self, options: DiversityOptions | None = None) -> None:
        super().__init__(options)
        self.model: torch.nn.Module | None = None
        self.frames = 0
        self.size = (0, 0)

    def load(self, device: torch.device | str, dtype: torch.dtype) -> None:
        """The encoder of ``model`` (hub id or local directory, honouring ``HF_HUB_OFFLINE``), frozen, in ``dtype``."""
        from transformers import VideoMAEModel

        model = load_pretrained(
            VideoMAEModel,
            self.options.model,
            reward=self.name,
            model_type="videomae",
            default_repo=VIDEOMAE_REPO,
            kind="VideoMAE",
        )
        self._setup(model, device, dtype)

    def load_tiny(self, device: torch.device | str, dtype: torch.dtype, seed: int = 0) -> None:
        """A tiny random ``VideoMAEModel``, for tests."""
        self._setup(tiny_model(seed), device, dtype)

    def _setup(self, model: Any, device: Any, dtype: Any) -> None:
        self.frames, self.size = int(model.config.num_frames), as_size(model.config.image_size)
        self.model = freeze(model, device, dtype)
        super().load(device, dtype)

    def features(self, video: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """Mean-pooled last hidden state ``(B, D)`` of each clip."""
        x = resample_clip(video.float(), self.frames, self.size, self.options.resize_mode)
        x = normalize(x).to(device=self.device, dtype=next(self.model.parameters()).dtype)
        return self.model(pixel_values=x).last_hidden_state.mean(dim=1)

    def compute_seeds(self, features: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """Per prompt, the unbiased variance across seeds of each dimension, averaged over dimensions: ``(P,)``."""
        return features.var(dim=1, unbiased=True).mean(dim=-1)
