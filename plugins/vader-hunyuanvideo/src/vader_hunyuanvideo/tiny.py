"""Tiny seeded random components with the HunyuanVideo 1.5 architectures (for tests).

The classes ``HunyuanVideo15Pipeline`` / ``HunyuanVideo15ImageToVideoPipeline`` load
(``HunyuanVideo15Transformer3DModel``, ``AutoencoderKLHunyuanVideo15``, ``Qwen2_5_VLTextModel`` with a
``Qwen2Tokenizer`` that carries a Qwen chat template, the byT5 glyph encoder ``T5EncoderModel`` with
``ByT5Tokenizer``, ``ClassifierFreeGuidance``, ``FlowMatchEulerDiscreteScheduler``; ``SiglipVisionModel`` +
``SiglipImageProcessor`` for image-to-video), with small widths and depths so every code path runs on a CPU in
seconds. The Qwen2 tokenizer is a real byte-level BPE over the 256 byte symbols (no merges), built offline.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from vader_core.lazy import torch

#: Qwen2.5's chat template, reduced to what a system + user turn and the generation prompt render (the
#: same text the released template renders for these messages).
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@functools.cache
def tiny_qwen_tokenizer() -> Any:
    """A byte-level BPE ``Qwen2Tokenizer`` (256 byte symbols, Qwen's three chat specials) with the chat template."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import Qwen2Tokenizer

    symbols = sorted(ByteLevel.alphabet())
    vocab = {s: i for i, s in enumerate(symbols)}
    for special in ("<|endoftext|>", "<|im_start|>", "<|im_end|>"):
        vocab[special] = len(vocab)
    tok = Qwen2Tokenizer(vocab=vocab, merges=[], model_max_length=4096)
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.chat_template = CHAT_TEMPLATE
    return tok


def tiny_text_encoder(vocab_size: int, dim: int = 16, layers: int = 3) -> Any:
    """A ``Qwen2_5_VLTextModel`` (multimodal rotary sections, grouped-query attention) of width ``dim``."""
    from transformers import Qwen2_5_VLTextConfig, Qwen2_5_VLTextModel

    heads = 2
    half = dim // heads // 2
    section = [half // 4, half // 4, half - 2 * (half // 4)]
    return Qwen2_5_VLTextModel(
        Qwen2_5_VLTextConfig(
            vocab_size=vocab_size,
            hidden_size=dim,
            intermediate_size=2 * dim,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=1,
            max_position_embeddings=2048,
            rope_parameters={"rope_type": "default", "mrope_section": section, "rope_theta": 1_000_000.0},
            pad_token_id=None,
            bos_token_id=None,
            eos_token_id=None,
        )
    )


def tiny_glyph_encoder(dim: int = 8) -> tuple[Any, Any]:
    """The byT5 glyph encoder (``T5EncoderModel``) at width ``dim`` and its ``ByT5Tokenizer`` (needs no files)."""
    from transformers import ByT5Tokenizer, T5Config, T5EncoderModel

    tok = ByT5Tokenizer()
    enc = T5EncoderModel(
        T5Config(
            vocab_size=len(tok),
            d_model=dim,
            d_kv=4,
            d_ff=16,
            num_layers=1,
            num_heads=2,
            relative_attention_num_buckets=8,
            relative_attention_max_distance=16,
            dropout_rate=0.0,
            feed_forward_proj="gated-gelu",
        )
    )
    return enc, tok


def tiny_transformer(
    *,
    latent_channels: int = 8,
    heads: int = 2,
    head_dim: int = 8,
    rope_axes: tuple[int, int, int] = (2, 2, 4),
    layers: int = 2,
    refiner_layers: int = 1,
    patch_size: int = 1,
    patch_size_t: int = 1,
    text_dim: int = 16,
    glyph_dim: int = 8,
    image_dim: int = 8,
    target_size: int = 32,
    task_type: str = "t2v",
    use_meanflow: bool = False,
) -> Any:
    from diffusers import HunyuanVideo15Transformer3DModel

    return HunyuanVideo15Transformer3DModel(
        in_channels=2 * latent_channels + 1,
        out_channels=latent_channels,
        num_attention_heads=heads,
        attention_head_dim=head_dim,
        num_layers=layers,
        num_refiner_layers=refiner_layers,
        mlp_ratio=2.0,
        patch_size=patch_size,
        patch_size_t=patch_size_t,
        text_embed_dim=text_dim,
        text_embed_2_dim=glyph_dim,
        image_embed_dim=image_dim,
        rope_axes_dim=rope_axes,
        target_size=target_size,
        task_type=task_type,
        use_meanflow=use_meanflow,
    )


def tiny_vae(*, latent_channels: int = 8, spatial: int = 16, width: int = 8) -> Any:
    """``AutoencoderKLHunyuanVideo15`` with 4x temporal and ``spatial`` (8 or 16) spatial compression."""
    from diffusers import AutoencoderKLHunyuanVideo15

    levels = {8: 4, 16: 5}[spatial]
    return AutoencoderKLHunyuanVideo15(
        latent_channels=latent_channels,
        block_out_channels=tuple([width] * (levels - 2) + [2 * width] * 2),
        layers_per_block=1,
        spatial_compression_ratio=spatial,
        temporal_compression_ratio=4,
        scaling_factor=0.87,
    )


def tiny_components(
    seed: int = 0,
    *,
    latent_channels: int = 8,
    spatial: int = 16,
    text_dim: int = 16,
    glyph_dim: int = 8,
    guidance: float = 6.0,
    shift: float = 5.0,
    **transformer: Any,
) -> dict[str, Any]:
    """Tiny random components keyed as in ``HunyuanVideo15Pipeline`` (scheduler and guider included);
    ``transformer`` keywords go to :func:`tiny_transformer` (heads, head_dim, rope_axes, layers, patch_size ...)."""
    from diffusers import ClassifierFreeGuidance, FlowMatchEulerDiscreteScheduler

    torch.manual_seed(seed)
    tok = tiny_qwen_tokenizer()
    glyph, glyph_tok = tiny_glyph_encoder(glyph_dim)
    comps: dict[str, Any] = {
        "transformer": tiny_transformer(
            latent_channels=latent_channels, text_dim=text_dim, glyph_dim=glyph_dim, **transformer
        ),
        "vae": tiny_vae(latent_channels=latent_channels, spatial=spatial),
        "text_encoder": tiny_text_encoder(len(tok), text_dim),
        "tokenizer": tok,
        "text_encoder_2": glyph,
        "tokenizer_2": glyph_tok,
        "scheduler": FlowMatchEulerDiscreteScheduler(shift=shift),
        "guider": ClassifierFreeGuidance(guidance_scale=guidance),
    }
    for m in comps.values():
        if isinstance(m, torch.nn.Module):
            m.eval()
    return comps


def tiny_i2v_components(seed: int = 0, *, image_dim: int = 8, **kw: Any) -> dict[str, Any]:
    """Tiny random components keyed as in ``HunyuanVideo15ImageToVideoPipeline``: those of
    :func:`tiny_components` and a ``SiglipVisionModel`` (32x32 pixels, 8x8 patches: 16 image tokens) with its
    ``SiglipImageProcessor``."""
    from transformers import SiglipImageProcessor, SiglipVisionConfig, SiglipVisionModel

    kw.setdefault("task_type", "i2v")
    comps = tiny_components(seed, image_dim=image_dim, **kw)
    comps["image_encoder"] = SiglipVisionModel(
        SiglipVisionConfig(
            hidden_size=image_dim,
            intermediate_size=2 * image_dim,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        )
    ).eval()
    comps["feature_extractor"] = SiglipImageProcessor(size={"height": 32, "width": 32})
    return comps


def save_tiny(directory: Any, pipeline: str = "HunyuanVideo15Pipeline", seed: int = 0, **components: Any) -> Path:
    """Tiny random components saved by the stock ``pipeline`` (diffusers layout, model_index.json);
    ``components`` go to :func:`tiny_components` / :func:`tiny_i2v_components`."""
    import diffusers

    i2v = pipeline == "HunyuanVideo15ImageToVideoPipeline"
    comps = (tiny_i2v_components if i2v else tiny_components)(seed, **components)
    getattr(diffusers, pipeline)(**comps).save_pretrained(directory)
    return Path(directory)
