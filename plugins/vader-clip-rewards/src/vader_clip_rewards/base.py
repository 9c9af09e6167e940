"""The base classes of the CLIP rewards.

:class:`ClipReward` owns what a frame reward on CLIP embeddings does whatever its model: the
differentiable preprocessing of frames to the model's input (:attr:`~ClipReward.spec`), unit-length
image embeddings with gradient, prompt embeddings (each distinct prompt once, without gradient) and
their cosine. :class:`OpenClipReward` adds an open_clip model: loading it from an open_clip tag or a
local checkpoint file, the preprocessing open_clip's ``preprocess`` would apply, the tokenizer,
freezing and gradient checkpointing. A reward keeps what is its own: its options and defaults, where
its weights come from, its head and its formula.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from vader_core.lazy import torch as _torch
from vader_core.modules import freeze
from vader_core.reward import RewardOptions, RewardPlugin

from ._common import (
    create_open_clip,
    load_open_clip_file,
    open_clip_spec,
    open_clip_tokenizer,
    open_clip_weights,
    unique_prompts,
)
from .preprocess import ImageSpec, preprocess

if TYPE_CHECKING:  # pragma: no cover
    import torch


def unit(x: torch.Tensor) -> torch.Tensor:
    """``x`` scaled to unit length along the last dimension.

    An all-zero embedding (a degenerate image through a random or broken tower) has no direction: it
    stays zero, as the LAION aesthetic reference scores it, instead of becoming NaN.
    """
    return x / x.norm(dim=-1, keepdim=True).clamp_min(_torch.finfo(x.dtype).tiny)


class ClipReward(RewardPlugin):
    """A frame reward computed from CLIP embeddings.

    A subclass loads its model (``load``, ``load_tiny``), sets :attr:`spec` and, if it reads prompts,
    :attr:`tokenizer`, runs its towers (:meth:`image_features`, :meth:`text_features`) and turns the
    embeddings into a score (``score_frames``, usually from :meth:`cosine`).
    """

    scores = "frames"

    def __init__(self, options: RewardOptions | None = None) -> None:
        super().__init__(options)
        self.model: torch.nn.Module | None = None
        self.tokenizer: Any = None
        self.spec = ImageSpec()

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """The image tower on model input ``(N, 3, *spec.size)``: ``(N, D)`` embeddings, any length."""
        raise NotImplementedError

    def text_features(self, prompts: Sequence[str]) -> torch.Tensor:
        """The text tower on ``prompts``: ``(len(prompts), D)`` embeddings, any length."""
        raise NotImplementedError

    def image_embeddings(self, frames: torch.Tensor) -> torch.Tensor:
        """Unit-length embeddings ``(N, D)`` of frames ``(N, 3, H, W)`` in [0, 1], differentiable in ``frames``."""
        return unit(self.image_features(preprocess(frames, self.spec).to(device=self.device, dtype=self.dtype)))

    def prompt_embeddings(self, prompts: Sequence[str]) -> torch.Tensor:
        """Unit-length embeddings ``(N, D)`` of one prompt per frame; the text tower runs once per distinct
        prompt, without gradient (nothing the reward trains reaches it)."""
        import torch

        distinct, index = unique_prompts(prompts)
        with torch.no_grad():
            text = unit(self.text_features(distinct))
        return text[torch.as_tensor(index, device=text.device)]

    def cosine(self, frames: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """``cos(image, prompt)`` of each frame ``(N, 3, H, W)`` in [0, 1] and its prompt: ``(N,)``."""
        return (self.image_embeddings(frames) * self.prompt_embeddings(prompts)).sum(dim=-1)


class OpenClipReward(ClipReward):
    """A :class:`ClipReward` on an open_clip ``CLIP`` model (``clip_model`` and ``resize_mode`` options).

    :attr:`visual` is the frozen image tower; :attr:`model` the whole model when the reward reads
    prompts, else `None` (the text tower is dropped to save memory).
    """

    #: Whether the score depends on the prompt; without, no text tower or tokenizer is kept.
    reads_prompts: ClassVar[bool] = True
    #: Clamp resized pixels to [0, 1], as pipelines that resize 8-bit images do (see :class:`ImageSpec`).
    clamp_resized: ClassVar[bool] = True

    def __init__(self, options: RewardOptions | None = None) -> None:
        super().__init__(options)
        self.visual: torch.nn.Module | None = None

    def clip_weights(self) -> tuple[str, dict[str, Any]]:
        """The weights file ``clip_pretrained`` names, an open_clip tag of ``clip_model`` (from the Hugging Face
        hub, honouring ``HF_HUB_OFFLINE``) or a local open_clip checkpoint, and open_clip's configuration of
        the tag (empty for a local file)."""
        o = self.options
        return open_clip_weights(o.clip_model, o.clip_pretrained, reward=self.name, option="clip_pretrained")

    def build_clip(self, path: str, tag_cfg: dict[str, Any], quick_gelu: bool | None, *, local_quick_gelu: bool) -> Any:
        """``clip_model`` with the weights of :meth:`clip_weights` (fp32, CPU, not yet frozen).

        Args:
            quick_gelu (`bool`, *optional*): QuickGELU activations; `None`: as the tag says, and
                ``local_quick_gelu`` for a local file.
            local_quick_gelu (`bool`): the activations a local file's weights are taken to have.
        """
        if quick_gelu is None:
            quick_gelu = bool(tag_cfg.get("quick_gelu", False)) if tag_cfg else local_quick_gelu
        model = create_open_clip(self.options.clip_model, quick_gelu, self.name)
        load_open_clip_file(model, path, reward=self.name, option="clip_pretrained")
        return model

    def _setup(self, model: Any, tag_cfg: dict[str, Any], model_name: str, device: Any, dtype: Any) -> None:
        self.spec = open_clip_spec(model, tag_cfg, self.options.resize_mode, clamp=self.clamp_resized)
        if self.reads_prompts:
            self.tokenizer = open_clip_tokenizer(model_name, reward=self.name)
            self.model = freeze(model, device, dtype)
            self.visual = self.model.visual
        else:
            self.visual = freeze(model.visual, device, dtype)
        if self.options.gradient_checkpointing:
            self.visual.set_grad_checkpointing(True)
        super().load(device, dtype)

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.visual(pixels)

    def text_features(self, prompts: Sequence[str]) -> torch.Tensor:
        return self.model.encode_text(self.tokenizer(prompts).to(self.device))
