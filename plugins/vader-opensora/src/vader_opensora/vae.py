"""The Open-Sora 1.2 VAE, with the module names of the released ``hpcai-tech/OpenSora-VAE-v1.2``.

Written from ``opensora/models/vae/vae.py`` and ``vae_temporal.py`` (hpcai-tech/Open-Sora v1.2). Two
stages, one state dict:

* ``spatial_vae.module``: the SD-XL VAE (PixArt-Sigma's ``pixart_sigma_sdxlvae_T5_diffusers/vae``) as
  diffusers' own ``AutoencoderKL``, run frame by frame with the fixed factor 0.18215 (the official code's,
  not the SD-XL config's 0.13025): 8x spatial compression, 4 channels;
* ``temporal_vae``: a MAGVIT-style causal 3D-convolution autoencoder on those 4-channel latents
  (``VAE_Temporal_SD``: filters 128, channel multipliers (1, 2, 2, 4), 4 residual blocks per level,
  two 2x temporal downsamplings): 4x temporal compression. It runs on micro-chunks of 17 frames
  (5 latent frames), each chunk causally padded at its front to a multiple of 4;
* latents are normalised per channel with the buffers ``shift`` (-0.10, 0.34, 0.27, 0.98) and ``scale``
  (3.85, 2.32, 2.33, 3.06): ``z = (x - shift) / scale``.

``decode(z, num_frames)`` inverts it: de-normalise, temporal decoder per 5-latent chunk (17 frames, or
what remains), spatial decoder per frame. :meth:`OpenSoraVAE.decode` takes an optional list of frame
indices: only the temporal chunks holding them are decoded (the temporal decoder's GroupNorms mix
every frame of a chunk, so a chunk is decoded whole) and only those frames go through the spatial
decoder, the costly part; the frames are exactly those of a full decode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

#: Per-channel latent normalisation of the released VAE.
SHIFT = (-0.10, 0.34, 0.27, 0.98)
SCALE = (3.85, 2.32, 2.33, 3.06)
#: The spatial VAE's fixed latent factor in the official code.
SPATIAL_FACTOR = 0.18215
MICRO_FRAME_SIZE = 17

#: diffusers ``AutoencoderKL`` configuration of the SD-XL VAE.
SDXL_VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "act_fn": "silu",
    "sample_size": 1024,
    "scaling_factor": 0.13025,
    "force_upcast": True,
}
#: ``VAE_Temporal_SD``.
TEMPORAL_CONFIG: dict[str, Any] = {
    "in_out_channels": 4,
    "latent_embed_dim": 4,
    "embed_dim": 4,
    "filters": 128,
    "num_res_blocks": 4,
    "channel_multipliers": (1, 2, 2, 4),
    "temporal_downsample": (False, True, True),
    "num_groups": 32,
}


class CausalConv3d(nn.Module):
    """Conv3d (``conv``) padded in time at the front only (``k - 1 + 1 - stride`` frames), "same" in space."""

    def __init__(
        self,
        chan_in: int,
        chan_out: int,
        kernel_size: int | tuple[int, int, int],
        strides: tuple[int, int, int] | None = None,
        bias: bool = True,
    ) -> None:
        super().__init__()
        kt, kh, kw = (kernel_size,) * 3 if isinstance(kernel_size, int) else kernel_size
        stride = strides if strides is not None else (1, 1, 1)
        self.padding = (kw // 2, kw // 2, kh // 2, kh // 2, (kt - 1) + (1 - stride[0]), 0)
        self.conv = nn.Conv3d(chan_in, chan_out, (kt, kh, kw), stride=stride, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, self.padding))


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> causal conv, twice, plus the input (``conv3``, 1x1x1, when channels change)."""

    def __init__(self, in_channels: int, filters: int, num_groups: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(num_groups, in_channels)
        self.conv1 = CausalConv3d(in_channels, filters, 3, bias=False)
        self.norm2 = nn.GroupNorm(num_groups, filters)
        self.conv2 = CausalConv3d(filters, filters, 3, bias=False)
        self.conv3 = CausalConv3d(in_channels, filters, 1, bias=False) if in_channels != filters else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return h + (self.conv3(x) if self.conv3 is not None else x)


class TemporalEncoder(nn.Module):
    def __init__(
        self,
        in_out_channels: int,
        latent_embed_dim: int,
        filters: int,
        num_res_blocks: int,
        channel_multipliers: Sequence[int],
        temporal_downsample: Sequence[bool],
        num_groups: int,
    ) -> None:
        super().__init__()
        self.conv_in = CausalConv3d(in_out_channels, filters, 3, bias=False)
        self.block_res_blocks = nn.ModuleList()
        self.conv_blocks = nn.ModuleList()
        prev = filters
        n = len(channel_multipliers)
        for i, mult in enumerate(channel_multipliers):
            f = filters * mult
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks):
                blocks.append(ResBlock(prev, f, num_groups))
                prev = f
            self.block_res_blocks.append(blocks)
            if i < n - 1:
                self.conv_blocks.append(
                    CausalConv3d(prev, f, 3, strides=(2, 1, 1)) if temporal_downsample[i] else nn.Identity()
                )
                prev = f
        self.res_blocks = nn.ModuleList([ResBlock(prev, f, num_groups) for _ in range(num_res_blocks)])
        self.norm1 = nn.GroupNorm(num_groups, prev)
        self.conv2 = CausalConv3d(prev, latent_embed_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(x)
        for i, blocks in enumerate(self.block_res_blocks):
            for blk in blocks:
                x = blk(x)
            if i < len(self.conv_blocks):
                x = self.conv_blocks[i](x)
        for blk in self.res_blocks:
            x = blk(x)
        return self.conv2(F.silu(self.norm1(x)))


class TemporalDecoder(nn.Module):
    def __init__(
        self,
        in_out_channels: int,
        latent_embed_dim: int,
        filters: int,
        num_res_blocks: int,
        channel_multipliers: Sequence[int],
        temporal_downsample: Sequence[bool],
        num_groups: int,
    ) -> None:
        super().__init__()
        self.temporal_downsample = tuple(temporal_downsample)
        top = filters * channel_multipliers[-1]
        self.conv1 = CausalConv3d(latent_embed_dim, top, 3)
        self.res_blocks = nn.ModuleList([ResBlock(top, top, num_groups) for _ in range(num_res_blocks)])
        n = len(channel_multipliers)
        blocks_by_level: list[nn.ModuleList] = [nn.ModuleList() for _ in range(n)]
        convs_by_level: list[nn.Module] = [nn.Identity() for _ in range(n - 1)]
        prev = top
        for i in reversed(range(n)):
            f = filters * channel_multipliers[i]
            for _ in range(num_res_blocks):
                blocks_by_level[i].append(ResBlock(prev, f, num_groups))
                prev = f
            if i > 0 and temporal_downsample[i - 1]:
                convs_by_level[i - 1] = CausalConv3d(prev, prev * 2, 3)  # then depth-to-time, 2x
        self.block_res_blocks = nn.ModuleList(blocks_by_level)
        self.conv_blocks = nn.ModuleList(convs_by_level)
        self.norm1 = nn.GroupNorm(num_groups, prev)
        self.conv_out = CausalConv3d(prev, in_out_channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        for blk in self.res_blocks:
            x = blk(x)
        for i in reversed(range(len(self.block_res_blocks))):
            for blk in self.block_res_blocks[i]:
                x = blk(x)
            if i > 0:
                x = self.conv_blocks[i - 1](x)
                if self.temporal_downsample[i - 1]:  # "B (C ts) T H W -> B C (T ts) H W", ts = 2
                    b, c2, t, h, w = x.shape
                    x = x.view(b, c2 // 2, 2, t, h, w).permute(0, 1, 3, 2, 4, 5).reshape(b, c2 // 2, t * 2, h, w)
        return self.conv_out(F.silu(self.norm1(x)))


class TemporalVAE(nn.Module):
    """``VAE_Temporal``: ``encoder``, ``quant_conv``, ``post_quant_conv``, ``decoder``."""

    def __init__(
        self,
        in_out_channels: int = 4,
        latent_embed_dim: int = 4,
        embed_dim: int = 4,
        filters: int = 128,
        num_res_blocks: int = 4,
        channel_multipliers: Sequence[int] = (1, 2, 2, 4),
        temporal_downsample: Sequence[bool] = (False, True, True),
        num_groups: int = 32,
    ) -> None:
        super().__init__()
        self.time_downsample_factor = 2 ** sum(bool(t) for t in temporal_downsample)
        kw = dict(
            in_out_channels=in_out_channels,
            filters=filters,
            num_res_blocks=num_res_blocks,
            channel_multipliers=tuple(channel_multipliers),
            temporal_downsample=tuple(temporal_downsample),
            num_groups=num_groups,
        )
        self.encoder = TemporalEncoder(latent_embed_dim=latent_embed_dim * 2, **kw)
        self.quant_conv = CausalConv3d(2 * latent_embed_dim, 2 * embed_dim, 1)
        self.post_quant_conv = CausalConv3d(embed_dim, latent_embed_dim, 1)
        self.decoder = TemporalDecoder(latent_embed_dim=latent_embed_dim, **kw)

    def time_padding(self, num_frames: int) -> int:
        return (-num_frames) % self.time_downsample_factor

    def latent_frames(self, num_frames: int) -> int:
        return (num_frames + self.time_padding(num_frames)) // self.time_downsample_factor

    def encode_moments(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (0, 0, 0, 0, self.time_padding(x.shape[2]), 0))
        return self.quant_conv(self.encoder(x))

    def decode(self, z: torch.Tensor, num_frames: int) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(z))[:, :, self.time_padding(num_frames) :]


class SpatialVAE(nn.Module):
    """Holds diffusers' ``AutoencoderKL`` as ``module`` (the official wrapper's name)."""

    def __init__(self, vae: nn.Module) -> None:
        super().__init__()
        self.module = vae


class OpenSoraVAE(nn.Module):
    """``VideoAutoencoderPipeline`` of Open-Sora 1.2 (``OpenSoraVAE_V1_2``): spatial then temporal VAE."""

    def __init__(
        self,
        spatial_config: dict[str, Any] | None = None,
        temporal_config: dict[str, Any] | None = None,
        micro_frame_size: int = MICRO_FRAME_SIZE,
    ) -> None:
        super().__init__()
        from diffusers import AutoencoderKL

        self.spatial_vae = SpatialVAE(AutoencoderKL(**(spatial_config or SDXL_VAE_CONFIG)))
        self.temporal_vae = TemporalVAE(**(temporal_config or TEMPORAL_CONFIG))
        self.micro_frame_size = micro_frame_size
        self.micro_z_frame_size = self.temporal_vae.latent_frames(micro_frame_size)
        self.register_buffer("scale", torch.tensor(SCALE)[None, :, None, None, None])
        self.register_buffer("shift", torch.tensor(SHIFT)[None, :, None, None, None])

    @property
    def out_channels(self) -> int:
        return int(self.scale.shape[1])

    @property
    def spatial_factor(self) -> int:
        return 2 ** (len(self.spatial_vae.module.config.block_out_channels) - 1)

    def latent_frames(self, num_frames: int) -> int:
        """Latent frames of ``num_frames`` pixel frames (the official ``get_latent_size``)."""
        full, rest = divmod(num_frames, self.micro_frame_size)
        return full * self.micro_z_frame_size + (self.temporal_vae.latent_frames(rest) if rest else 0)

    def chunks(self, num_frames: int) -> list[tuple[int, int, int, int]]:
        """``(latent start, latent end, first pixel frame, pixel frames)`` of each temporal micro-chunk."""
        out, z0, f0 = [], 0, 0
        while f0 < num_frames:
            n = min(self.micro_frame_size, num_frames - f0)
            nz = self.temporal_vae.latent_frames(n)
            out.append((z0, z0 + nz, f0, n))
            z0, f0 = z0 + nz, f0 + n
        return out

    def decode_spatial(self, x: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor:
        """Spatial decoder, frame by frame: ``(B, 4, F, h, w)`` -> ``(B, 3, F, H, W)`` in [-1, 1]."""
        b, c, f, h, w = x.shape
        flat = x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w) / SPATIAL_FACTOR
        step = chunk_size or flat.shape[0]
        vae = self.spatial_vae.module
        out = torch.cat([vae.decode(flat[i : i + step]).sample for i in range(0, flat.shape[0], step)])
        return out.reshape(b, f, *out.shape[1:]).permute(0, 2, 1, 3, 4)

    def decode(
        self, z: torch.Tensor, num_frames: int, frames: Sequence[int] | None = None, chunk_size: int | None = None
    ) -> torch.Tensor:
        """Latents ``(B, 4, T', h, w)`` -> video ``(B, 3, len(frames), H, W)`` in [-1, 1] (all frames if ``None``)."""
        z = z * self.scale.to(z.dtype) + self.shift.to(z.dtype)
        wanted = list(range(num_frames)) if frames is None else [int(i) for i in frames]
        if any(not 0 <= i < num_frames for i in wanted):
            raise IndexError(f"frame indices {wanted} outside the {num_frames} frames")
        picked: dict[int, torch.Tensor] = {}
        for z0, z1, f0, n in self.chunks(num_frames):
            inside = [i for i in wanted if f0 <= i < f0 + n]
            if not inside:
                continue
            x = self.temporal_vae.decode(z[:, :, z0:z1], num_frames=n)
            sel = sorted(set(inside))
            for i, frame in zip(sel, x[:, :, [i - f0 for i in sel]].unbind(2), strict=True):
                picked[i] = frame
        x = torch.stack([picked[i] for i in wanted], dim=2)
        return self.decode_spatial(x, chunk_size)
