"""STDiT3, the Open-Sora 1.2 denoiser, with the module names of the released checkpoint.

Written from the architecture of ``opensora/models/stdit/stdit3.py`` and ``opensora/models/layers/blocks.py``
(hpcai-tech/Open-Sora v1.2); every parameter and persistent buffer has the official state-dict name, so
``hpcai-tech/OpenSora-STDiT-v3``'s ``model.safetensors`` loads with ``strict=True`` and no renaming.

The architecture, per block pair (``spatial_blocks.i`` then ``temporal_blocks.i``):

* adaLN-single modulation: ``scale_shift_table`` (6, C) plus the timestep embedding projected by the
  shared ``t_block`` gives shift / scale / gate for attention and MLP (``x * (1 + scale) + shift``,
  LayerNorms without affine parameters, eps 1e-6);
* self-attention (``attn.qkv``, ``attn.proj``) with RMS-normalised queries and keys per head
  (``q_norm``, ``k_norm``, eps 1e-6), over the patches of a frame (spatial) or over the frames at a patch
  (temporal, with rotary position embeddings on queries and keys: ``rope.freqs``, theta 10000, pairs
  interleaved);
* cross-attention to the T5 tokens (``cross_attn.q_linear``, ``kv_linear``, ``proj``), each video's
  patches attending to its own valid (unmasked) tokens; ungated, unmodulated residual;
* MLP ``mlp.fc1`` -> tanh-GELU -> ``mlp.fc2``, ratio 4.

Embeddings: patches by ``x_embedder.proj`` (Conv3d, patch (1, 2, 2), inputs padded to a multiple),
plus a 2D sin-cos position embedding scaled by ``sqrt(height * width) / input_sq_size`` and by the
patch grid's ``base_size``; the timestep (sinusoidal 256 -> MLP) plus the frame rate (same embedding) ->
``t_block``; the caption through ``y_embedder.y_proj`` (MLP, tanh-GELU) with the learned null caption
``y_embedder.y_embedding`` (300 x 4096) used for classifier-free guidance. Output: ``final_layer``
(adaLN with its own 2-row table), unpatchified to ``2 * in_channels`` channels (``pred_sigma``), in float32.

Not ported: the ``x_mask`` path (per-frame timestep 0 for conditioning frames, used by Open-Sora's
image/video-conditioned generation), sequence parallelism, caption dropout in training mode (this
module always encodes the caption as in eval mode) and the flash-attention / fused-LayerNorm switches
(attention here is PyTorch's ``scaled_dot_product_attention``, which picks a fused kernel on GPU).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


@dataclass
class STDiT3Config:
    """The fields of the official ``STDiT3Config`` that change the architecture; defaults: STDiT3-XL/2."""

    input_sq_size: int = 512
    in_channels: int = 4
    patch_size: tuple[int, int, int] = (1, 2, 2)
    hidden_size: int = 1152
    depth: int = 28
    num_heads: int = 16
    mlp_ratio: float = 4.0
    pred_sigma: bool = True
    caption_channels: int = 4096
    model_max_length: int = 300
    qk_norm: bool = True

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> STDiT3Config:
        """From a (released ``config.json``) dict; keys of no architectural meaning are ignored."""
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        if "patch_size" in kw:
            kw["patch_size"] = tuple(kw["patch_size"])
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["patch_size"] = list(self.patch_size)
        return d


def _gelu_tanh() -> nn.Module:
    return nn.GELU(approximate="tanh")


class Mlp(nn.Module):
    """``fc1`` -> activation -> ``fc2`` (timm's ``Mlp`` names)."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int | None = None) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = _gelu_tanh()
        self.fc2 = nn.Linear(hidden_features, out_features or in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class RMSNorm(nn.Module):
    """RMS normalisation computed in float32 and cast back (T5 / Llama style), weight ``weight``."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(dtype)


class RotaryEmbedding(nn.Module):
    """Rotary position embedding over the sequence axis (-2), pairs of channels interleaved; its
    frequencies are the frozen parameter ``freqs`` (``1 / theta ** (2i / dim)``), as saved in the checkpoint."""

    def __init__(self, dim: int, theta: float = 10000.0) -> None:
        super().__init__()
        self.freqs = nn.Parameter(
            1.0 / (theta ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim)), requires_grad=False
        )

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        n = t.shape[-2]
        pos = torch.arange(n, device=t.device, dtype=t.dtype).to(self.freqs.dtype)
        angles = (pos[:, None] * self.freqs[None]).repeat_interleave(2, dim=-1)
        pairs = t.unflatten(-1, (-1, 2))
        rotated = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
        return t * angles.cos() + rotated * angles.sin()


class Attention(nn.Module):
    """Self-attention: ``qkv``, per-head ``q_norm`` / ``k_norm``, optional rotary embedding, ``proj``."""

    def __init__(self, dim: int, num_heads: int, qk_norm: bool, rope: RotaryEmbedding | None = None) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.q_norm = RMSNorm(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = RMSNorm(self.head_dim) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim)
        # a plain attribute, not a submodule: the checkpoint holds the frequencies once, as ``rope.freqs``
        self.__dict__["rope"] = rope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        rope = self.__dict__["rope"]
        if rope is not None:
            q, k = rope(q), rope(k)
        out = F.scaled_dot_product_attention(q, k.to(q.dtype), v.to(q.dtype))
        return self.proj(out.transpose(1, 2).reshape(b, n, c).to(x.dtype))


class MultiHeadCrossAttention(nn.Module):
    """Cross-attention of the patches to the caption tokens: ``q_linear``, ``kv_linear``, ``proj``."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q_linear = nn.Linear(dim, dim)
        self.kv_linear = nn.Linear(dim, dim * 2)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, n, c = x.shape
        q = self.q_linear(x).view(b, n, self.num_heads, self.head_dim).transpose(1, 2)
        k, v = self.kv_linear(cond).view(b, cond.shape[1], 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        attn_mask = None if mask is None else mask[:, None, None, :].bool()
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class STDiT3Block(nn.Module):
    """One spatial or temporal block (official ``STDiT3Block``)."""

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        mlp_ratio: float,
        qk_norm: bool,
        temporal: bool,
        rope: RotaryEmbedding | None = None,
    ) -> None:
        super().__init__()
        self.temporal = temporal
        self.norm1 = nn.LayerNorm(hidden_size, eps=1e-6, elementwise_affine=False)
        self.attn = Attention(hidden_size, num_heads, qk_norm, rope=rope)
        self.cross_attn = MultiHeadCrossAttention(hidden_size, num_heads)
        self.norm2 = nn.LayerNorm(hidden_size, eps=1e-6, elementwise_affine=False)
        self.mlp = Mlp(hidden_size, int(hidden_size * mlp_ratio))
        self.scale_shift_table = nn.Parameter(torch.randn(6, hidden_size) / hidden_size**0.5)

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor, mask: torch.Tensor | None, T: int, S: int
    ) -> torch.Tensor:
        b, _, c = x.shape
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = (
            self.scale_shift_table[None] + t.reshape(b, 6, -1)
        ).chunk(6, dim=1)
        h = _modulate(self.norm1(x), shift_msa, scale_msa)
        if self.temporal:  # attend over the T frames at each of the S patches
            h = h.view(b, T, S, c).transpose(1, 2).reshape(b * S, T, c)
            h = self.attn(h).view(b, S, T, c).transpose(1, 2).reshape(b, T * S, c)
        else:  # attend over the S patches of each frame
            h = self.attn(h.reshape(b * T, S, c)).view(b, T * S, c)
        x = x + gate_msa * h
        x = x + self.cross_attn(x, y, mask)
        h = self.mlp(_modulate(self.norm2(x), shift_mlp, scale_mlp))
        return x + gate_mlp * h


class PatchEmbed3D(nn.Module):
    """Conv3d patchification (``proj``), inputs zero-padded to a multiple of the patch size."""

    def __init__(self, patch_size: tuple[int, int, int], in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pt, ph, pw = self.patch_size
        _, _, d, h, w = x.shape
        x = F.pad(x, (0, (-w) % pw, 0, (-h) % ph, 0, (-d) % pt))
        return self.proj(x).flatten(2).transpose(1, 2)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding ``[cos, sin]`` of (fractional) timesteps, in float32."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class TimestepEmbedder(nn.Module):
    """Sinusoidal (256) -> ``mlp.0`` -> SiLU -> ``mlp.2``; also the frame-rate embedder."""

    def __init__(self, hidden_size: int, frequency_embedding_size: int = 256) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(frequency_embedding_size, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size)
        )
        self.frequency_embedding_size = frequency_embedding_size

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        dtype = self.mlp[0].weight.dtype
        return self.mlp(timestep_embedding(t, self.frequency_embedding_size).to(dtype))


class CaptionEmbedder(nn.Module):
    """``y_proj`` (MLP) of the T5 states, and the learned null caption ``y_embedding`` (a buffer)."""

    def __init__(self, in_channels: int, hidden_size: int, token_num: int) -> None:
        super().__init__()
        self.y_proj = Mlp(in_channels, hidden_size, hidden_size)
        self.register_buffer("y_embedding", torch.randn(token_num, in_channels) / in_channels**0.5)

    def forward(self, caption: torch.Tensor) -> torch.Tensor:
        return self.y_proj(caption)


def position_embedding_2d(
    dim: int, h: int, w: int, scale: float, base_size: int, device: Any, dtype: torch.dtype
) -> torch.Tensor:
    """The official ``PositionEmbedding2D``: ``(1, h * w, dim)``, half sin-cos of the column coordinate,
    half of the row coordinate (the official ``meshgrid`` puts the width first), coordinates divided by
    ``scale`` and stretched to ``base_size``."""
    half = dim // 2
    inv_freq = 1.0 / (10000 ** (torch.arange(0, half, 2, device=device).float() / half))
    rows = torch.arange(h, device=device) / scale * (base_size / h)
    cols = torch.arange(w, device=device) / scale * (base_size / w)
    col_coord = cols[None, :].expand(h, w).reshape(-1)
    row_coord = rows[:, None].expand(h, w).reshape(-1)

    def sincos(t: torch.Tensor) -> torch.Tensor:
        out = t[:, None] * inv_freq[None]
        return torch.cat([torch.sin(out), torch.cos(out)], dim=-1)

    return torch.cat([sincos(col_coord), sincos(row_coord)], dim=-1)[None].to(dtype)


class T2IFinalLayer(nn.Module):
    """``norm_final`` + adaLN with ``scale_shift_table`` (2, C) + ``linear`` to patch pixels."""

    def __init__(self, hidden_size: int, num_patch: int, out_channels: int) -> None:
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, num_patch * out_channels)
        self.scale_shift_table = nn.Parameter(torch.randn(2, hidden_size) / hidden_size**0.5)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        shift, scale = (self.scale_shift_table[None] + t[:, None]).chunk(2, dim=1)
        return self.linear(_modulate(self.norm_final(x), shift, scale))


