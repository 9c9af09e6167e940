"""The LVDM 3D UNet of VideoCrafter2 (``lvdm.modules.networks.openaimodel3d.UNetModel``), in diffusers' style.

A 2-D UNet over the frames of a video (frames folded into the batch) with, at every attention
resolution, a spatial transformer (self-attention, then cross-attention to the OpenCLIP text
tokens) followed by a temporal transformer (two self-attentions along the frame axis); every residual
block ends with a temporal convolution block; one extra temporal transformer (``init_attn``) follows
the input convolution; the timestep embedding is added to an embedding of the frame rate.

Module and parameter names are those of the official code, so ``state_dict()`` has exactly the
keys of the official checkpoint under ``model.diffusion_model.`` (the official spelling
``temopral_conv`` included) and loads without renaming. Attention runs through
``torch.nn.functional.scaled_dot_product_attention``; :meth:`LVDMUNet3DModel.checkpoint_layers` names
every residual block and transformer, which vader's core recomputes one by one in backward (as the
official ``use_checkpoint`` does); peft LoRA targets the
``to_q`` / ``to_k`` / ``to_v`` linear layers of every attention, as the VADER code does.

The default configuration is that of the official ``configs/inference_t2v_512_v2.0.yaml``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import get_timestep_embedding
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 (the official residual blocks' ``normalization``), whatever the dtype of
    the input and of the weights (vader casts the frozen model to the run's precision)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = None if self.weight is None else self.weight.float()
        b = None if self.bias is None else self.bias.float()
        return F.group_norm(x.float(), self.num_groups, w, b, self.eps).type(x.dtype)


class Attention(nn.Module):
    """Multi-head attention with the official names: ``to_q``, ``to_k``, ``to_v`` (no bias), ``to_out.0``.

    Self-attention when ``context`` is ``None``; cross-attention to ``context`` otherwise.
    """

    def __init__(self, query_dim: int, context_dim: int | None, heads: int, dim_head: int, dropout: float = 0.0):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim or query_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim or query_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        b, n, _ = x.shape
        q, k, v = self.to_q(x), self.to_k(context), self.to_v(context)
        q, k, v = (t.reshape(b, t.shape[1], self.heads, -1).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(dim_head), as the official
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class GEGLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.gelu(gate)


class FeedForward(nn.Module):
    """Gated-GELU feed-forward, ``net.0.proj`` and ``net.2`` as in the official code."""

    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(GEGLU(dim, dim * mult), nn.Dropout(dropout), nn.Linear(dim * mult, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TransformerBlock(nn.Module):
    """Pre-norm block: ``attn1`` (self), ``attn2`` (cross to ``context``, or self without one), ``ff``."""

    def __init__(self, dim: int, heads: int, dim_head: int, context_dim: int | None):
        super().__init__()
        self.attn1 = Attention(dim, None, heads, dim_head)
        self.ff = FeedForward(dim)
        self.attn2 = Attention(dim, context_dim, heads, dim_head)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context) + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    """Attention over the pixels of each frame, with cross-attention to the text (``use_linear`` projections)."""

    def __init__(self, channels: int, heads: int, dim_head: int, depth: int, context_dim: int):
        super().__init__()
        inner = heads * dim_head
        self.norm = nn.GroupNorm(32, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, inner)
        self.transformer_blocks = nn.ModuleList(
            [TransformerBlock(inner, heads, dim_head, context_dim) for _ in range(depth)]
        )
        self.proj_out = nn.Linear(inner, channels)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, context: torch.Tensor, num_frames: int) -> torch.Tensor:
        bf, c, h, w = x.shape
        y = self.proj_in(self.norm(x).permute(0, 2, 3, 1).reshape(bf, h * w, c))
        for block in self.transformer_blocks:
            y = block(y, context)
        return self.proj_out(y).reshape(bf, h, w, c).permute(0, 3, 1, 2) + x


class TemporalTransformer(nn.Module):
    """Self-attention along the frame axis at every pixel (``temporal_selfatt_only``: both attentions of a
    block are self-attentions). ``use_linear`` selects linear projections, else 1x1 ``Conv1d`` ones
    (the official ``init_attn``)."""

    def __init__(self, channels: int, heads: int, dim_head: int, depth: int, use_linear: bool):
        super().__init__()
        inner = heads * dim_head
        self.use_linear = use_linear
        self.norm = nn.GroupNorm(32, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, inner) if use_linear else nn.Conv1d(channels, inner, 1)
        self.transformer_blocks = nn.ModuleList([TransformerBlock(inner, heads, dim_head, None) for _ in range(depth)])
        self.proj_out = nn.Linear(inner, channels) if use_linear else nn.Conv1d(inner, channels, 1)

    def _project(self, layer: nn.Module, y: torch.Tensor) -> torch.Tensor:
        if self.use_linear:
            return layer(y)
        return F.linear(y, layer.weight.squeeze(-1), layer.bias)  # a 1x1 Conv1d over (N, C, T) == linear over C

    def forward(self, x: torch.Tensor, emb: torch.Tensor, context: torch.Tensor, num_frames: int) -> torch.Tensor:
        bf, c, h, w = x.shape
        b = bf // num_frames
        y = self.norm(x.reshape(b, num_frames, c, h, w).transpose(1, 2))  # (b, c, f, h, w)
        y = y.permute(0, 3, 4, 2, 1).reshape(b * h * w, num_frames, c)
        y = self._project(self.proj_in, y)
        for block in self.transformer_blocks:
            y = block(y)
        y = self._project(self.proj_out, y)
        y = y.reshape(b, h, w, num_frames, c).permute(0, 3, 4, 1, 2).reshape(bf, c, h, w)
        return y + x


class TemporalConvBlock(nn.Module):
    """Four (3, 1, 1) convolutions along the frame axis with a residual (from ModelScope's UNet)."""

    def __init__(self, channels: int, dropout: float = 0.1):
        super().__init__()
        conv = lambda: nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0))  # noqa: E731
        self.conv1 = nn.Sequential(nn.GroupNorm(32, channels), nn.SiLU(), conv())
        self.conv2 = nn.Sequential(nn.GroupNorm(32, channels), nn.SiLU(), nn.Dropout(dropout), conv())
        self.conv3 = nn.Sequential(nn.GroupNorm(32, channels), nn.SiLU(), nn.Dropout(dropout), conv())
        self.conv4 = nn.Sequential(nn.GroupNorm(32, channels), nn.SiLU(), nn.Dropout(dropout), conv())
        nn.init.zeros_(self.conv4[-1].weight)  # starts as the identity, as the official
        nn.init.zeros_(self.conv4[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv4(self.conv3(self.conv2(self.conv1(x)))) + x


class ResBlock(nn.Module):
    """Residual block with the timestep embedding added after the first convolution, then a temporal
    convolution block (official attribute name ``temopral_conv``)."""

    def __init__(
        self,
        channels: int,
        emb_channels: int,
        out_channels: int | None = None,
        dropout: float = 0.0,
        temporal_conv: bool = True,
    ):
        super().__init__()
        out_channels = out_channels or channels
        self.in_layers = nn.Sequential(
            GroupNorm32(32, channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1)
        )
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, out_channels))
        self.out_layers = nn.Sequential(
            GroupNorm32(32, out_channels),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        self.skip_connection = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)
        if temporal_conv:
            self.temopral_conv = TemporalConvBlock(out_channels)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, context: torch.Tensor, num_frames: int) -> torch.Tensor:
        h = self.in_layers(x)
        h = h + self.emb_layers(emb).type(h.dtype)[:, :, None, None]
        h = self.skip_connection(x) + self.out_layers(h)
        if hasattr(self, "temopral_conv"):
            bf, c, hh, ww = h.shape
            v = h.reshape(bf // num_frames, num_frames, c, hh, ww).transpose(1, 2)
            h = self.temopral_conv(v).transpose(1, 2).reshape(bf, c, hh, ww)
        return h


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, context: torch.Tensor, num_frames: int) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, context: torch.Tensor, num_frames: int) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class InputConv(nn.Conv2d):
    def forward(self, x: torch.Tensor, emb: torch.Tensor, context: torch.Tensor, num_frames: int) -> torch.Tensor:  # type: ignore[override]
        return super().forward(x)


