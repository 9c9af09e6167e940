"""``hps``: Human Preference Score v2 / v2.1, differentiable.

An OpenCLIP ViT-H-14 (the ``laion2B-s32B-b79K`` architecture) whose weights are replaced by
``HPS_v2_compressed.pt`` or ``HPS_v2.1_compressed.pt`` from the hub repo ``xswu/HPSv2``.
Score = cosine(image embedding, prompt embedding), raw (no logit scale), as ``hpsv2.score`` returns
it (a few tenths for generated images). VADER's loss ``1 - s`` is ``objective: maximize`` (or
``{target: 1}``, the same gradient while s < 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator

from vader_core.modules import seeded
from vader_core.reward import RewardOptions

from ._common import TINY_CLIP, create_open_clip
from ._weights import hub_file, load_strict, local_file, read_state_dict
from .base import OpenClipReward

if TYPE_CHECKING:  # pragma: no cover
    import torch

HPS_REPO = "xswu/HPSv2"
HPS_FILES = {"v2": "HPS_v2_compressed.pt", "v2.1": "HPS_v2.1_compressed.pt"}


class HPSOptions(RewardOptions):
    version: Literal["v2", "v2.1"] = Field("v2.1", description="HPS version: `v2` or `v2.1` (`v2.0` means `v2`).")
    checkpoint: str | None = Field(
        None,
        description=f"Local path of `HPS_v2_compressed.pt` / `HPS_v2.1_compressed.pt`; default: the file of "
        f"`version` from the Hugging Face hub repo `{HPS_REPO}`.",
    )
    clip_model: str = Field(
        "ViT-H-14",
        description="Advanced: open_clip architecture the checkpoint fits (the tests use the tiny `vader-tiny-clip`).",
    )
    resize_mode: Literal["shortest", "longest", "squash"] = Field(
        "longest",
        description="Frame to 224x224: `longest` side to 224 + black padding (the HPSv2 scorer's preprocessing), "
        "`shortest` side + centre crop (open_clip's default), or `squash` (the VADER training code).",
    )
    allow_pickle: bool = Field(
        False,
        description="Unpickle Python objects in the weights file (weights_only=False) when it holds more "
        "than tensors; the released files do not need it. Only for files you trust.",
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute the vision tower in backward instead of storing its activations."
    )

    @field_validator("version", mode="before")
    @classmethod
    def _alias(cls, v: Any) -> Any:
        return {"v2.0": "v2", "2": "v2", "2.0": "v2", "2.1": "v2.1"}.get(str(v), v) if v is not None else v


def tiny_model(seed: int = 0) -> Any:
    """The seeded tiny open_clip CLIP standing in for ViT-H-14 (GELU, like the LAION models)."""
    with seeded(seed):
        return create_open_clip(TINY_CLIP, quick_gelu=False)


class HPS(OpenClipReward):
    """Human Preference Score v2 / v2.1 of each frame and its prompt: cosine of OpenCLIP ViT-H-14 embeddings."""

    name = "hps"
    summary = "Human Preference Score v2/v2.1 (OpenCLIP ViT-H-14), cosine of image and prompt, in [-1, 1]."
    Options: ClassVar = HPSOptions
    value_range = (-1.0, 1.0)
    # ViT-H-14 laion2B-s32B-b79K: OpenAI mean/std, bicubic (open_clip's defaults for that tag).
    # HPSv2 resizes float tensors (ToTensor comes first), so nothing clamps the bicubic overshoot.
    clamp_resized = False

    def load(self, device: torch.device | str, dtype: torch.dtype) -> None:
        """Load the HPS checkpoint into ViT-H-14 (local path or the hub, honouring ``HF_HUB_OFFLINE``)."""
        o = self.options
        filename = HPS_FILES[o.version]
        where = {"reward": self.name, "what": f"HPS {o.version} weights", "option": "checkpoint"}
        if o.checkpoint:
            path = local_file(
                o.checkpoint, filename=filename, source=f"the Hugging Face hub repo `{HPS_REPO}`", **where
            )
        else:
            path = hub_file(HPS_REPO, [filename], **where)
        # The published files hold {"state_dict": ...} of the whole CLIP model (hpsv2's loader reads
        # checkpoint["state_dict"] into a strict load_state_dict); a bare state dict loads too.
        state = read_state_dict(path, reward=self.name, what=f"HPS {o.version} weights", allow_pickle=o.allow_pickle)
        model = create_open_clip(o.clip_model, quick_gelu=False, reward=self.name)
        load_strict(model, state, reward=self.name, what=f"`{o.clip_model}` model", path=path)
        self._setup(model, {}, o.clip_model, device, dtype)

    def load_tiny(self, device: torch.device | str, dtype: torch.dtype, seed: int = 0) -> None:
        """Tiny random OpenCLIP model of the same class, for tests."""
        self._setup(tiny_model(seed), {}, TINY_CLIP, device, dtype)

    def score_frames(self, frames: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """HPS of each frame ``(N, 3, H, W)`` in [0, 1] with its prompt. Returns ``(N,)``."""
        return self.cosine(frames, prompts)