class STDiT3(nn.Module):
    """The Open-Sora 1.2 spatial-temporal DiT.

    ``forward(x, timestep, y, mask, fps, height, width)``: latents ``(B, C, T, H, W)``, timesteps ``(B,)``
    in [0, 1000], T5 states ``(B, 1, L, caption_channels)`` (or ``(B, L, ...)``), the token mask ``(B, L)``
    (or ``None``: every token), frame rate, pixel height and width ``(B,)``. Returns ``(B, 2C, T, H, W)``
    float32; the velocity is the first ``C`` channels.
    """

    def __init__(self, config: STDiT3Config | None = None, **kwargs: Any) -> None:
        super().__init__()
        config = config or STDiT3Config(**kwargs)
        self.config = config
        c = config.hidden_size
        self.in_channels = config.in_channels
        self.out_channels = config.in_channels * 2 if config.pred_sigma else config.in_channels
        self.patch_size = tuple(config.patch_size)
        self.hidden_size = c
        self.gradient_checkpointing = False
        self.rope = RotaryEmbedding(c // config.num_heads)
        self.x_embedder = PatchEmbed3D(self.patch_size, config.in_channels, c)
        self.t_embedder = TimestepEmbedder(c)
        self.fps_embedder = TimestepEmbedder(c)
        self.t_block = nn.Sequential(nn.SiLU(), nn.Linear(c, 6 * c))
        self.y_embedder = CaptionEmbedder(config.caption_channels, c, config.model_max_length)
        args = (c, config.num_heads, config.mlp_ratio, config.qk_norm)
        self.spatial_blocks = nn.ModuleList([STDiT3Block(*args, temporal=False) for _ in range(config.depth)])
        self.temporal_blocks = nn.ModuleList(
            [STDiT3Block(*args, temporal=True, rope=self.rope) for _ in range(config.depth)]
        )
        self.final_layer = T2IFinalLayer(c, math.prod(self.patch_size), self.out_channels)

    # the names diffusers' models use, so that the backbone treats both alike
    def enable_gradient_checkpointing(self) -> None:
        self.gradient_checkpointing = True

    def disable_gradient_checkpointing(self) -> None:
        self.gradient_checkpointing = False

    def blocks(self) -> list[nn.Module]:
        """The blocks in the order they run (spatial 0, temporal 0, spatial 1, ...)."""
        return [b for pair in zip(self.spatial_blocks, self.temporal_blocks, strict=True) for b in pair]

    def forward(
        self,
        x: torch.Tensor,
        timestep: torch.Tensor,
        y: torch.Tensor,
        mask: torch.Tensor | None = None,
        fps: torch.Tensor | None = None,
        height: torch.Tensor | None = None,
        width: torch.Tensor | None = None,
    ) -> torch.Tensor:
        dtype = self.x_embedder.proj.weight.dtype
        b = x.shape[0]
        x, y = x.to(dtype), y.to(dtype)
        _, _, tx, hx, wx = x.shape
        pt, ph, pw = self.patch_size
        T, H, W = -(-tx // pt), -(-hx // ph), -(-wx // pw)
        S = H * W
        if height is None or width is None:
            raise ValueError("STDiT3 needs the pixel `height` and `width` (they scale its position embedding)")
        scale = (float(height.reshape(-1)[0]) * float(width.reshape(-1)[0])) ** 0.5 / self.config.input_sq_size
        pos = position_embedding_2d(self.hidden_size, H, W, scale, round(S**0.5), x.device, dtype)

        t = self.t_embedder(timestep.to(dtype).reshape(-1).expand(b))
        if fps is None:
            raise ValueError(
                "STDiT3 needs the frame rate `fps` (its fps embedding has no default in the official model)"
            )
        fps = fps.reshape(-1).expand(b)
        t = t + self.fps_embedder(fps.to(dtype))
        t_mlp = self.t_block(t)

        if y.ndim == 4:
            y = y.squeeze(1)
        y = self.y_embedder(y)
        if mask is not None:
            mask = mask.reshape(-1, mask.shape[-1])
            if mask.shape[0] != b:  # the official repeat: one mask for the text and the null caption
                mask = mask.repeat(b // mask.shape[0], 1)

        x = self.x_embedder(x).view(b, T, S, self.hidden_size) + pos
        x = x.reshape(b, T * S, self.hidden_size)
        for block in self.blocks():
            if self.gradient_checkpointing and torch.is_grad_enabled():
                x = checkpoint(block, x, y, t_mlp, mask, T, S, use_reentrant=False)
            else:
                x = block(x, y, t_mlp, mask, T, S)
        x = self.final_layer(x, t)
        x = x.view(b, T, H, W, pt, ph, pw, self.out_channels).permute(0, 7, 1, 4, 2, 5, 3, 6)
        x = x.reshape(b, self.out_channels, T * pt, H * ph, W * pw)[:, :, :tx, :hx, :wx]
        return x.float()
