"""Tiny seeded random components with VideoCrafter2's architectures (for tests).

The real classes (:class:`~vader_videocrafter.unet.LVDMUNet3DModel` with every block type: residual
blocks with temporal convolutions, spatial and temporal transformers, ``init_attn``, fps conditioning;
diffusers' ``AutoencoderKL``; an open_clip ``CLIP`` text tower read at its penultimate block; open_clip's
tokenizer) with small widths and depths, so every code path runs on a CPU in seconds.
"""

from __future__ import annotations

from typing import Any

from vader_core.lazy import torch

#: Small versions of the official configurations (GroupNorm needs multiples of 32 channels).
TINY_UNET: dict[str, Any] = {
    "model_channels": 32, "channel_mult": (1, 2), "num_res_blocks": 1, "attention_resolutions": (1,),
    "num_head_channels": 16, "context_dim": 32, "init_attn_heads": 8,
}
TINY_VAE: dict[str, Any] = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 1, "norm_num_groups": 32,
    "block_out_channels": (32, 64), "down_block_types": ("DownEncoderBlock2D",) * 2,
    "up_block_types": ("UpDecoderBlock2D",) * 2, "sample_size": 32, "scaling_factor": 0.18215,
}
TINY_OPENCLIP: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 3},
}


def tiny_components(seed: int = 0) -> dict[str, Any]:
    """Tiny random ``unet``, ``vae``, ``text_encoder`` and the real ``tokenizer``.

    Args:
        seed (`int`, *optional*, defaults to `0`): seed of the random initialisation.

    Returns:
        `dict[str, Any]`: the four components (the backbone adds its ``scheduler``).
    """
    from diffusers import AutoencoderKL

    from .text_encoder import OpenCLIPTextEncoder, build_openclip_text_model, tokenizer
    from .unet import LVDMUNet3DModel

    torch.manual_seed(seed)
    unet = LVDMUNet3DModel(**TINY_UNET)
    # Output layers start at zero in the official initialisation; give every tensor a value so that
    # tests see all paths (and a LoRA's effect) in the output.
    with torch.no_grad():
        for n, p in unet.named_parameters():
            if p.abs().sum() == 0 and n.endswith("weight"):
                p.normal_(0, 0.02)
    vae = AutoencoderKL(**TINY_VAE)
    text = OpenCLIPTextEncoder(build_openclip_text_model(TINY_OPENCLIP))
    for m in (unet, vae, text):
        m.eval()
    return {"unet": unet, "vae": vae, "text_encoder": text, "tokenizer": tokenizer()}
