"""Estimate the GPU memory of a vader training step (K=1, bf16) on the Wan checkpoints, without a GPU.

The real architectures (the released checkpoints' configurations) are built on the ``meta`` device: no
weights are allocated and no arithmetic runs, but autograd records every tensor it would keep for
backward (``vader_core.estimate``: attention counted as GPUs' flash kernels keep it, weights once, shared
storages once). Measured on the meta device:

* one transformer call with gradient, blocks stored (``call``) and the most one block saves (``block``);
* decoding one frame with gradient through the causal VAE, forward and backward, everything alive at the
  worst moment (``live_peak_gib``: the saved activations plus the causal cache and the layer running, which
  add about 20% to the saved activations alone): frame 0 (one latent frame); the last frame as vader
  decodes it by default (every latent frame runs, only the last keeps autograd); and the last frame with
  ``vae_history_gradient`` (every latent frame keeps autograd).

With ``memory.gradient_checkpointing`` (the default, diffusers' per-block switch) a kept call keeps what
lies outside its blocks plus each block's input (``tokens x dim`` in bf16) and recomputes one block at a
time in backward. A K=1 step with guidance keeps two calls (conditional and unconditional), then decodes
the chosen frame; its peak is the weights plus the larger of (two kept calls + decoding) and (two kept
calls + one block recomputed). These figures are estimates, not measurements: the CUDA allocator, kernel
workspaces and fragmentation add to them.

Usage::

    python plugins/vader-wan/scripts/estimate_memory.py                 # every checkpoint at its default size
    python plugins/vader-wan/scripts/estimate_memory.py --model t2v-1.3b --height 480 --width 832 --frames 81
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from vader_core.checkpointing import decoder_checkpointing
from vader_core.estimate import GIB, live_peak_gib, saved_gib

_DIT_14B = {"num_attention_heads": 40, "ffn_dim": 13824, "num_layers": 40}
#: Transformer configurations of the released checkpoints (head size 128, text dim 4096, patch 1x2x2).
TRANSFORMERS: dict[str, dict[str, Any]] = {
    "t2v-1.3b": {"num_attention_heads": 12, "ffn_dim": 8960, "num_layers": 30},
    "t2v-14b": _DIT_14B,
    "i2v-14b": {**_DIT_14B, "in_channels": 36, "image_dim": 1280, "added_kv_proj_dim": 5120},
    "ti2v-5b": {"num_attention_heads": 24, "ffn_dim": 14336, "num_layers": 30, "in_channels": 48, "out_channels": 48},
    "a14b": _DIT_14B,  # each of the two experts
}
#: Default size (height, width, frames) of each checkpoint.
DEFAULT_SIZE = {
    "t2v-1.3b": (480, 832, 81),
    "t2v-14b": (720, 1280, 81),
    "i2v-14b": (480, 832, 81),
    "ti2v-5b": (704, 1280, 121),
    "a14b": (720, 1280, 81),
}


def _vae(wan22: bool) -> Any:
    from diffusers import AutoencoderKLWan

    if wan22:
        return AutoencoderKLWan(
            base_dim=160,
            decoder_base_dim=256,
            z_dim=48,
            is_residual=True,
            in_channels=12,
            out_channels=12,
            patch_size=2,
            scale_factor_spatial=16,
            latents_mean=[0.0] * 48,
            latents_std=[1.0] * 48,
        )
    return AutoencoderKLWan(base_dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2)


def estimate(
    model: str = "t2v-1.3b",
    height: int | None = None,
    width: int | None = None,
    frames: int | None = None,
    checkpointing: bool = True,
    offload_encoders: bool = True,
    components: dict[str, Any] | None = None,
    dtype: torch.dtype = torch.bfloat16,
) -> dict[str, float]:
    """Memory figures in GiB for one K=1 bf16 training step (batch 1, guidance on).

    As the core runs it at ``memory.gradient_checkpointing: true``: the kept call (both guidance calls) is
    recomputed whole in backward, with the transformer's own per-block checkpointing inside; the decoder's
    activations are freed before that. With ``offload_encoders`` (on
    for GPU runs) UMT5 and CLIP wait on the CPU. ``checkpointing=False``: everything stored, both halves.

    ``components`` (``transformer``, ``vae`` and ``text_encoder`` built on the ``meta`` device, with ``height``,
    ``width`` and ``frames`` given) replace the released architecture, in ``dtype``: benchmarks check the
    estimate against a measured step of a scaled-down architecture this way.

    Returns:
        `dict[str, float]`: ``transformer_weights`` (one expert), ``weights`` (everything resident: all
        transformers, the VAE, the UMT5-XXL text encoder, CLIP for I2V), ``text_encoder_weights``,
        ``transformer_call`` (one kept call as stored), ``block``, ``decoder`` (frame 0, one latent frame),
        ``decoder_last`` (the last frame as vader decodes it by default: its latent frame with autograd, the
        earlier ones without), ``decoder_all`` (the last frame with ``vae_history_gradient``: every latent
        frame with autograd), ``peak`` (default) and ``peak_history_gradient``; with ``vae_tiling``:
        ``decoder_tiled``, ``decoder_tiled_last`` and ``peak_tiled``.
    """
    from diffusers import WanTransformer3DModel
    from diffusers.utils import logging
    from transformers import UMT5Config, UMT5EncoderModel

    logging.set_verbosity_error()
    dh, dw, df = DEFAULT_SIZE[model]
    height, width, frames = height or dh, width or dw, frames or df
    size = torch.empty((), dtype=dtype).element_size()
    wan22 = model == "ti2v-5b"
    spatial = 16 if wan22 else 8
    z = 48 if wan22 else 16
    cfg: dict[str, Any] = {
        "patch_size": (1, 2, 2),
        "attention_head_dim": 128,
        "in_channels": 16,
        "out_channels": 16,
        "text_dim": 4096,
        "freq_dim": 256,
        "cross_attn_norm": True,
        "qk_norm": "rms_norm_across_heads",
        "eps": 1e-6,
        **TRANSFORMERS[model],
    }
    with torch.device("meta"):
        if components is not None:
            dit = components["transformer"].to(dtype=dtype).requires_grad_(False)
            vae = components["vae"].to(dtype=dtype).requires_grad_(False)
            text = components["text_encoder"]
            cfg = dict(dit.config)
            z = vae.config.z_dim
        else:
            dit = WanTransformer3DModel(**cfg).to(dtype=dtype).requires_grad_(False)
            vae = _vae(wan22).to(dtype=dtype).requires_grad_(False)
            text = UMT5EncoderModel(
                UMT5Config(
                    vocab_size=256384,
                    d_model=4096,
                    d_kv=64,
                    d_ff=10240,
                    num_layers=24,
                    num_heads=64,
                    feed_forward_proj="gated-gelu",
                )
            )
        n_dit = sum(p.numel() for p in dit.parameters())
        n_block = max(sum(p.numel() for p in b.parameters()) for b in dit.blocks)
        n_root = n_dit - sum(p.numel() for b in dit.blocks for p in b.parameters())
        n_text = sum(p.numel() for p in text.parameters())
        n_vae = sum(p.numel() for p in vae.parameters())
        n_clip = 632_000_000 if model == "i2v-14b" else 0  # CLIP ViT-H/14 image tower of Wan 2.1 I2V
        lat_f, h, w = (frames - 1) // 4 + 1, height // spatial, width // spatial
        x = torch.randn(1, cfg["in_channels"], lat_f, h, w, dtype=dtype, requires_grad=True)
        emb = torch.randn(1, 512, cfg["text_dim"], dtype=dtype)
        kw = {"encoder_hidden_states_image": torch.randn(1, 257, 1280, dtype=dtype)} if cfg.get("image_dim") else {}
        call, block = saved_gib(
            lambda: dit(x, torch.tensor([500.0]), emb, return_dict=False, **kw)[0], layers=list(dit.blocks)
        )
        zl = torch.randn(1, z, lat_f, h, w, dtype=dtype, requires_grad=True)
        # Decoding: everything alive at its worst moment, forward and backward (the saved activations, the causal
        # cache of the frames before and the layer running: 20% more than the saved activations alone).
        from vader_wan import WanBackbone, WanOptions

        bb = WanBackbone()
        bb.components = {"vae": vae}

        def decoded(fn: Any) -> float:
            # At the default level the core recomputes the decoder's blocks in backward (decoder_checkpointing); the
            # backbone post-processes the decoded prefix and keeps the chosen (last) frame for the reward.
            def step() -> None:
                ((fn() / 2 + 0.5).clamp(0, 1)[:, :, -1:].float().sum()).backward()

            with decoder_checkpointing(bb, checkpointing):
                return live_peak_gib(step)

        dec_one = decoded(lambda: vae.decode(zl[:, :, :1]).sample)
        # vader's default: the chosen frame's latent frame with autograd, the earlier ones without.
        dec_last = decoded(lambda: bb._decode_cut_history(zl, {lat_f - 1}))
        dec_all = decoded(lambda: vae.decode(zl).sample)  # vae_history_gradient: the whole prefix
        # vae_tiling: 256x256 tiles, each tile's decoder call recomputed on its own, the earlier latent frames
        # without gradient; the whole prefix runs (its decoded frames stay alive until the VAE concatenates them).
        bb = WanBackbone(WanOptions(height=height, width=width, frames=frames, vae_tiling=True))
        bb.components = {"vae": vae}
        vae.enable_tiling()
        dec_one_tiled = decoded(lambda: vae.decode(zl[:, :, :1]).sample)
        dec_last_tiled = decoded(lambda: bb._decode_cut_history(zl, {lat_f - 1}))
        vae.disable_tiling()
    tokens = lat_f * (h // 2) * (w // 2)
    inner = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    n_blocks = cfg["num_layers"]
    if checkpointing:
        # Outside the blocks as measured, plus each block's input kept by the checkpoint.
        stored = call - n_blocks * block + n_blocks * tokens * inner * size / GIB
        recompute = block
    else:
        stored, recompute = call, 0.0
    experts = 2 if model == "a14b" else 1
    transformer_weights = n_dit * size / GIB
    weights = (experts * n_dit + n_vae + (0 if offload_encoders else n_text + n_clip)) * size / GIB
    # Block level: nothing of the kept call stays between forward and backward but its inputs; backward
    # recomputes the call, which stores the block inputs of both guidance calls, then one block at a time.
    # Off: both calls' activations stored.
    kept = 2 * stored

    def peak_with(decode: float) -> float:
        # Checkpointed: the decoder's activations are freed before the kept step is recomputed; stored: both at once.
        return weights + (max(decode, kept + recompute) if checkpointing else kept + decode)

    return {
        "transformer_weights": transformer_weights,
        "weights": weights,
        "text_encoder_weights": n_text * size / GIB,
        "transformer_call": stored,
        "block": block,
        "decoder": dec_one,
        "decoder_last": dec_last,
        "decoder_all": dec_all,
        "decoder_tiled": dec_one_tiled,
        "decoder_tiled_last": dec_last_tiled,
        "peak_tiled": peak_with(dec_last_tiled),
        "peak": peak_with(dec_last),
        # for per_gpu(): the parts the `distributed` section shares out
        "denoiser_weights": experts * transformer_weights,
        "block_weights": n_block * size / GIB,
        "root_weights": n_root * size / GIB,
        "other_weights": weights - experts * transformer_weights,
        "kept": kept if checkpointing else kept + 0.0,
        "recompute": recompute,
        "heads": cfg["num_attention_heads"],
        "peak_history_gradient": peak_with(dec_all),
        "height": height,
        "width": width,
        "frames": frames,
    }


def per_gpu(r: dict[str, float], gpus: int, strategy: str = "fsdp", frame: str = "decoder_last") -> float:
    """Per-GPU peak GiB of :func:`estimate`'s figures on ``gpus`` GPUs: ``strategy`` with sequence parallelism of
    the largest degree that divides both the GPUs and the heads (``vader_core.estimate.per_gpu_peak``);
    ``frame``: which decode figure (``decoder`` frame 0, ``decoder_last`` the last frame)."""
    from vader_core.estimate import per_gpu_peak

    sp = max(d for d in range(1, gpus + 1) if gpus % d == 0 and int(r["heads"]) % d == 0)
    return per_gpu_peak(
        denoiser_weights=r["denoiser_weights"],
        largest_unit=r["block_weights"],
        root_weights=r["root_weights"],
        other_weights=r["other_weights"],
        kept=r["kept"],
        recompute=r["recompute"],
        decode=r[frame],
        world=gpus,
        sequence_parallel=sp,
        strategy=strategy,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(TRANSFORMERS), default=None, help="default: all of them")
    parser.add_argument("--height", type=int)
    parser.add_argument("--width", type=int)
    parser.add_argument("--frames", type=int)
    parser.add_argument("--no-checkpointing", action="store_true")
    parser.add_argument("--encoders-on-gpu", action="store_true", help="memory.offload_encoders=false")
    parser.add_argument(
        "--gpus",
        default=None,
        help="per-GPU peaks on these GPU counts, e.g. 1,2,4,8 (distributed.strategy fsdp, sequence_parallel = "
        "the GPUs where that divides the heads)",
    )
    a = parser.parse_args()
    if a.gpus:
        counts = [int(x) for x in a.gpus.split(",")]
        print(
            "| checkpoint | size | decoded frame | "
            + " | ".join(f"{n} GPU{'s' if n > 1 else ''}" for n in counts)
            + " |\n| --- | --- | --- | "
            + " | ".join("---" for _ in counts)
            + " |"
        )
        for m in [a.model] if a.model else ["t2v-14b", "i2v-14b", "a14b"]:
            r = estimate(m, a.height, a.width, a.frames, not a.no_checkpointing, not a.encoders_on_gpu)
            for frame, label in (
                ("decoder", "first"),
                ("decoder_last", "last"),
                ("decoder_tiled_last", "last, `vae_tiling`"),
            ):
                cells = " | ".join(f"{per_gpu(r, n, frame=frame):.1f}" for n in counts)
                print(f"| {m} | {r['height']}x{r['width']}x{r['frames']} | {label} | {cells} |")
        return
    print(
        "| checkpoint | size | weights (transformer / all) | one kept call | one block | decode frame 0 / last frame "
        "/ last with history gradient | peak (default) | peak with history gradient | with `vae_tiling`: decode "
        "frame 0 / last, peak |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for m in [a.model] if a.model else list(TRANSFORMERS):
        r = estimate(m, a.height, a.width, a.frames, not a.no_checkpointing, not a.encoders_on_gpu)
        print(
            f"| {m} | {r['height']}x{r['width']}x{r['frames']} | {r['transformer_weights']:.1f} / {r['weights']:.1f} "
            f"| {r['transformer_call']:.1f} | {r['block']:.1f} | {r['decoder']:.1f} / {r['decoder_last']:.1f} / "
            f"{r['decoder_all']:.0f} | {r['peak']:.0f} | {r['peak_history_gradient']:.0f} | "
            f"{r['decoder_tiled']:.1f} / {r['decoder_tiled_last']:.1f}, {r['peak_tiled']:.0f} |"
        )


if __name__ == "__main__":
    main()
