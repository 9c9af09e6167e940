"""Tiny seeded random components with the CogVideoX architectures (for tests).

The classes ``CogVideoXPipeline`` / ``CogVideoXImageToVideoPipeline`` load (``CogVideoXTransformer3DModel``,
``AutoencoderKLCogVideoX``, ``T5EncoderModel``, a T5 tokenizer) with small widths and depths, in the variants
the released checkpoints differ by, so every code path runs on a CPU in seconds:

* ``"1.0"`` (CogVideoX-2B): sine-cosine position embeddings, no temporal patching;
* ``"1.0-rope"`` (CogVideoX-5B): 3D rotary embeddings;
* ``"1.5"`` (CogVideoX1.5-5B): rotary embeddings, temporal patches of 2 latent frames (the latent frames are
  padded to a multiple of 2, as the pipeline does);
* ``"1.0-i2v"`` (CogVideoX-5B-I2V): learned position embeddings, the image latents concatenated on channels;
* ``"1.5-i2v"`` (CogVideoX1.5-5B-I2V): the 1.5 layout with the ``ofs`` embedding and ``invert_scale_latents``.

The tokenizer is the core's tiny T5 (:func:`vader_core.tokenizers.tiny_t5_tokenizer`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vader_core.lazy import torch

#: Text tokens of the tiny models (the released ones read 226).
TEXT_LEN = 16
#: Height, width and frames the tiny models' position embeddings are laid out for.
TINY_SIZE = (32, 32, 9)

VARIANTS = ("1.0", "1.0-rope", "1.5", "1.0-i2v", "1.5-i2v")


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
            dropout_rate=0.0,
        )
    )


def tiny_transformer(variant: str = "1.5", *, size: tuple[int, int, int] = TINY_SIZE, layers: int = 2) -> Any:
    from diffusers import CogVideoXTransformer3DModel

    h, w, f = size
    i2v = variant.endswith("i2v")
    kw: dict[str, Any] = {
        "num_attention_heads": 2,
        "attention_head_dim": 16,
        "in_channels": 8 if i2v else 4,
        "out_channels": 4,
        "time_embed_dim": 8,
        "text_embed_dim": 32,
        "num_layers": layers,
        "sample_width": w // 8,
        "sample_height": h // 8,
        "sample_frames": f,
        "patch_size": 2,
        "max_text_seq_length": TEXT_LEN,
    }
    if variant == "1.0-rope":
        kw.update(use_rotary_positional_embeddings=True, num_attention_heads=3)
    elif variant == "1.0-i2v":
        kw.update(use_rotary_positional_embeddings=True, use_learned_positional_embeddings=True)
    elif variant.startswith("1.5"):
        kw.update(use_rotary_positional_embeddings=True, patch_size_t=2, patch_bias=False)
        if i2v:
            kw.update(ofs_embed_dim=8)
    return CogVideoXTransformer3DModel(**kw)


def tiny_vae(variant: str = "1.5") -> Any:
    """A CogVideoX VAE (8x spatial, 4x temporal, causal) with 4 latent channels."""
    from diffusers import AutoencoderKLCogVideoX

    return AutoencoderKLCogVideoX(
        block_out_channels=(8, 8, 8, 8),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=2,
        temporal_compression_ratio=4,
        scaling_factor=0.7 if variant.startswith("1.0") else 1.15258426,
        invert_scale_latents=variant == "1.5-i2v",
    )


def scheduler_config(kind: str = "ddim", snr_shift_scale: float = 1.0) -> dict[str, Any]:
    """The scheduler configuration of the CogVideoX checkpoints (v-prediction, zero terminal SNR, trailing
    timesteps; ``snr_shift_scale`` 3.0 for the 2B model, 1.0 for the 5B ones), as ``CogVideoXDDIMScheduler``
    (``kind="ddim"``) or ``CogVideoXDPMScheduler`` (``"dpm"``)."""
    return {
        "_class_name": "CogVideoXDDIMScheduler" if kind == "ddim" else "CogVideoXDPMScheduler",
        "num_train_timesteps": 1000,
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "clip_sample": False,
        "prediction_type": "v_prediction",
        "rescale_betas_zero_snr": True,
        "set_alpha_to_one": True,
        "snr_shift_scale": snr_shift_scale,
        "steps_offset": 0,
        "timestep_spacing": "trailing",
    }


def make_scheduler(config: dict[str, Any]) -> Any:
    import diffusers

    return getattr(diffusers, config["_class_name"]).from_config(config)


def tiny_components(
    seed: int = 0, variant: str = "1.5", *, size: tuple[int, int, int] = TINY_SIZE, layers: int = 2
) -> dict[str, Any]:
    """Tiny random ``transformer``, ``vae``, ``text_encoder`` and ``tokenizer`` of ``variant`` (:data:`VARIANTS`),
    keyed as in ``CogVideoXPipeline`` (add a ``scheduler`` to build the pipeline)."""
    from vader_core.tokenizers import tiny_t5_tokenizer

    if variant not in VARIANTS:
        raise ValueError(f"unknown tiny CogVideoX variant {variant!r}; one of {', '.join(VARIANTS)}")
    torch.manual_seed(seed)
    tok = tiny_t5_tokenizer()
    comps: dict[str, Any] = {
        "transformer": tiny_transformer(variant, size=size, layers=layers),
        "vae": tiny_vae(variant),
        "text_encoder": tiny_text_encoder(len(tok)),
        "tokenizer": tok,
    }
    for m in comps.values():
        if isinstance(m, torch.nn.Module):
            m.eval()
    return comps


def save_tiny(
    directory: Any,
    variant: str = "1.5",
    scheduler: str = "ddim",
    seed: int = 0,
    snr_shift_scale: float = 1.0,
    **kw: Any,
) -> Path:
    """Tiny random components of ``variant`` saved by the stock pipeline (``CogVideoXPipeline``, or
    ``CogVideoXImageToVideoPipeline`` for an ``-i2v`` variant) with the checkpoints' scheduler configuration."""
    from vader_core.testing.parity import save_pipeline

    pipeline = "CogVideoXImageToVideoPipeline" if variant.endswith("i2v") else "CogVideoXPipeline"
    comps = tiny_components(seed, variant, **kw)
    comps["scheduler"] = make_scheduler(scheduler_config(scheduler, snr_shift_scale))
    return save_pipeline(pipeline, comps, directory)
