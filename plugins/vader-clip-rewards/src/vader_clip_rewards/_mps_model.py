"""MPS's cross-attention module (imported only when the ``mps`` reward loads: it imports torch).

Written from the description of the authors' ``trainer/models/cross_modeling.py`` (Kwai-Kolors/MPS): the
module names and shapes are those of the released state dict, the computation uses
``torch.nn.functional.scaled_dot_product_attention``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class _LayerNorm(nn.Module):
    """LayerNorm with a learned scale and a fixed zero shift, kept as a buffer as in the released state dict."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.register_buffer("bias", torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], self.weight, self.bias)


class _SwiGLU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, gate = x.chunk(2, dim=-1)
        return F.silu(gate) * x


class _Residual(nn.Module):
    def __init__(self, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor, *args: Any) -> torch.Tensor:
        return self.fn(x, *args) + x


class _CrossAttention(nn.Module):
    """Multi-query cross-attention (one key/value head) of the image tokens to the prompt tokens, with a
    parallel SwiGLU feed-forward of the normalised image tokens."""

    def __init__(self, dim: int, heads: int, dim_head: int, ff_mult: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = _LayerNorm(dim)
        self.to_q = nn.Linear(dim, heads * dim_head, bias=False)
        self.to_kv = nn.Linear(dim, 2 * dim_head, bias=False)
        self.to_out = nn.Linear(heads * dim_head, dim, bias=False)
        inner = ff_mult * dim
        self.ff = nn.Sequential(nn.Linear(dim, 2 * inner, bias=False), _SwiGLU(), nn.Linear(inner, dim, bias=False))

    def forward(self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        b, n, _ = x.shape
        q = self.to_q(x).view(b, n, self.heads, -1).transpose(1, 2)
        k, v = self.to_kv(context).chunk(2, dim=-1)
        h = self.heads
        out = F.scaled_dot_product_attention(
            q, k[:, None].expand(-1, h, -1, -1), v[:, None].expand(-1, h, -1, -1), attn_mask=mask[:, None, None, :]
        )
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1)) + self.ff(x)


class _Rotary(nn.Module):
    """Rotary angles of positions ``0..n-1``, always in float32.

    ``inv_freq`` is a buffer of the released state dict, kept so it loads strictly; the angles are computed
    from the formula in float32 instead, because in bf16 (or the authors' fp16) the angle of position 256
    is off by up to a radian (or an eighth of one).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.register_buffer("inv_freq", 1.0 / (10000 ** (torch.arange(0, dim, 2).float() / dim)))

    def forward(self, n: int, device: Any) -> torch.Tensor:
        inv_freq = 1.0 / (10000 ** (torch.arange(0, self.dim, 2, device=device, dtype=torch.float32) / self.dim))
        freqs = torch.outer(torch.arange(n, device=device, dtype=torch.float32), inv_freq)
        return torch.cat((freqs, freqs), dim=-1)


def _rotate(pos: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    x1, x2 = t.chunk(2, dim=-1)
    return t * pos.cos().to(t.dtype) + torch.cat((-x2, x1), dim=-1) * pos.sin().to(t.dtype)


class _ParallelBlock(nn.Module):
    """PaLM-style block: multi-query self-attention with rotary positions and a SwiGLU feed-forward, both
    from one fused projection of the normalised tokens, summed."""

    def __init__(self, dim: int, heads: int, dim_head: int, ff_mult: int) -> None:
        super().__init__()
        self.heads, self.inner = heads, ff_mult * dim
        self.norm = _LayerNorm(dim)
        self.rotary_emb = _Rotary(dim_head)
        self.fused_dims = (heads * dim_head, dim_head, dim_head, 2 * self.inner)
        self.fused_attn_ff_proj = nn.Linear(dim, sum(self.fused_dims), bias=False)
        self.attn_out = nn.Linear(heads * dim_head, dim, bias=False)
        self.ff_out = nn.Sequential(_SwiGLU(), nn.Linear(self.inner, dim, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        b, n, _ = x.shape
        q, k, v, ff = self.fused_attn_ff_proj(x).split(self.fused_dims, dim=-1)
        q = q.view(b, n, self.heads, -1).transpose(1, 2)
        pos = self.rotary_emb(n, x.device)
        q, k = _rotate(pos, q), _rotate(pos, k)
        h = self.heads
        out = F.scaled_dot_product_attention(q, k[:, None].expand(-1, h, -1, -1), v[:, None].expand(-1, h, -1, -1))
        return self.attn_out(out.transpose(1, 2).reshape(b, n, -1)) + self.ff_out(ff)


class CrossModel(nn.Module):
    """MPS's condition-masked cross-attention module (``cross_model.*`` of the released state dict).

    ``layers.{i}.0`` is a residual cross-attention of the query tokens to the context tokens,
    ``layers.{i}.1`` a residual parallel self-attention/feed-forward block.

    Args:
        dim (`int`): token width (the CLIP projection width, 1024 for ViT-H-14).
        layers, heads, dim_head, ff_mult (`int`): 4, 16, 64, 4 in the released model.
    """

    def __init__(self, dim: int, layers: int, heads: int, dim_head: int, ff_mult: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    _Residual(_CrossAttention(dim, heads, dim_head, ff_mult)),
                    _Residual(_ParallelBlock(dim, heads, dim_head, ff_mult)),
                ]
            )
            for _ in range(layers)
        )

    def forward(self, query: torch.Tensor, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``query`` ``(B, N, D)``, ``context`` ``(B, T, D)``, additive ``mask`` ``(B, T)`` (0 or -inf) of the
        context tokens; returns ``(B, N, D)``."""
        for cross, block in self.layers:
            query = block(cross(query, context, mask))
        return query
