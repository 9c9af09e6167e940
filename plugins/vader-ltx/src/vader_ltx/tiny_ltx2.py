"""Tiny seeded random components with the LTX-2 architectures (for tests).

The classes ``LTX2Pipeline`` loads, built small: ``LTX2VideoTransformer3DModel`` (video and audio streams, their
cross-attention), ``LTX2TextConnectors`` (video and audio connectors), ``AutoencoderKLLTX2Video``,
``AutoencoderKLLTX2Audio`` and ``LTX2Vocoder``, and a Gemma 3 text encoder (``Gemma3ForConditionalGeneration``
from a tiny ``Gemma3Config`` with a tiny SigLIP vision tower, which the text path never runs). The tokenizer is
the core's tiny T5 tokenizer (the pipeline pads on the left as it does Gemma's). Two layouts that differ in
widths, depths, patching and VAE:

* ``a``: 2 layers, patch 1, a VAE with 4x spatial and 4x temporal compression, latent channels 4;
* ``b``: 3 layers with two heads of 4 (video) and one of 8 (audio), a VAE with 8x spatial compression (2x2
  patches) and 4x temporal compression, latent channels 8, a wider Gemma.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vader_core.lazy import torch

LAYOUTS: dict[str, dict[str, Any]] = {
    "a": {
        "gemma_hidden": 16,
        "gemma_layers": 2,
        "heads": 2,
        "head_dim": 8,
        "audio_heads": 2,
        "audio_head_dim": 4,
        "layers": 2,
        "latent_channels": 4,
        "vae": "4x",
        "audio_latent_channels": 2,
        "mel_bins": 8,
    },
    "b": {
        "gemma_hidden": 24,
        "gemma_layers": 3,
        "heads": 2,
        "head_dim": 4,
        "audio_heads": 1,
        "audio_head_dim": 8,
        "layers": 3,
        "latent_channels": 8,
        "vae": "8x",
        "audio_latent_channels": 4,
        "mel_bins": 16,
    },
}


def tiny_text_encoder(vocab_size: int, hidden: int, layers: int) -> Any:
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3TextConfig, SiglipVisionConfig

    text = Gemma3TextConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=8,
        max_position_embeddings=512,
        sliding_window=16,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
    )
    vision = SiglipVisionConfig(
        hidden_size=8, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2, image_size=8, patch_size=4
    )
    cfg = Gemma3Config(text_config=text.to_dict(), vision_config=vision.to_dict(), mm_tokens_per_image=4)
    return Gemma3ForConditionalGeneration(cfg)


def tiny_components(seed: int = 0, layout: str = "a") -> dict[str, Any]:
    """Tiny random components keyed as in ``LTX2Pipeline`` (add a ``scheduler`` to build it)."""
    from diffusers import AutoencoderKLLTX2Audio, AutoencoderKLLTX2Video, LTX2VideoTransformer3DModel
    from diffusers.pipelines.ltx2 import LTX2TextConnectors
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder

    from vader_core.tokenizers import tiny_t5_tokenizer

    if layout not in LAYOUTS:
        raise ValueError(f"unknown tiny LTX-2 layout {layout!r}: use one of {', '.join(LAYOUTS)}")
    c = LAYOUTS[layout]
    torch.manual_seed(seed)
    tok = tiny_t5_tokenizer(1024)
    text_encoder = tiny_text_encoder(len(tok), c["gemma_hidden"], c["gemma_layers"])
    lc, alc = c["latent_channels"], c["audio_latent_channels"]
    transformer = LTX2VideoTransformer3DModel(
        in_channels=lc,
        out_channels=lc,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=c["heads"],
        attention_head_dim=c["head_dim"],
        cross_attention_dim=c["heads"] * c["head_dim"],
        audio_in_channels=alc * c["mel_bins"] // 4,
        audio_out_channels=alc * c["mel_bins"] // 4,
        audio_num_attention_heads=c["audio_heads"],
        audio_attention_head_dim=c["audio_head_dim"],
        audio_cross_attention_dim=c["audio_heads"] * c["audio_head_dim"],
        num_layers=c["layers"],
        qk_norm="rms_norm_across_heads",
        caption_channels=c["gemma_hidden"],
        rope_double_precision=False,
        rope_type="split",
    )
    connectors = LTX2TextConnectors(
        caption_channels=c["gemma_hidden"],
        text_proj_in_factor=c["gemma_layers"] + 1,
        video_connector_num_attention_heads=c["gemma_hidden"] // 8,
        video_connector_attention_head_dim=8,
        video_connector_num_layers=1,
        video_connector_num_learnable_registers=None,
        audio_connector_num_attention_heads=c["gemma_hidden"] // 8,
        audio_connector_attention_head_dim=8,
        audio_connector_num_layers=1,
        audio_connector_num_learnable_registers=None,
        connector_rope_base_seq_len=32,
        rope_theta=10000.0,
        rope_double_precision=False,
        causal_temporal_positioning=False,
        rope_type="split",
    )
    if c["vae"] == "4x":
        vae_kw: dict[str, Any] = {
            "block_out_channels": (8, 8),
            "decoder_block_out_channels": (8, 8),
            "layers_per_block": (1, 1, 1),
            "decoder_layers_per_block": (1, 1, 1),
            "spatio_temporal_scaling": (True, True),
            "decoder_spatio_temporal_scaling": (True, True),
            "decoder_inject_noise": (False, False, False),
            "downsample_type": ("spatiotemporal", "spatiotemporal"),
            "upsample_residual": (False, False),
            "upsample_factor": (1, 1),
            "patch_size": 1,
            "spatial_compression_ratio": 4,
            "temporal_compression_ratio": 4,
        }
    else:
        vae_kw = {
            "block_out_channels": (8, 16),
            "decoder_block_out_channels": (8, 16),
            "layers_per_block": (1, 1, 1),
            "decoder_layers_per_block": (1, 1, 1),
            "spatio_temporal_scaling": (True, True),
            "decoder_spatio_temporal_scaling": (True, True),
            "decoder_inject_noise": (False, False, False),
            "downsample_type": ("spatiotemporal", "spatiotemporal"),
            "upsample_residual": (True, True),
            "upsample_factor": (2, 2),
            "patch_size": 2,
            "spatial_compression_ratio": 8,
            "temporal_compression_ratio": 4,
        }
    vae = AutoencoderKLLTX2Video(
        in_channels=3,
        out_channels=3,
        latent_channels=lc,
        timestep_conditioning=False,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
        **vae_kw,
    )
    vae.use_framewise_encoding = False
    vae.use_framewise_decoding = False
    audio_vae = AutoencoderKLLTX2Audio(
        base_channels=alc * c["mel_bins"] // 4,
        output_channels=2,
        ch_mult=(1, 2, 2),
        num_res_blocks=1,
        attn_resolutions=None,
        in_channels=2,
        resolution=32,
        latent_channels=alc,
        norm_type="pixel",
        causality_axis="height",
        dropout=0.0,
        mid_block_add_attention=False,
        sample_rate=16000,
        mel_hop_length=160,
        is_causal=True,
        mel_bins=c["mel_bins"],
    )
    vocoder = LTX2Vocoder(
        in_channels=2 * c["mel_bins"],
        hidden_channels=16,
        out_channels=2,
        upsample_kernel_sizes=[4, 4],
        upsample_factors=[2, 2],
        resnet_kernel_sizes=[3],
        resnet_dilations=[[1, 3, 5]],
        leaky_relu_negative_slope=0.1,
        output_sampling_rate=16000,
    )
    g = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        vae.latents_mean.copy_(torch.randn(lc, generator=g) * 0.3)
        vae.latents_std.copy_(torch.rand(lc, generator=g) + 0.5)
    comps: dict[str, Any] = {
        "transformer": transformer,
        "vae": vae,
        "audio_vae": audio_vae,
        "text_encoder": text_encoder,
        "tokenizer": tok,
        "connectors": connectors,
        "vocoder": vocoder,
    }
    for m in comps.values():
        if isinstance(m, torch.nn.Module):
            m.eval()
    return comps


def scheduler_config() -> dict[str, Any]:
    """The LTX-2 checkpoint's scheduler: flow-match Euler, dynamic shifting (0.95 at 1024 latent tokens to 2.05 at
    4096), terminal sigma 0.1."""
    return {
        "_class_name": "FlowMatchEulerDiscreteScheduler",
        "num_train_timesteps": 1000,
        "shift": 1.0,
        "use_dynamic_shifting": True,
        "base_shift": 0.95,
        "max_shift": 2.05,
        "base_image_seq_len": 1024,
        "max_image_seq_len": 4096,
        "shift_terminal": 0.1,
    }


def save_tiny(directory: Any, seed: int = 0, layout: str = "a") -> Path:
    """Tiny random LTX-2 components saved by the stock ``LTX2Pipeline`` (diffusers layout)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, LTX2Pipeline

    comps = tiny_components(seed, layout)
    sched = FlowMatchEulerDiscreteScheduler.from_config(scheduler_config())
    LTX2Pipeline(**comps, scheduler=sched).save_pretrained(directory)
    return Path(directory)
