"""Estimate the GPU memory of a vader training step on Stable Video Diffusion, without a GPU.

The real architectures (``stabilityai/stable-video-diffusion-img2vid`` configuration) are built on the
``meta`` device: no weights are allocated and no arithmetic runs, but autograd records every tensor
it would keep for backward. Summing those bytes gives the activation memory of the parts of a step:

* one kept UNet call (classifier-free guidance doubles the batch), as recomputed in backward by
  vader's gradient checkpointing; with the UNet's own resnet checkpointing (option
  ``unet_gradient_checkpointing``) the stored part plus the largest recomputed resnet;
* the temporal decoder decoding one chunk with gradient, with and without its block checkpointing
  (option ``vae_gradient_checkpointing``).

The peak of a step with truncation K=1 is about the weights plus the larger of the two, since the
decoder's activations are freed before the UNet call is recomputed. Attention is counted as the flash
and memory-efficient kernels of GPUs keep it (inputs, output and log-sum-exp, not the attention matrix
of the math kernel the meta device traces); weights (and views of them) that autograd saves are
counted once, with the weights, and so is a tensor saved by several operations. The CUDA allocator, kernel workspaces and fragmentation add to these figures: they are
estimates, not measurements.

Usage::

    python plugins/vader-svd/scripts/estimate_memory.py --frames 14 --height 576 --width 1024 --chunk 2
"""

from __future__ import annotations

import argparse
import contextlib
from typing import Callable

import torch

GIB = 2**30


_IN_SDPA = [False]


class _Saved:
    """Bytes of the tensors autograd saves for backward.

    Weights and their views (transposes, broadcasts) are left out (counted with the weights), a storage
    that several operations save is counted once, and attention as :func:`_flash_attention` keeps it.
    """

    def __init__(self) -> None:
        self.total = 0
        self._seen: dict[int, torch.Tensor] = {}

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        base = t if t._base is None else t._base
        if not _IN_SDPA[0] and not isinstance(base, torch.nn.Parameter) and id(base) not in self._seen:
            self._seen[id(base)] = base  # kept alive so that its id is not reused
            self.total += base.untyped_storage().nbytes()
        return t


class _KeepLikeFlash(torch.autograd.Function):
    """Identity that saves what a flash / memory-efficient attention kernel saves (query, key, value,
    output, float32 log-sum-exp), through whichever saved-tensor hooks are active (inside a checkpointed
    block the checkpoint's own: then nothing is counted, as on a GPU)."""

    @staticmethod
    def forward(ctx, out, q, k, v):  # noqa: ANN001, ANN205
        lse = torch.empty(out.shape[:-1], dtype=torch.float32, device=out.device)
        ctx.save_for_backward(q, k, v, out, lse)
        return out.view_as(out)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        return grad, None, None, None


