"""Tiny seeded random components with Open-Sora 1.2's architectures (for tests and the comparison script).

The real classes (:class:`~vader_opensora.stdit3.STDiT3`, :class:`~vader_opensora.vae.OpenSoraVAE` with
diffusers' ``AutoencoderKL`` and the temporal VAE, transformers' ``T5EncoderModel`` in the v1.1
layout: gated GELU, untied head) with small widths and depths, and the core's tiny T5 tokenizer
(:func:`vader_core.tokenizers.tiny_t5_tokenizer`, built in code, no download), so every path runs on a CPU in seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vader_core.lazy import torch

TINY_STDIT3: dict[str, Any] = {
    "hidden_size": 32,
    "depth": 2,
    "num_heads": 4,
    "caption_channels": 16,
    "model_max_length": 12,
    "input_sq_size": 32,
}
TINY_SPATIAL_VAE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 1,
    "norm_num_groups": 32,
    "block_out_channels": (32, 64),
    "down_block_types": ("DownEncoderBlock2D",) * 2,
    "up_block_types": ("UpDecoderBlock2D",) * 2,
    "sample_size": 32,
    "scaling_factor": 0.13025,
}
TINY_TEMPORAL_VAE: dict[str, Any] = {
    "in_out_channels": 4,
    "latent_embed_dim": 4,
    "embed_dim": 4,
    "filters": 32,
    "num_res_blocks": 1,
    "channel_multipliers": (1, 1, 2),
    "temporal_downsample": (True, True),
    "num_groups": 8,
}
TINY_T5: dict[str, Any] = {
    "d_model": 16,
    "d_kv": 8,
    "d_ff": 32,
    "num_layers": 2,
    "num_heads": 2,
    "feed_forward_proj": "gated-gelu",
    "tie_word_embeddings": False,
    "relative_attention_num_buckets": 8,
    "dropout_rate": 0.0,
}


def tiny_tokenizer(max_length: int = TINY_STDIT3["model_max_length"]) -> Any:
    """The core's tiny T5 tokenizer (:func:`vader_core.tokenizers.tiny_t5_tokenizer`: T5's special tokens, pad 0,
    eos 1, unk 2, ``</s>`` appended), ``max_length`` tokens."""
    from vader_core.tokenizers import tiny_t5_tokenizer

    return tiny_t5_tokenizer(max_length)


def tiny_text_encoder(seed: int = 0) -> Any:
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    return T5EncoderModel(T5Config(vocab_size=len(tiny_tokenizer()), **TINY_T5)).eval()


def tiny_stdit3(seed: int = 0) -> Any:
    from .stdit3 import STDiT3, STDiT3Config

    torch.manual_seed(seed)
    return STDiT3(STDiT3Config(**TINY_STDIT3)).eval()


def tiny_vae(seed: int = 0) -> Any:
    from .vae import OpenSoraVAE

    torch.manual_seed(seed)
    return OpenSoraVAE(TINY_SPATIAL_VAE, TINY_TEMPORAL_VAE).eval()


def tiny_components(seed: int = 0) -> dict[str, Any]:
    """Tiny random ``transformer``, ``vae``, ``text_encoder`` and ``tokenizer``."""
    return {
        "transformer": tiny_stdit3(seed),
        "vae": tiny_vae(seed + 1),
        "text_encoder": tiny_text_encoder(seed + 2),
        "tokenizer": tiny_tokenizer(),
    }


def save_official_layout(components: dict[str, Any], directory: str | Path) -> dict[str, Path]:
    """Write the components as the released repositories hold them: ``stdit3/`` (``model.safetensors`` +
    ``config.json``), ``vae/model.safetensors`` and ``t5/`` (transformers ``save_pretrained``).
    Returns the three paths."""
    import json

    from safetensors.torch import save_file

    d = Path(directory)
    paths = {"model": d / "stdit3", "vae": d / "vae", "text_encoder": d / "t5"}
    for p in paths.values():
        p.mkdir(parents=True, exist_ok=True)
    tr = components["transformer"]
    save_file(
        {k: v.detach().contiguous() for k, v in tr.state_dict().items()}, str(paths["model"] / "model.safetensors")
    )
    (paths["model"] / "config.json").write_text(json.dumps({"model_type": "STDiT3", **tr.config.to_dict()}, indent=1))
    save_file(
        {k: v.detach().contiguous() for k, v in components["vae"].state_dict().items()},
        str(paths["vae"] / "model.safetensors"),
    )
    components["text_encoder"].save_pretrained(paths["text_encoder"])
    components["tokenizer"].save_pretrained(paths["text_encoder"])
    return paths