class LVDMUNet3DModel(ModelMixin, ConfigMixin):
    r"""The VideoCrafter2 denoiser: predicts the noise of ``(B, C, F, H, W)`` latents.

    Args:
        in_channels (`int`, *optional*, defaults to `4`), out_channels (`int`, *optional*, defaults to `4`):
            latent channels.
        model_channels (`int`, *optional*, defaults to `320`): width of the first level.
        channel_mult (`tuple[int]`, *optional*, defaults to `(1, 2, 4, 4)`): width of each level, in
            ``model_channels``.
        num_res_blocks (`int`, *optional*, defaults to `2`): residual blocks per level.
        attention_resolutions (`tuple[int]`, *optional*, defaults to `(4, 2, 1)`): downsampling factors that
            get spatial and temporal transformers.
        num_head_channels (`int`, *optional*, defaults to `64`): width of an attention head.
        transformer_depth (`int`, *optional*, defaults to `1`): blocks per spatial transformer.
        temporal_transformer_depth (`int`, *optional*, defaults to `1`): blocks per temporal transformer.
        context_dim (`int`, *optional*, defaults to `1024`): width of the text tokens (OpenCLIP ViT-H-14).
        init_attn_heads (`int`, *optional*, defaults to `8`): heads of ``init_attn`` (the official hard-codes 8).
        temporal_conv (`bool`, *optional*, defaults to `True`): temporal convolution in every residual block.
        addition_attention (`bool`, *optional*, defaults to `True`): the ``init_attn`` temporal transformer.
        fps_cond (`bool`, *optional*, defaults to `True`): add an embedding of the frame rate to the time embedding.
        dropout (`float`, *optional*, defaults to `0.0`): dropout in the residual blocks.
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int = 4,
        out_channels: int = 4,
        model_channels: int = 320,
        channel_mult: Sequence[int] = (1, 2, 4, 4),
        num_res_blocks: int = 2,
        attention_resolutions: Sequence[int] = (4, 2, 1),
        num_head_channels: int = 64,
        transformer_depth: int = 1,
        temporal_transformer_depth: int = 1,
        context_dim: int = 1024,
        init_attn_heads: int = 8,
        temporal_conv: bool = True,
        addition_attention: bool = True,
        fps_cond: bool = True,
        dropout: float = 0.0,
    ):
        super().__init__()
        emb_dim = model_channels * 4
        self.time_embed = nn.Sequential(nn.Linear(model_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        if fps_cond:
            self.fps_embedding = nn.Sequential(
                nn.Linear(model_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
            )

        def attention(ch: int) -> list[nn.Module]:
            heads = ch // num_head_channels
            return [
                SpatialTransformer(ch, heads, num_head_channels, transformer_depth, context_dim),
                TemporalTransformer(ch, heads, num_head_channels, temporal_transformer_depth, use_linear=True),
            ]

        self.input_blocks = nn.ModuleList([nn.ModuleList([InputConv(in_channels, model_channels, 3, padding=1)])])
        if addition_attention:
            self.init_attn = nn.ModuleList(
                [
                    TemporalTransformer(
                        model_channels, init_attn_heads, num_head_channels, transformer_depth, use_linear=False
                    )
                ]
            )
        skip_channels, ch, ds = [model_channels], model_channels, 1
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers: list[nn.Module] = [ResBlock(ch, emb_dim, mult * model_channels, dropout, temporal_conv)]
                ch = mult * model_channels
                if ds in attention_resolutions:
                    layers += attention(ch)
                self.input_blocks.append(nn.ModuleList(layers))
                skip_channels.append(ch)
            if level != len(channel_mult) - 1:
                self.input_blocks.append(nn.ModuleList([Downsample(ch)]))
                skip_channels.append(ch)
                ds *= 2
        self.middle_block = nn.ModuleList(
            [
                ResBlock(ch, emb_dim, None, dropout, temporal_conv),
                *attention(ch),
                ResBlock(ch, emb_dim, None, dropout, temporal_conv),
            ]
        )
        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks + 1):
                layers = [ResBlock(ch + skip_channels.pop(), emb_dim, model_channels * mult, dropout, temporal_conv)]
                ch = model_channels * mult
                if ds in attention_resolutions:
                    layers += attention(ch)
                if level and i == num_res_blocks:
                    layers.append(Upsample(ch))
                    ds //= 2
                self.output_blocks.append(nn.ModuleList(layers))
        self.out = nn.Sequential(GroupNorm32(32, ch), nn.SiLU(), nn.Conv2d(model_channels, out_channels, 3, padding=1))

    def _run(
        self, block: nn.ModuleList, h: torch.Tensor, emb: torch.Tensor, context: torch.Tensor, num_frames: int
    ) -> torch.Tensor:
        for layer in block:
            h = layer(h, emb, context, num_frames)
        return h

    def checkpoint_layers(self) -> list[nn.Module]:
        """Every layer of the input, middle and output blocks and ``init_attn`` except the input convolution:
        the units the official ``use_checkpoint`` recomputes in backward."""
        blocks = [
            *self.input_blocks,
            *([self.init_attn] if self.config.addition_attention else []),
            self.middle_block,
            *self.output_blocks,
        ]
        return [layer for block in blocks for layer in block if not isinstance(layer, InputConv)]

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        fps: torch.Tensor | int = 16,
    ) -> torch.Tensor:
        """Noise prediction for ``sample`` ``(B, C, F, H, W)``.

        Args:
            sample (`torch.Tensor`): noisy latents ``(B, C, F, H, W)``.
            timestep (`torch.Tensor` or `int`): diffusion timestep(s), one or ``B``.
            encoder_hidden_states (`torch.Tensor`): text tokens ``(B, L, context_dim)``.
            fps (`torch.Tensor` or `int`, *optional*, defaults to `16`): frame rate(s), one or ``B``
                (the official default; VideoCrafter2's sampling scripts pass 24 or 28).

        Returns:
            `torch.Tensor`: ``(B, out_channels, F, H, W)``.
        """
        b, _, f, hh, ww = sample.shape
        t = torch.as_tensor(timestep, device=sample.device)
        t = t.reshape(-1).expand(b) if t.numel() in (1, b) else t
        ch = self.config.model_channels
        # cos-then-sin sinusoidal embedding with max period 10000: the official timestep_embedding
        t_emb = get_timestep_embedding(t, ch, flip_sin_to_cos=True, downscale_freq_shift=0)
        emb = self.time_embed(t_emb.to(self.dtype))
        if self.config.fps_cond:
            fps_t = torch.as_tensor(fps, device=sample.device).reshape(-1).expand(b)
            emb = emb + self.fps_embedding(
                get_timestep_embedding(fps_t, ch, flip_sin_to_cos=True, downscale_freq_shift=0).to(self.dtype)
            )
        context = encoder_hidden_states.repeat_interleave(f, dim=0)
        emb = emb.repeat_interleave(f, dim=0)
        h = sample.transpose(1, 2).reshape(b * f, -1, hh, ww)  # frames folded into the batch
        skips = []
        for i, block in enumerate(self.input_blocks):
            h = self._run(block, h, emb, context, f)
            if i == 0 and self.config.addition_attention:
                h = self._run(self.init_attn, h, emb, context, f)
            skips.append(h)
        h = self._run(self.middle_block, h, emb, context, f)
        for block in self.output_blocks:
            h = self._run(block, torch.cat([h, skips.pop()], dim=1), emb, context, f)
        y = self.out(h)
        return y.reshape(b, f, *y.shape[1:]).transpose(1, 2)
