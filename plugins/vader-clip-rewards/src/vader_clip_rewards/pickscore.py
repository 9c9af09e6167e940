"""``pickscore``: PickScore v1, differentiable.

A transformers ``CLIPModel`` (``yuvalkirstain/PickScore_v1``, a CLIP-H fine-tuned on Pick-a-Pic) with
the image preprocessing of ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K``'s ``CLIPImageProcessor``:
shortest side to 224 (bicubic, antialiased), centre crop 224 (offset ``excess // 2``), CLIP mean/std.
Score s = ``logit_scale.exp() * cos(image, text)``, the raw PickScore logit (around 20 for
generated images). VADER's loss ``|1 - s / 100|`` is ``weight: 0.01, objective: {target: 100}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from vader_core.hub import missing_model, resolve_model, unavailable_reason
from vader_core.modules import freeze, seeded
from vader_core.reward import RewardOptions

from ._common import checkpoint_encoder_layers
from .base import ClipReward
from .preprocess import ImageSpec

if TYPE_CHECKING:  # pragma: no cover
    import torch

PICKSCORE_REPO = "yuvalkirstain/PickScore_v1"
PROCESSOR_REPO = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"


class PickScoreOptions(RewardOptions):
    model: str = Field(
        PICKSCORE_REPO,
        description="PickScore model: a Hugging Face hub id, or a local directory in `save_pretrained` layout "
        "(config.json + model.safetensors or pytorch_model.bin).",
    )
    resize_mode: Literal["shortest", "longest", "squash"] = Field(
        "shortest",
        description="Frame to 224x224: `shortest` side to 224 + centre crop (the CLIPImageProcessor PickScore was "
        "trained with), `longest` side + black padding, or `squash`.",
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute the vision encoder layers in backward instead of storing their activations."
    )


def tiny_config() -> Any:
    """A tiny ``CLIPConfig`` of PickScore's shape: 224x224 input, 77 text positions, the CLIP vocabulary, GELU."""
    from transformers import CLIPConfig

    return CLIPConfig(
        text_config={
            "vocab_size": 49408,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_attention_heads": 2,
            "num_hidden_layers": 2,
            "max_position_embeddings": 77,
            "hidden_act": "gelu",
        },
        vision_config={
            "image_size": 224,
            "patch_size": 32,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_attention_heads": 2,
            "num_hidden_layers": 2,
            "hidden_act": "gelu",
        },
        projection_dim=32,
    )


def tiny_model(seed: int = 0) -> Any:
    """The seeded tiny random ``CLIPModel`` used by ``load_tiny``."""
    from transformers import CLIPModel

    with seeded(seed):
        return CLIPModel(tiny_config())


class PickScore(ClipReward):
    """PickScore v1 of each frame and its prompt: ``logit_scale.exp() * cos(image, text)`` of a CLIP-H."""

    name = "pickscore"
    summary = "PickScore v1 (CLIP-H fine-tuned on Pick-a-Pic), raw logit logit_scale.exp() * cos(image, prompt)."
    Options: ClassVar = PickScoreOptions

    def __init__(self, options: PickScoreOptions | None = None) -> None:
        super().__init__(options)
        self.spec = ImageSpec(crop_offset="floor")

    def load(self, device: torch.device | str, dtype: torch.dtype) -> None:
        """Load ``options.model`` (hub id or local directory, honouring ``HF_HUB_OFFLINE``), frozen, in ``dtype``."""
        from transformers import CLIPModel

        ref = self.options.model
        source, local = resolve_model(ref, reward=self.name, repo=PICKSCORE_REPO)
        try:
            model = CLIPModel.from_pretrained(source)
        except OSError as e:
            raise missing_model(self.name, ref, unavailable_reason(e, local), repo=PICKSCORE_REPO) from None
        self._setup(model, device, dtype)

    def load_tiny(self, device: torch.device | str, dtype: torch.dtype, seed: int = 0) -> None:
        """Tiny random transformers ``CLIPModel`` of the same classes, for tests."""
        self._setup(tiny_model(seed), device, dtype)

    def _setup(self, model: Any, device: Any, dtype: Any) -> None:
        from vader_core.tokenizers import clip_tokenizer

        size = int(model.config.vision_config.image_size)
        mode = self.options.resize_mode
        # `squash` is the VADER training code's resize: torchvision's bilinear default
        self.spec = ImageSpec(
            size=(size, size),
            resize_mode=mode,
            crop_offset="floor",
            interpolation="bilinear" if mode == "squash" else "bicubic",
        )
        # The processor's tokenizer is CLIP's BPE (49,408 tokens); vader builds it offline from
        # open_clip's vocabulary file, so scoring never needs the processor repo.
        self.tokenizer = clip_tokenizer(int(model.config.text_config.max_position_embeddings))
        self.model = freeze(model, device, dtype)
        if self.options.gradient_checkpointing:
            checkpoint_encoder_layers(self.model, self.model.vision_model.encoder)
        super().load(device, dtype)

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.visual_projection(self.model.vision_model(pixel_values=pixels).pooler_output)

    def text_features(self, prompts: Sequence[str]) -> torch.Tensor:
        tok = self.tokenizer(
            list(prompts),
            padding="max_length",
            truncation=True,
            max_length=self.tokenizer.model_max_length,
            return_tensors="pt",
        )
        out = self.model.text_model(
            input_ids=tok["input_ids"].to(self.device), attention_mask=tok["attention_mask"].to(self.device)
        )
        return self.model.text_projection(out.pooler_output)

    def score_frames(self, frames: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """PickScore of each frame ``(N, 3, H, W)`` in [0, 1] with its prompt. Returns ``(N,)``."""
        return self.model.logit_scale.exp() * self.cosine(frames, prompts)
