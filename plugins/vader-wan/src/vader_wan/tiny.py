"""Tiny seeded random components with the Wan architectures (for tests).

The classes ``WanPipeline`` / ``WanImageToVideoPipeline`` load (``WanTransformer3DModel``,
``AutoencoderKLWan``, ``UMT5EncoderModel``, a T5 tokenizer; ``CLIPVisionModel`` for Wan 2.1 I2V), with
small widths and depths so every code path runs on a CPU in seconds. The tokenizer is the core's tiny
``T5Tokenizer`` (:func:`vader_core.tokenizers.tiny_t5_tokenizer`: a unigram model, like umt5-xxl's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vader_core.lazy import torch


def tiny_tokenizer(model_max_length: int = 512) -> Any:
    """The core's tiny T5 tokenizer (:func:`vader_core.tokenizers.tiny_t5_tokenizer`; this name is kept for
    plugins and tests that import it from here)."""
    from vader_core.tokenizers import tiny_t5_tokenizer

    return tiny_t5_tokenizer(model_max_length)


def tiny_text_encoder(vocab_size: int, dim: int = 32) -> Any:
    from transformers import UMT5Config, UMT5EncoderModel

    return UMT5EncoderModel(
        UMT5Config(
            vocab_size=vocab_size,
            d_model=dim,
            d_kv=8,
            d_ff=37,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            relative_attention_max_distance=16,
            dropout_rate=0.0,
        )
    )


def tiny_transformer(
    *,
    heads: int = 2,
    head_dim: int = 12,
    patch_size: tuple[int, int, int] = (1, 2, 2),
    in_channels: int = 16,
    out_channels: int = 16,
    text_dim: int = 32,
    layers: int = 2,
    image_dim: int | None = None,
    ffn_dim: int = 32,
) -> Any:
    from diffusers import WanTransformer3DModel

    return WanTransformer3DModel(
        patch_size=patch_size,
        num_attention_heads=heads,
        attention_head_dim=head_dim,
        in_channels=in_channels,
        out_channels=out_channels,
        text_dim=text_dim,
        freq_dim=32,
        ffn_dim=ffn_dim,
        num_layers=layers,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
        image_dim=image_dim,
        added_kv_proj_dim=(heads * head_dim if image_dim is not None else None),
    )


def tiny_vae(*, z_dim: int = 16, wan22: bool = False, base_dim: int = 8) -> Any:
    """A Wan 2.1 VAE (8x spatial, 4x temporal), or with ``wan22`` the Wan 2.2 one (residual blocks, 2x2
    patchified pixels: 16x spatial)."""
    from diffusers import AutoencoderKLWan

    g = torch.Generator().manual_seed(1234)
    stats = {
        "latents_mean": (torch.randn(z_dim, generator=g) * 0.3).tolist(),
        "latents_std": (torch.rand(z_dim, generator=g) + 0.5).tolist(),
    }
    if wan22:
        return AutoencoderKLWan(
            base_dim=base_dim,
            decoder_base_dim=base_dim + 4,
            z_dim=z_dim,
            dim_mult=[1, 1, 1, 1],
            num_res_blocks=1,
            temperal_downsample=[False, True, True],
            is_residual=True,
            in_channels=12,
            out_channels=12,
            patch_size=2,
            scale_factor_spatial=16,
            scale_factor_temporal=4,
            **stats,
        )
    return AutoencoderKLWan(
        base_dim=base_dim,
        z_dim=z_dim,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
        **stats,
    )


def tiny_components(
    seed: int = 0, *, two_experts: bool = False, wan22_vae: bool = False, **transformer: Any
) -> dict[str, Any]:
    """Tiny random ``transformer`` (and ``transformer_2``), ``vae``, ``text_encoder`` and ``tokenizer``, keyed as
    in ``WanPipeline`` (add a ``scheduler`` to build the pipeline). ``transformer`` keywords go to
    :func:`tiny_transformer` (heads, head_dim, patch_size, layers ...)."""
    torch.manual_seed(seed)
    tok = tiny_tokenizer()
    z = 8 if wan22_vae else 16
    transformer.setdefault("in_channels", z)
    transformer.setdefault("out_channels", z)
    comps: dict[str, Any] = {
        "transformer": tiny_transformer(**transformer),
        "vae": tiny_vae(z_dim=z, wan22=wan22_vae),
        "text_encoder": tiny_text_encoder(len(tok), transformer.get("text_dim", 32)),
        "tokenizer": tok,
    }
    if two_experts:
        comps["transformer_2"] = tiny_transformer(**transformer)
    for m in comps.values():
        if isinstance(m, torch.nn.Module):
            m.eval()
    return comps


def tiny_i2v_components(seed: int = 0, **transformer: Any) -> dict[str, Any]:
    """Tiny random Wan 2.1 I2V components, keyed as in ``WanImageToVideoPipeline``: the transformer takes the
    noise, the 4-channel first-frame mask and the image latents (16 + 4 + 16 channels) and CLIP image
    features through its image projection; ``image_encoder`` is a ``CLIPVisionModel``."""
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    transformer.setdefault("in_channels", 36)
    transformer.setdefault("image_dim", 16)
    comps = tiny_components(seed, **transformer)
    comps["image_encoder"] = CLIPVisionModel(
        CLIPVisionConfig(
            hidden_size=16,
            projection_dim=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            intermediate_size=24,
            patch_size=8,
        )
    ).eval()
    comps["image_processor"] = CLIPImageProcessor(crop_size=32, size=32)
    return comps


def save_tiny(
    directory: Any,
    pipeline: str = "WanPipeline",
    seed: int = 0,
    flow_shift: float = 3.0,
    extra: dict | None = None,
    **components,
) -> Path:
    """Tiny random Wan components saved by the stock ``pipeline`` (diffusers layout, model_index.json) with the
    1.3B checkpoint's UniPC scheduler config; ``extra`` goes to the pipeline (``boundary_ratio``,
    ``expand_timesteps``), ``components`` to :func:`tiny_components`. ``WanImageToVideoPipeline`` gets Wan 2.1
    I2V's CLIP image encoder unless the components say otherwise (the Wan 2.2 VAE, or ``in_channels``)."""
    import diffusers
    from diffusers import UniPCMultistepScheduler

    clip = pipeline == "WanImageToVideoPipeline" and not components.get("wan22_vae") and "in_channels" not in components
    comps = (tiny_i2v_components if clip else tiny_components)(seed, **components)
    sched = UniPCMultistepScheduler.from_config(scheduler_config(flow_shift))
    getattr(diffusers, pipeline)(**comps, scheduler=sched, **(extra or {})).save_pretrained(directory)
    return directory


def scheduler_config(flow_shift: float = 3.0) -> dict[str, Any]:
    """The scheduler configuration of ``Wan-AI/Wan2.1-T2V-1.3B-Diffusers`` (UniPC multistep, flow sigmas,
    flow shift 3.0 for 480p)."""
    return {
        "_class_name": "UniPCMultistepScheduler",
        "num_train_timesteps": 1000,
        "beta_start": 0.0001,
        "beta_end": 0.02,
        "beta_schedule": "linear",
        "prediction_type": "flow_prediction",
        "use_flow_sigmas": True,
        "flow_shift": flow_shift,
        "solver_order": 2,
        "solver_type": "bh2",
        "predict_x0": True,
        "lower_order_final": True,
        "final_sigmas_type": "zero",
        "timestep_spacing": "linspace",
        "steps_offset": 0,
        "disable_corrector": [],
        "thresholding": False,
        "use_karras_sigmas": False,
    }