@contextlib.contextmanager
def _flash_attention():
    """Count ``scaled_dot_product_attention`` as GPUs' flash kernels keep it, not as the math kernel that
    the meta device traces (which keeps the attention matrix)."""
    import torch.nn.functional as F

    sdpa = F.scaled_dot_product_attention

    def flash_like(q, k, v, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        _IN_SDPA[0] = True
        try:
            out = sdpa(q, k, v, *args, **kwargs)
        finally:
            _IN_SDPA[0] = False
        return _KeepLikeFlash.apply(out, q, k, v) if torch.is_grad_enabled() else out

    F.scaled_dot_product_attention = flash_like
    try:
        yield
    finally:
        F.scaled_dot_product_attention = sdpa


def _profile(
    model: torch.nn.Module, blocks: list[torch.nn.Module], fn: Callable[[], object]
) -> tuple[float, float, float]:
    """(saved without checkpointing, saved with the model's own checkpointing, largest block) in GiB."""
    saved, per = _Saved(), []
    hooks = []
    for b in blocks:
        hooks.append(b.register_forward_pre_hook(lambda m, a: setattr(m, "_vader_start", saved.total)))
        hooks.append(b.register_forward_hook(lambda m, a, o: per.append(saved.total - m._vader_start)))
    model.disable_gradient_checkpointing()
    with _flash_attention(), torch.autograd.graph.saved_tensors_hooks(saved.pack, lambda t: t):
        fn()
    for h in hooks:
        h.remove()
    checkpointed = _Saved()
    model.enable_gradient_checkpointing()
    with _flash_attention(), torch.autograd.graph.saved_tensors_hooks(checkpointed.pack, lambda t: t):
        fn()
    model.disable_gradient_checkpointing()
    return saved.total / GIB, checkpointed.total / GIB, max(per, default=0) / GIB


def estimate(height: int = 576, width: int = 1024, frames: int = 14, chunk: int | None = None,
             dtype: torch.dtype = torch.bfloat16) -> dict[str, float]:
    """Memory figures in GiB for one training step (batch 1, K=1, guidance on).

    Args:
        height (`int`, *optional*, defaults to `576`): frame height.
        width (`int`, *optional*, defaults to `1024`): frame width.
        frames (`int`, *optional*, defaults to `14`): frames per video.
        chunk (`int`, *optional*): frames the temporal decoder decodes together (`None`: all).
        dtype (`torch.dtype`, *optional*, defaults to `torch.bfloat16`): weights and activations.

    Returns:
        `dict[str, float]`: ``weights``, ``unet`` / ``unet_ckpt`` (one kept UNet call without / with
        resnet checkpointing), ``decoder`` / ``decoder_ckpt`` (one chunk with gradient, without / with
        block checkpointing), and ``peak`` (weights + the larger of ``unet_ckpt`` and ``decoder_ckpt``).
    """
    from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
    from diffusers.models.resnet import SpatioTemporalResBlock
    from diffusers.utils import logging
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    logging.set_verbosity_error()  # casting meta modules is harmless

    chunk = chunk or frames
    h, w = height // 8, width // 8
    with torch.device("meta"):
        unet = UNetSpatioTemporalConditionModel().to(device="meta", dtype=dtype).requires_grad_(False)
        vae = AutoencoderKLTemporalDecoder(
            block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
            layers_per_block=2, latent_channels=4,
        ).to(device="meta", dtype=dtype).requires_grad_(False)
        encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
            hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16, image_size=224,
            patch_size=14, projection_dim=1024, hidden_act="gelu",
        ))
        n_params = sum(p.numel() for m in (unet, vae, encoder) for p in m.parameters())
        x = torch.randn(2, frames, 8, h, w, dtype=dtype, requires_grad=True)
        emb, ids = torch.randn(2, 1, 1024, dtype=dtype), torch.randn(2, 3, dtype=dtype)
        resnets = [m for m in unet.modules() if isinstance(m, SpatioTemporalResBlock)]
        unet_full, unet_stored, unet_block = _profile(
            unet, resnets, lambda: unet(x, torch.tensor(1.0), emb, ids).sample)
        z = torch.randn(chunk, 4, h, w, dtype=dtype, requires_grad=True)
        blocks = [vae.decoder.mid_block, *vae.decoder.up_blocks]
        dec_full, dec_stored, dec_block = _profile(vae, blocks, lambda: vae.decode(z, num_frames=chunk).sample)
    weights = n_params * torch.empty((), dtype=dtype).element_size() / GIB
    out = {
        "weights": weights,
        "unet": unet_full, "unet_ckpt": unet_stored + unet_block,
        "decoder": dec_full, "decoder_ckpt": dec_stored + dec_block,
    }
    out["peak"] = weights + max(out["unet_ckpt"], out["decoder_ckpt"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--height", type=int, default=576)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--frames", type=int, default=14)
    parser.add_argument("--chunk", type=int, default=None, help="decode chunk size (default: all frames)")
    a = parser.parse_args()
    r = estimate(a.height, a.width, a.frames, a.chunk)
    print(f"SVD {a.frames} frames {a.height}x{a.width}, decode chunk {a.chunk or a.frames}, bf16 (GiB, estimated):")
    print(f"  weights {r['weights']:.1f}")
    print(f"  one kept UNet call: {r['unet']:.1f}; with resnet checkpointing {r['unet_ckpt']:.1f}")
    print(f"  decoder chunk with gradient: {r['decoder']:.1f}; with block checkpointing {r['decoder_ckpt']:.1f}")
    print(f"  peak of a K=1 step (both checkpointing options on): about {r['peak']:.0f}")


if __name__ == "__main__":
    main()
