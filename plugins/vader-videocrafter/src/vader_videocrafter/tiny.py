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
    "model_channels": 32,
    "channel_mult": (1, 2),
    "num_res_blocks": 1,
    "attention_resolutions": (1,),
    "num_head_channels": 16,
    "context_dim": 32,
    "init_attn_heads": 8,
}
TINY_VAE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 1,
    "norm_num_groups": 32,
    "block_out_channels": (32, 64),
    "down_block_types": ("DownEncoderBlock2D",) * 2,
    "up_block_types": ("UpDecoderBlock2D",) * 2,
    "sample_size": 32,
    "scaling_factor": 0.18215,
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


def _ldm_vae_key(key: str, num_up: int) -> str:
    """A diffusers ``AutoencoderKL`` key -> the LDM (``first_stage_model``) key it comes from."""
    import re

    k = key.replace("mid_block.resnets.0.", "mid.block_1.").replace("mid_block.resnets.1.", "mid.block_2.")
    k = k.replace("mid_block.attentions.0.", "mid.attn_1.").replace("conv_norm_out", "norm_out")
    k = re.sub(r"down_blocks\.(\d+)\.resnets\.(\d+)\.", r"down.\1.block.\2.", k)
    k = re.sub(r"down_blocks\.(\d+)\.downsamplers\.0\.", r"down.\1.downsample.", k)
    # diffusers numbers the decoder's blocks from the bottom up, LDM from the top down
    k = re.sub(r"up_blocks\.(\d+)\.", lambda m: f"up.{num_up - 1 - int(m.group(1))}.", k)
    k = re.sub(r"(up\.\d+\.)resnets\.(\d+)\.", r"\1block.\2.", k).replace("upsamplers.0.", "upsample.")
    k = k.replace("conv_shortcut", "nin_shortcut")
    for ours, theirs in (("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out")):
        k = k.replace(f"attn_1.{ours}.", f"attn_1.{theirs}.")
    return k


def official_state_dict(components: dict[str, Any]) -> dict[str, Any]:
    """The state dict of ``LatentDiffusion`` (the layout of VideoCrafter2's ``model.ckpt``) holding these
    components' weights, schedule buffers excepted: for tests of the checkpoint loader.

    The VAE keys are mapped back to LDM names independently of diffusers' converter (which the loader
    uses), and its attention weights back to 1x1 convolutions.
    """
    sd: dict[str, Any] = {}
    sd.update({f"model.diffusion_model.{k}": v for k, v in components["unet"].state_dict().items()})
    vae = components["vae"]
    num_up = len(vae.config.up_block_types)
    for k, v in vae.state_dict().items():
        ldm = _ldm_vae_key(k, num_up)
        if ".attn_1." in ldm and ldm.endswith("weight") and v.ndim == 2:
            v = v[:, :, None, None]
        sd[f"first_stage_model.{ldm}"] = v
    sd.update({f"cond_stage_model.{k}": v for k, v in components["text_encoder"].state_dict().items()})
    return {k: v.detach().clone() for k, v in sd.items()}
