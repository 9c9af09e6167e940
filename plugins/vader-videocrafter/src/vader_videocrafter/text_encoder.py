"""The OpenCLIP ViT-H-14 text tower as VideoCrafter2 uses it (``FrozenOpenCLIPEmbedder``, layer ``penultimate``).

The official embedder builds ``open_clip``'s ViT-H-14 CLIP, deletes its image tower and returns the
tokens after the second-to-last transformer block, passed through ``ln_final`` (no pooling, no
projection). The open_clip model sits under the attribute ``model``, so ``state_dict()`` has the
checkpoint's keys without their ``cond_stage_model.`` prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

ARCH = "ViT-H-14"


def build_openclip_text_model(model_cfg: dict[str, Any], device: torch.device | str | None = None) -> nn.Module:
    """open_clip's ``CLIP`` for ``model_cfg`` without its image tower (as the official embedder deletes it).

    ``device="meta"`` builds it without memory, to be filled by ``load_state_dict(..., assign=True)``.
    """
    import open_clip

    with torch.device(device or "cpu"):
        model = open_clip.CLIP(**model_cfg)
    del model.visual
    return model


class OpenCLIPTextEncoder(nn.Module):
    """Text tokens ``(B, 77, width)`` of an open_clip text tower, from its penultimate block.

    Args:
        model (`nn.Module`): an open_clip ``CLIP`` (image tower removed).
        layer (`str`, *optional*, defaults to `"penultimate"`): ``"penultimate"`` or ``"last"``.
    """

    def __init__(self, model: nn.Module, layer: str = "penultimate"):
        super().__init__()
        if layer not in ("penultimate", "last"):
            raise ValueError(f"`layer` must be 'penultimate' or 'last', got {layer!r}")
        self.model = model
        self.layer = layer

    def rebuild_buffers(self) -> None:
        """Recreate the non-persistent causal-mask buffer of a tower built on the meta device."""
        mask = getattr(self.model, "attn_mask", None)
        if isinstance(mask, torch.Tensor) and mask.is_meta:
            n = mask.shape[0]
            self.model.register_buffer("attn_mask", torch.full((n, n), float("-inf")).triu_(1), persistent=False)

    @property
    def context_length(self) -> int:
        return int(self.model.positional_embedding.shape[0])

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = m.token_embedding(input_ids) + m.positional_embedding
        n = x.shape[1]
        # The causal mask of CLIP's text tower, built here rather than read from the non-persistent buffer,
        # which a model built on the meta device does not have.
        mask = torch.full((n, n), float("-inf"), device=x.device, dtype=x.dtype).triu_(1)
        blocks = m.transformer.resblocks
        stop = len(blocks) - (1 if self.layer == "penultimate" else 0)
        batch_first = getattr(
            m.transformer, "batch_first", False
        )  # older open_clip (2.22, the official pin) is sequence-first
        if not batch_first:
            x = x.transpose(0, 1)
        for block in list(blocks)[:stop]:
            x = block(x, attn_mask=mask)
        if not batch_first:
            x = x.transpose(0, 1)
        return m.ln_final(x)


def tokenizer(arch: str = ARCH) -> Any:
    """open_clip's tokenizer for ``arch`` (the BPE vocabulary ships with open_clip: nothing downloads)."""
    import open_clip

    return open_clip.get_tokenizer(arch)


def tokenize(tok: Any, texts: Sequence[str], context_length: int) -> torch.Tensor:
    return tok(list(texts), context_length=context_length)
