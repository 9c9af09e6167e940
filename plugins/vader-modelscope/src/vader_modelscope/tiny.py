"""Tiny seeded random components with the ModelScope text-to-video architecture (for tests).

The classes of ``damo-vilab/text-to-video-ms-1.7b`` (``UNet3DConditionModel`` with cross-attention
down/up blocks and temporal transformers, ``AutoencoderKL``, ``CLIPTextModel``, the CLIP tokenizer),
with small widths and depths so every code path runs on a CPU in seconds. The tokenizer is the real
CLIP BPE tokenizer, built offline from the vocabulary open_clip ships.
"""

from __future__ import annotations

from typing import Any

from vader_core.lazy import torch


def tiny_components(seed: int = 0) -> dict[str, Any]:
    """Tiny random ``unet``, ``vae``, ``text_encoder`` and the ``tokenizer``, keyed as in ``TextToVideoSDPipeline``.

    Args:
        seed (`int`, *optional*, defaults to `0`): seed of the random initialisation.

    Returns:
        `dict[str, Any]`: the four components (add a ``scheduler`` to build the pipeline).
    """
    from diffusers import AutoencoderKL, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from vader_core.tokenizers import clip_tokenizer

    torch.manual_seed(seed)
    unet = UNet3DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        block_out_channels=(32, 64),
        layers_per_block=1,
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=32,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(32, 64),
        latent_channels=4,
        norm_num_groups=32,
        sample_size=32,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=77,
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=49407,
            projection_dim=32,
            hidden_act="gelu",
        )
    )
    for m in (unet, vae, text_encoder):
        m.eval()  # as from_pretrained returns them; in train mode the CPU kernels round differently
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": clip_tokenizer()}
