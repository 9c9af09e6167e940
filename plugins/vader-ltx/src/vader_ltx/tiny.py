"""Tiny seeded random components with the LTX-Video architectures (for tests).

The classes ``LTXPipeline`` / ``LTXImageToVideoPipeline`` load (``LTXVideoTransformer3DModel``,
``AutoencoderKLLTXVideo``, ``T5EncoderModel``, a T5 tokenizer) with small widths and depths, so every code
path runs on a CPU in seconds. Three VAE layouts follow the released ones:

* ``0.9.0``: the first release's decoder (four up blocks, no timestep conditioning);
* ``0.9.1``: the decoder conditioned on the decode timestep (``timestep_conditioning``), with residual
  upsamplers and noise injection, as ``LTX-Video-0.9.1``;
* ``0.9.5``: the 0.9.5 encoder (``LTXVideo095DownBlock3D`` with spatial, temporal and spatio-temporal
  downsampling) and the 0.9.1-style decoder.

The scheduler configurations are the two the checkpoints ship: flow-match Euler with dynamic shifting
(0.9.0 / 0.9.1) and without (0.9.5 and later).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vader_core.lazy import torch


def tiny_tokenizer(model_max_length: int = 128) -> Any:
    """The core's tiny T5 tokenizer (``vader_core.tokenizers.tiny_t5_tokenizer``) with LTX's 128 tokens."""
    from vader_core.tokenizers import tiny_t5_tokenizer

    return tiny_t5_tokenizer(model_max_length)


def tiny_text_encoder(vocab_size: int, dim: int = 32) -> Any:
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(
        T5Config(
            vocab_size=vocab_size,
            d_model=dim,
            d_kv=8,
            d_ff=37,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            relative_attention_max_distance=16,
            dropout_rate=0.0,
            feed_forward_proj="gated-gelu",
        )
    )


def tiny_transformer(
    *, heads: int = 2, head_dim: int = 8, layers: int = 2, latent_channels: int = 8, text_dim: int = 32
) -> Any:
    from diffusers import LTXVideoTransformer3DModel

    return LTXVideoTransformer3DModel(
        in_channels=latent_channels,
        out_channels=latent_channels,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=heads,
        attention_head_dim=head_dim,
        cross_attention_dim=heads * head_dim,
        num_layers=layers,
        caption_channels=text_dim,
    )


def tiny_vae(version: str = "0.9.0", latent_channels: int = 8) -> Any:
    """An ``AutoencoderKLLTXVideo`` of the ``version`` layout: 4x temporal and 4x spatial compression (8x for
    ``0.9.1``: 2x2 patches and two 2x stages, as the release's 4x4 patches and three), a non-causal decoder;
    per-channel latent statistics drawn at random."""
    from diffusers import AutoencoderKLLTXVideo

    c = latent_channels
    if version == "0.9.0":
        vae = AutoencoderKLLTXVideo(
            latent_channels=c,
            block_out_channels=(8, 8, 8, 8),
            decoder_block_out_channels=(8, 8, 8, 8),
            layers_per_block=(1, 1, 1, 1, 1),
            decoder_layers_per_block=(1, 1, 1, 1, 1),
            spatio_temporal_scaling=(True, True, False, False),
            decoder_spatio_temporal_scaling=(True, True, False, False),
            decoder_inject_noise=(False, False, False, False, False),
            upsample_residual=(False, False, False, False),
            upsample_factor=(1, 1, 1, 1),
            timestep_conditioning=False,
            patch_size=1,
            patch_size_t=1,
        )
    elif version in ("0.9.1", "0.9.5"):
        enc: dict[str, Any] = (
            {
                "block_out_channels": (8, 8, 8, 8),
                "down_block_types": ("LTXVideoDownBlock3D",) * 4,
                "layers_per_block": (1, 1, 1, 1, 1),
                "spatio_temporal_scaling": (True, True, False, False),
                "downsample_type": ("conv",) * 4,
            }
            if version == "0.9.1"
            else {
                "block_out_channels": (8, 8, 8, 8, 8),
                "down_block_types": ("LTXVideo095DownBlock3D",) * 4,
                "layers_per_block": (1, 1, 1, 1, 1),
                "spatio_temporal_scaling": (True, True, True, False),
                "downsample_type": ("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
            }
        )
        vae = AutoencoderKLLTXVideo(
            latent_channels=c,
            decoder_block_out_channels=(8, 16),
            decoder_layers_per_block=(1, 1, 1),
            decoder_spatio_temporal_scaling=(True, True),
            decoder_inject_noise=(False, False, False),
            upsample_residual=(True, True),
            upsample_factor=(2, 2),
            timestep_conditioning=True,
            patch_size=2 if version == "0.9.1" else 1,
            patch_size_t=1,
            spatial_compression_ratio=8 if version == "0.9.1" else 4,
            temporal_compression_ratio=4,
            **enc,
        )
    else:
        raise ValueError(f"unknown tiny LTX VAE layout {version!r}: use 0.9.0, 0.9.1 or 0.9.5")
    g = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        vae.latents_mean.copy_(torch.randn(c, generator=g) * 0.3)
        vae.latents_std.copy_(torch.rand(c, generator=g) + 0.5)
    return vae


def tiny_components(seed: int = 0, *, vae: str = "0.9.0", **transformer: Any) -> dict[str, Any]:
    """Tiny random ``transformer``, ``vae``, ``text_encoder`` and ``tokenizer``, keyed as in ``LTXPipeline`` (add
    a ``scheduler`` to build the pipeline). ``transformer`` keywords go to :func:`tiny_transformer`."""
    torch.manual_seed(seed)
    tok = tiny_tokenizer()
    comps: dict[str, Any] = {
        "transformer": tiny_transformer(**transformer),
        "vae": tiny_vae(vae, transformer.get("latent_channels", 8)),
        "text_encoder": tiny_text_encoder(len(tok), transformer.get("text_dim", 32)),
        "tokenizer": tok,
    }
    for m in comps.values():
        if isinstance(m, torch.nn.Module):
            m.eval()
    return comps


def scheduler_config(dynamic: bool = True) -> dict[str, Any]:
    """The scheduler configuration the checkpoints ship: flow-match Euler with dynamic shifting (0.9.0 and 0.9.1:
    shift 0.95 at 1024 latent tokens to 2.05 at 4096, terminal sigma 0.1) or, from 0.9.5 on, without."""
    base: dict[str, Any] = {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 1.0}
    if not dynamic:
        return {**base, "use_dynamic_shifting": False}
    return {
        **base,
        "use_dynamic_shifting": True,
        "base_shift": 0.95,
        "max_shift": 2.05,
        "base_image_seq_len": 1024,
        "max_image_seq_len": 4096,
        "shift_terminal": 0.1,
    }


def save_tiny(
    directory: Any,
    pipeline: str = "LTXPipeline",
    seed: int = 0,
    dynamic_shift: bool = True,
    **components: Any,
) -> Path:
    """Tiny random LTX components saved by the stock ``pipeline`` (diffusers layout, model_index.json) with the
    scheduler configuration of :func:`scheduler_config`; ``components`` go to :func:`tiny_components`."""
    import diffusers
    from diffusers import FlowMatchEulerDiscreteScheduler

    comps = tiny_components(seed, **components)
    sched = FlowMatchEulerDiscreteScheduler.from_config(scheduler_config(dynamic_shift))
    getattr(diffusers, pipeline)(**comps, scheduler=sched).save_pretrained(directory)
    return Path(directory)
