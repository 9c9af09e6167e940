"""Open-vocabulary detection with OWL-ViT (``google/owlvit-base-patch32`` and its siblings).

``OwlViTForObjectDetection`` scores every image patch against text queries; transformers'
``post_process_object_detection`` takes ``sigmoid`` of the logits as the confidence. With one query (the
option ``target``, any text) the confidence of patch q is ``sigmoid(logits[q, 0])``; every patch is a
candidate detection, kept when above the threshold.
"""

from __future__ import annotations

from typing import Any

from vader_core.lazy import torch
from vader_core.modules import seeded

from ._common import spread_init
from .preprocess import CLIP_MEAN, CLIP_STD, normalize, resize_square

OWLVIT_TYPES = ("owlvit",)
#: Text positions of the OWL-ViT text tower (its processor pads queries to this length).
TEXT_POSITIONS = 16


def tiny_config() -> Any:
    """A tiny ``OwlViTConfig``: the CLIP vocabulary and OWL-ViT's 16 text positions, a 96x96 ViT-B/16-like tower."""
    from transformers import OwlViTConfig

    return OwlViTConfig(
        text_config={
            "vocab_size": 49408,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_attention_heads": 2,
            "num_hidden_layers": 2,
            "max_position_embeddings": TEXT_POSITIONS,
        },
        vision_config={
            "image_size": 96,
            "patch_size": 16,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_attention_heads": 2,
            "num_hidden_layers": 2,
        },
        projection_dim=32,
    )


def tiny_model(seed: int = 0) -> Any:
    """The seeded tiny random ``OwlViTForObjectDetection`` used by ``load_tiny``."""
    from transformers import OwlViTForObjectDetection

    with seeded(seed):
        return spread_init(OwlViTForObjectDetection(tiny_config()))


def tiny_tokenizer() -> Any:
    """OWL-ViT's tokenizer is CLIP's BPE; vader builds it offline from open_clip's vocabulary file."""
    from vader_core.tokenizers import clip_tokenizer

    return clip_tokenizer(TEXT_POSITIONS)


class TextDetector:
    """Per-patch confidence of OWL-ViT in one text query, differentiable in the frames.

    Args:
        model (`torch.nn.Module`): an ``OwlViTForObjectDetection``, frozen.
        tokenizer: its tokenizer (CLIP BPE).
        text (`str`): the query, e.g. ``"a red umbrella"``.
        size (`int`): the square input size (the vision tower's ``image_size``).
        norm (`tuple | None`): ``(mean, std)`` of the processor, or ``None``.
    """

    def __init__(
        self, model: Any, tokenizer: Any, text: str, size: int, norm: tuple | None = (CLIP_MEAN, CLIP_STD)
    ) -> None:
        self.model, self.size, self.norm = model, int(size), norm
        length = int(model.config.text_config.max_position_embeddings)
        tok = tokenizer([text], padding="max_length", truncation=True, max_length=length, return_tensors="pt")
        self.input_ids, self.attention_mask = tok["input_ids"], tok["attention_mask"]

    def __call__(self, frames: torch.Tensor, device: Any, dtype: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(p, top)``, each ``(N, patches)``: ``sigmoid`` of the query logit (float32), and all true
        (with a single query, the target is every patch's best class)."""
        x = resize_square(frames, self.size)
        if self.norm is not None:
            x = normalize(x, *self.norm)
        n = x.shape[0]
        out = self.model(
            input_ids=self.input_ids.to(device).expand(n, -1),
            attention_mask=self.attention_mask.to(device).expand(n, -1),
            pixel_values=x.to(device=device, dtype=dtype),
        )
        p = out.logits[..., 0].float().sigmoid()
        return p, torch.ones_like(p, dtype=torch.bool)
