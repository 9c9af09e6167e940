"""Estimate the GPU memory of a vader training step (K=1, bf16, batch 1) on the CogVideoX checkpoints, without a GPU.

The real architectures (``CogVideoXTransformer3DModel``, ``AutoencoderKLCogVideoX`` and T5 v1.1 XXL in the released
checkpoints' configurations) are built on the ``meta`` device: no weights are allocated and no arithmetic runs,
but autograd records every tensor it would keep for backward (``vader_core.estimate``: attention counted as GPUs'
flash kernels keep it, weights once, shared storages once). Measured with ``vader_core.estimate``:

* the kept transformer call (``kept_call_gib``, the backbone's ``checkpoint_blocks``): at ``memory.
  gradient_checkpointing: true`` (block level; diffusers' own per-block switch) the block inputs of the call plus
  the largest block recomputed; with guidance the call holds two videos (conditional and unconditional);
* decoding one frame with gradient as the backbone does (``live_peak_gib``: everything alive at the worst moment,
  forward and backward, under the core's ``decoder_checkpointing``): frame 0 decodes the VAE's first group of
  latent frames; the last frame runs every group, the earlier ones without gradient. Untiled (the default) the
  decoder's resnets and upsamplers are recomputed one at a time; with ``vae_tiling`` each tile's decoder call is;
* the peak (``step_peak``): weights resident (T5 waits on the CPU: ``memory.offload_encoders``) plus the larger of
  the decoder's and the transformer's recomputation; ``--gpus`` gives it per GPU under ``distributed.strategy:
  fsdp`` (``vader_core.estimate.per_gpu_peak``; diffusers declares no context-parallel plan for CogVideoX, so no
  sequence parallelism: every GPU keeps its whole video's block inputs).

These figures are estimates, not measurements: the CUDA allocator, kernel workspaces and fragmentation add to
them. Usage::

    python plugins/vader-cogvideox/scripts/estimate_memory.py               # every checkpoint, default size
    python plugins/vader-cogvideox/scripts/estimate_memory.py --model 1.5-t2v --height 480 --width 848 --frames 81
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from vader_core.checkpointing import decoder_checkpointing
from vader_core.estimate import GIB, kept_call_gib, live_peak_gib, per_gpu_peak, step_peak

_5B = {
    "num_attention_heads": 48,
    "attention_head_dim": 64,
    "num_layers": 42,
    "time_embed_dim": 512,
    "text_embed_dim": 4096,
    "use_rotary_positional_embeddings": True,
}
#: Transformer configurations of the released checkpoints (``transformer/config.json``).
TRANSFORMERS: dict[str, dict[str, Any]] = {
    "1.5-t2v": {**_5B, "patch_size_t": 2, "patch_bias": False, "sample_height": 96, "sample_width": 170,
                "sample_frames": 81},
    "1.5-i2v": {**_5B, "patch_size_t": 2, "patch_bias": False, "sample_height": 96, "sample_width": 170,
                "sample_frames": 81, "in_channels": 32, "ofs_embed_dim": 512},
    "1.0-5b": _5B,
    "1.0-2b": {"num_attention_heads": 30, "attention_head_dim": 64, "num_layers": 30, "time_embed_dim": 512,
               "text_embed_dim": 4096},
}  # fmt: skip
#: Decoding figures by size, {(tiling, frame): GiB}, shared by the checkpoints (one VAE for all of them).
_DECODE: dict[tuple[int, int, int], dict[tuple[bool, int], float]] = {}
#: Default size (height, width, frames) of each checkpoint.
DEFAULT_SIZE = {
    "1.5-t2v": (768, 1360, 81),
    "1.5-i2v": (768, 1360, 81),
    "1.0-5b": (480, 720, 49),
    "1.0-2b": (480, 720, 49),
}


def estimate(
    model: str = "1.5-t2v",
    height: int | None = None,
    width: int | None = None,
    frames: int | None = None,
    guidance: bool = True,
    offload_encoders: bool = True,
    components: dict[str, Any] | None = None,
    dtype: torch.dtype = torch.bfloat16,
    checkpointing: bool = True,
) -> dict[str, Any]:
    """Memory figures in GiB of one K=1 bf16 training step at ``memory.gradient_checkpointing: true``.

    ``components`` (``transformer``, ``vae`` and ``text_encoder`` built on the ``meta`` device, with ``height``,
    ``width`` and ``frames`` given) replace the released architecture, in ``dtype``: benchmarks check the estimate
    against a measured step of a scaled-down architecture this way. ``checkpointing=False`` adds ``peak_off``:
    everything stored (``memory.gradient_checkpointing: false``), the last frame decoded untiled.

    Returns:
        `dict`: ``transformer_weights``, ``weights`` (resident), ``text_encoder_weights``, ``denoiser`` (the
        kept call at block level: block inputs + the largest block), ``denoiser_off`` (everything stored),
        ``decoder`` (frame 0), ``decoder_last`` (the last frame), ``peak`` (frame 0 decoded), ``peak_last``.
    """
    from diffusers import AutoencoderKLCogVideoX, CogVideoXTransformer3DModel
    from diffusers.utils import logging
    from transformers import T5Config, T5EncoderModel
    from vader_cogvideox import CogVideoXBackbone, CogVideoXOptions

    logging.set_verbosity_error()
    dh, dw, df = DEFAULT_SIZE[model]
    height, width, frames = height or dh, width or dw, frames or df
    size = torch.empty((), dtype=dtype).element_size()
    cfg = {"in_channels": 16, "out_channels": 16, "max_text_seq_length": 226, **TRANSFORMERS[model]}
    with torch.device("meta"):
        if components is not None:
            tr = components["transformer"].to(dtype=dtype).requires_grad_(False)
            vae = components["vae"].to(dtype=dtype).requires_grad_(False)
            text = components["text_encoder"]
            cfg = dict(tr.config)
        else:
            tr = CogVideoXTransformer3DModel(**cfg).to(dtype=dtype).requires_grad_(False)
            vae = AutoencoderKLCogVideoX(scaling_factor=0.7).to(dtype=dtype).requires_grad_(False)
            text = T5EncoderModel(
                T5Config(
                    vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                    feed_forward_proj="gated-gelu",
                )
            )  # fmt: skip
        bb = CogVideoXBackbone(CogVideoXOptions(height=height, width=width, frames=frames))
        bb.components = {"transformer": tr, "vae": vae}
        bb.vae_spatial = 2 ** (len(vae.config.block_out_channels) - 1)
        bb.vae_temporal, bb.device = int(vae.config.temporal_compression_ratio), torch.device("meta")
        n_tr = sum(p.numel() for p in tr.parameters())
        n_text = sum(p.numel() for p in text.parameters())
        n_vae = sum(p.numel() for p in vae.parameters())
        shape = bb.latent_shape(1)
        rotary = bb.rotary_embeddings(shape[1])
        emb = torch.randn(1, cfg["max_text_seq_length"], cfg["text_embed_dim"], dtype=dtype)
        ofs = torch.full((1,), 2.0, dtype=dtype) if cfg.get("ofs_embed_dim") else None

        def call(batch: int) -> Any:
            x = torch.randn(batch, shape[1], cfg["in_channels"], *shape[3:], dtype=dtype, requires_grad=True)
            t = torch.full((batch,), 500.0)
            return tr(x, emb.expand(batch, -1, -1), t, ofs=ofs, image_rotary_emb=rotary, return_dict=False)[0]

        den = kept_call_gib(call, bb.checkpoint_blocks(), batch=2 if guidance else 1)
        # The same VAE for every released checkpoint: traced once per size.
        decode = _DECODE.setdefault((height, width, frames), {}) if components is None else {}
        tb = CogVideoXBackbone(CogVideoXOptions(height=height, width=width, frames=frames))

        def decoded(tiling: bool, frame: int, levers: bool = True) -> float:
            tb.options = CogVideoXOptions(height=height, width=width, frames=frames, vae_tiling=tiling)
            tb.components, tb.vae_spatial, tb.vae_temporal = bb.components, bb.vae_spatial, bb.vae_temporal
            vae.enable_tiling() if tiling else vae.disable_tiling()
            x = torch.randn(*shape, dtype=dtype, requires_grad=True)
            with decoder_checkpointing(tb, levers):
                return live_peak_gib(lambda: tb.decode(x, [frame]).sum().backward())

        for tiling in (False, True) if not decode else ():
            for frame in (0, frames - 1):
                decode[tiling, frame] = decoded(tiling, frame)
        decode_off = None if checkpointing else decoded(False, frames - 1, levers=False)
        vae.disable_tiling()
    weights = (n_tr + n_vae + (0 if offload_encoders else n_text)) * size / GIB
    return {
        "transformer_params": n_tr,
        "transformer_weights": n_tr * size / GIB,
        "weights": weights,
        "text_encoder_weights": n_text * size / GIB,
        "tokens": (shape[1] // (cfg.get("patch_size_t") or 1)) * (shape[3] // 2) * (shape[4] // 2),
        "denoiser": den["block"],
        "boundaries": den["boundaries"],
        "largest_block": den["largest_block"],
        "denoiser_off": den["off"],
        "decoder": decode[False, 0],
        "decoder_last": decode[False, frames - 1],
        "decoder_tiled": decode[True, 0],
        "decoder_tiled_last": decode[True, frames - 1],
        "peak": step_peak(weights, den, {"block": decode[False, 0]}, "block"),
        "peak_last": step_peak(weights, den, {"block": decode[False, frames - 1]}, "block"),
        "peak_tiled": step_peak(weights, den, {"block": decode[True, 0]}, "block"),
        "peak_tiled_last": step_peak(weights, den, {"block": decode[True, frames - 1]}, "block"),
        "peak_off": None if decode_off is None else step_peak(weights, den, {"off": decode_off}, "off"),
        # for per_gpu(): the parts FSDP shares out
        "block_weights": max(sum(p.numel() for p in b.parameters()) for b in bb.checkpoint_blocks()) * size / GIB,
        "root_weights": (n_tr - sum(p.numel() for b in bb.checkpoint_blocks() for p in b.parameters())) * size / GIB,
        "other_weights": weights - n_tr * size / GIB,
        "size": f"{height}x{width}x{frames}",
    }


def per_gpu(r: dict[str, Any], gpus: int, frame: str = "decoder_tiled_last") -> float:
    """Per-GPU peak GiB of :func:`estimate`'s figures on ``gpus`` GPUs under ``distributed.strategy: fsdp`` (no
    sequence parallelism); ``frame``: which decode figure."""
    return per_gpu_peak(
        denoiser_weights=r["transformer_weights"],
        largest_unit=r["block_weights"],
        root_weights=r["root_weights"],
        other_weights=r["other_weights"],
        kept=r["boundaries"],
        recompute=r["largest_block"],
        decode=r[frame],
        world=gpus,
        strategy="fsdp",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(TRANSFORMERS), default=None, help="default: all of them")
    parser.add_argument("--height", type=int)
    parser.add_argument("--width", type=int)
    parser.add_argument("--frames", type=int)
    parser.add_argument("--no-guidance", action="store_true", help="backbone.guidance <= 1: one video per call")
    parser.add_argument("--encoders-on-gpu", action="store_true", help="memory.offload_encoders=false")
    parser.add_argument("--gpus", default=None, help="per-GPU peaks on these GPU counts, e.g. 1,2,4,8 (fsdp)")
    a = parser.parse_args()
    rows = [(m, estimate(m, a.height, a.width, a.frames, not a.no_guidance, not a.encoders_on_gpu))
            for m in ([a.model] if a.model else list(TRANSFORMERS))]  # fmt: skip
    print(
        "| checkpoint | size | guidance | weights (transformer / resident) | kept call: block inputs + largest block "
        "| decode frame 0 / last frame | peak, frame 0 / last frame | with `vae_tiling`: decode | peak |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for m, r in rows:
        print(
            f"| {m} | {r['size']} | {'off' if a.no_guidance else 'on'} | {r['transformer_weights']:.1f} / "
            f"{r['weights']:.1f} | {r['boundaries']:.1f} + {r['largest_block']:.1f} | {r['decoder']:.1f} / "
            f"{r['decoder_last']:.1f} | {r['peak']:.1f} / {r['peak_last']:.1f} | {r['decoder_tiled']:.1f} / "
            f"{r['decoder_tiled_last']:.1f} | {r['peak_tiled']:.1f} / {r['peak_tiled_last']:.1f} |"
        )
    if a.gpus:
        gpus = [int(g) for g in a.gpus.split(",")]
        print()
        print("| checkpoint | size | guidance | " + " | ".join(f"{g} GPU{'s' if g > 1 else ''}" for g in gpus) + " |")
        print("| --- | --- | --- | " + " | ".join("---" for _ in gpus) + " |")
        for m, r in rows:
            cells = " | ".join(f"{per_gpu(r, g):.1f}" for g in gpus)
            print(f"| {m} | {r['size']} | {'off' if a.no_guidance else 'on'} | {cells} |")


if __name__ == "__main__":
    main()
