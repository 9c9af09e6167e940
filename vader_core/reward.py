"""The reward contract: videos in, one score per video out, higher is better, differentiable."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:  # pragma: no cover
    import torch


class RewardOptions(BaseModel):
    """Base of reward options; subclasses add fields with ``Field(description=...)``."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class RewardPlugin:
    """Base class of reward plugins.

    Class attributes:
        name (`str`): registry name, e.g. ``"aesthetic"``.
        summary (`str`): one line shown by ``vader plugins``.
        Options (`type[RewardOptions]`): the pydantic options model.
        scores (`str`): ``"frames"`` for image rewards (the core picks which frames are decoded and the
            reward averages over them) or ``"clip"`` for rewards of whole clips.
        value_range (`tuple[float, float] | None`): the possible range of the score if bounded.

    Subclasses implement :meth:`score_frames` (when ``scores == "frames"``) or :meth:`score_clip`,
    and override :meth:`load` when they need a model.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    Options: ClassVar[type[RewardOptions]] = RewardOptions
    scores: ClassVar[Literal["frames", "clip"]] = "frames"
    value_range: ClassVar[tuple[float, float] | None] = None

    def __init__(self, options: RewardOptions | None = None) -> None:
        self.options = options if options is not None else self.Options()
        self.device: torch.device | str = "cpu"
        self.dtype: torch.dtype | None = None
        self.loaded = False

    def load(self, device: torch.device | str, dtype: torch.dtype) -> None:
        """Load the reward model (if any) onto ``device`` in ``dtype``; frozen, eval mode."""
        self.device, self.dtype, self.loaded = device, dtype, True

    def load_tiny(self, device: torch.device | str, dtype: torch.dtype, seed: int = 0) -> None:
        """Tiny random model of the real architecture, for tests. Weight-free rewards just load."""
        self.load(device, dtype)

    def score_frames(self, frames: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """Score ``frames`` ``(N, 3, H, W)`` in [0, 1] with one prompt each; returns ``(N,)``."""
        raise NotImplementedError

    def score_clip(self, video: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """Score videos ``(B, F, 3, H, W)`` in [0, 1]; returns ``(B,)``."""
        raise NotImplementedError

    def __call__(self, video: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """Reward of each video ``(B, F, 3, H, W)`` in [0, 1]; returns float32 ``(B,)``."""
        if video.ndim != 5 or video.shape[2] != 3:
            raise ValueError(f"reward `{self.name}` expects video of shape (B, F, 3, H, W), got {tuple(video.shape)}")
        if len(prompts) != video.shape[0]:
            raise ValueError(f"reward `{self.name}` got {len(prompts)} prompts for {video.shape[0]} videos")
        if not self.loaded:
            raise RuntimeError(f"reward `{self.name}` used before load(); call load(device, dtype) first")
        b, f = video.shape[:2]
        if self.scores == "clip":
            out = self.score_clip(video, list(prompts))
        else:
            flat_prompts = [p for p in prompts for _ in range(f)]
            out = self.score_frames(video.flatten(0, 1), flat_prompts).view(b, f).mean(dim=1)
        return out.float()
