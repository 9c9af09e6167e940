"""``clip_score``: prompt-image agreement under any open_clip model, differentiable.

Score = ``scale * cos(image embedding, prompt embedding)``. With ``scale: 100`` it is the CLIPScore
of torchmetrics and with ``scale: 2.5`` that of Hessel et al. (2021), except that those clamp
negative cosines to 0, which would cut the gradient, so this reward does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from vader_core.modules import seeded
from vader_core.reward import RewardOptions

from ._common import TINY_CLIP, create_open_clip
from .base import OpenClipReward

if TYPE_CHECKING:  # pragma: no cover
    import torch


class ClipScoreOptions(RewardOptions):
    clip_model: str = Field("ViT-L-14", description="open_clip architecture, e.g. `ViT-L-14`, `ViT-H-14`, `ViT-B-32`.")
    clip_pretrained: str = Field(
        "openai",
        description="Weights: an open_clip pretrained tag of `clip_model` (e.g. `openai`, `laion2b_s32b_b82k`; "
        "downloaded from the hub) or a local open_clip checkpoint file.",
    )
    scale: float = Field(
        1.0,
        gt=0,
        description="Multiplier of the cosine: 1 (default), 100 (torchmetrics CLIPScore), 2.5 (Hessel et al.).",
    )
    quick_gelu: bool | None = Field(
        None,
        description="QuickGELU activations (OpenAI weights use them); null: as the tag says, or the architecture's "
        "default for a local file.",
    )
    resize_mode: Literal["shortest", "longest", "squash"] | None = Field(
        None,
        description="Frame to model input: `shortest` + centre crop, `longest` + padding, `squash`; null: as "
        "open_clip's preprocess for the tag (shortest for the CLIP models).",
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute the vision tower in backward instead of storing its activations."
    )


def tiny_model(seed: int = 0, quick_gelu: bool = False) -> Any:
    """The seeded tiny open_clip CLIP used by ``load_tiny``."""
    with seeded(seed):
        return create_open_clip(TINY_CLIP, quick_gelu=quick_gelu)


class ClipScore(OpenClipReward):
    """``scale * cos(image, prompt)`` of an open_clip model, for each frame and its prompt."""

    name = "clip_score"
    summary = "CLIP score: scale * cosine of image and prompt embeddings of any open_clip model."
    Options: ClassVar = ClipScoreOptions
    value_range = (-1.0, 1.0)

    def __init__(self, options: ClipScoreOptions | None = None) -> None:
        super().__init__(options)
        s = float(self.options.scale)
        self.value_range = (-s, s)

    def load(self, device: torch.device | str, dtype: torch.dtype) -> None:
        """Load ``clip_model`` with ``clip_pretrained`` (tag or local file, honouring ``HF_HUB_OFFLINE``)."""
        path, tag_cfg = self.clip_weights()
        model = self.build_clip(path, tag_cfg, self.options.quick_gelu, local_quick_gelu=False)
        self._setup(model, tag_cfg, self.options.clip_model, device, dtype)

    def load_tiny(self, device: torch.device | str, dtype: torch.dtype, seed: int = 0) -> None:
        """Tiny random open_clip model (the real ``CLIP`` class), for tests."""
        self._setup(tiny_model(seed, bool(self.options.quick_gelu)), {}, TINY_CLIP, device, dtype)

    def score_frames(self, frames: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """``scale * cos`` of each frame ``(N, 3, H, W)`` in [0, 1] and its prompt. Returns ``(N,)``."""
        return self.options.scale * self.cosine(frames, prompts)
