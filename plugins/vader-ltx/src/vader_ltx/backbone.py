"""``ltx`` and ``ltx-i2v``: LTX-Video 0.9.x through diffusers as vader backbones.

The components of diffusers' ``LTXPipeline`` / ``LTXImageToVideoPipeline``: ``LTXVideoTransformer3DModel``,
``AutoencoderKLLTXVideo``, the T5 text encoder and its tokenizer, and the checkpoint's scheduler configuration
(flow-match Euler; 0.9.0 / 0.9.1 with resolution-dependent dynamic shifting, 0.9.5 on without). The steps
reproduce the stock pipelines' arithmetic and draw from the generator in the same order, so with the same seed
and options ``vader generate`` gives their frames:

* text: ``max_sequence_length`` T5 tokens padded to that length, with the attention mask the transformer gets;
* timesteps: the stock sigmas ``linspace(1, 1/steps, steps)``, shifted by the scheduler with
  ``mu = calculate_shift(latent tokens)`` under dynamic shifting (``timestep_kwargs``);
* latents float32 ``(B, C, (F - 1) / 8 + 1, H / 32, W / 32)`` (vader keeps them in this layout; the transformer
  gets them packed into tokens, the stock ``_pack_latents``); conditional and unconditional halves in one call
  (``uncond + g * (cond - uncond)``, guidance only above 1, as the pipeline), optional ``guidance_rescale``;
* image-to-video: the image's VAE latents (sampled from the encoder's distribution with the generator, before
  the noise) replace latent frame 0, which keeps timestep 0 and is not stepped;
* decoding: latents un-normalised with the VAE's ``latents_mean`` / ``latents_std``; a VAE with timestep
  conditioning (0.9.1 on) gets ``decode_timestep`` and the latents mixed with generator noise by
  ``decode_noise_scale``, drawn after the chain as the stock pipeline draws it.

**Frames and subsampling.** The unit of ``decode(latents, frames)`` and :meth:`num_latent_frames` is the pixel
frame: latent frame 0 decodes to pixel frame 0, latent frame k to pixel frames 8k-7 .. 8k. The decoder is *not*
causal in time: every pixel frame depends on latent frames on both sides (its receptive field spans most of a
161-frame video; see the README's figures). So a subset decoded from the whole latent video costs what decoding
all of it costs (about 20 GiB of stored activations at 512x704x161 with the decoder's blocks checkpointed), and a
subset decoded from a window of latent frames is not the full decode's frames. The VAE can decode in overlapping
temporal tiles (diffusers' framewise decoding, ``tile_sample_min_num_frames`` / ``tile_sample_stride_num_frames``,
blended where they overlap); ``decode(latents, frames)`` then runs only the tiles the chosen frames come from (and
the previous tile where a chosen frame lies in a blend): the same frames as the tiled decode of the whole video
(tested), at the memory of one or two tiles (3.3 GiB). ``vae_temporal_tiling`` null (the default) does this for
frames decoded with gradient (training) and decodes the whole video otherwise (generation and validation: the
stock pipeline's frames); true tiles always, false never.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from vader_core.backbone import BackboneOptions
from vader_core.checkpointing import layers_of, run_guided
from vader_core.dit_t2v import DiTT2VBackbone, FlowMatchOptions
from vader_core.errors import ConfigError, MissingWeightsError
from vader_core.hub import missing_weights
from vader_core.lazy import torch

LTX_VIDEO = "Lightricks/LTX-Video"
LTX_VIDEO_091 = "a-r-r-o-w/LTX-Video-0.9.1-diffusers"
LTX_VIDEO_095 = "Lightricks/LTX-Video-0.9.5"


def nearest_frame_counts(frames: int, temporal: int = 8) -> tuple[int, int]:
    """The valid frame counts (``temporal * k + 1``) just below and above ``frames``."""
    below = (frames - 1) // temporal * temporal + 1
    return max(below, 1), below + temporal


class LTXOptions(FlowMatchOptions):
    model: str | None = Field(LTX_VIDEO, description=f"Hub id or local diffusers directory (`{LTX_VIDEO}`).")
    height: int = Field(512, ge=32, description="Frame height in pixels (a multiple of 32).")
    width: int = Field(704, ge=32, description="Frame width in pixels (a multiple of 32).")
    frames: int = Field(161, ge=1, description="Frames generated: 8k + 1 (the VAE's temporal compression).")
    steps: int = Field(50, ge=1, description="Denoising steps.")
    guidance: float = Field(
        3.0, ge=0.0, description="Classifier-free guidance; 1 or less disables it (as LTXPipeline)."
    )
    scheduler: Literal["auto", "euler"] = Field(
        "auto",
        description="Sampler: `auto`/`euler`, flow-match Euler with the checkpoint's configuration (dynamic "
        "shifting for 0.9.0 / 0.9.1), the one every LTX-Video checkpoint ships (the stock pipeline passes Euler's "
        "own sigma list, which UniPC does not take).",
    )
    guidance_rescale: float = Field(
        0.0, ge=0.0, le=1.0, description="Rescale of the guided prediction (Lin et al. 2023), as LTXPipeline's."
    )
    frame_rate: float = Field(25.0, gt=0, description="Frame rate the rotary positions are scaled by (LTXPipeline's).")
    max_sequence_length: int = Field(128, ge=1, description="Text tokens (T5), as the stock pipeline's default.")
    decode_timestep: float = Field(
        0.0,
        ge=0.0,
        description="Timestep of a timestep-conditioned VAE decoder (0.9.1 on; the model cards use 0.03 or 0.05).",
    )
    decode_noise_scale: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Share of generator noise mixed into the latents before such a decoder decodes "
        "(model cards: 0.025); null: `decode_timestep`.",
    )
    vae_temporal_tiling: bool | None = Field(
        None,
        description="Decode in overlapping temporal tiles (diffusers' framewise decoding). null: only frames decoded "
        "with gradient (training), from the one or two tiles that hold them, instead of the whole video (about "
        "20 GiB at 512x704x161); generation and validation decode the whole video as the stock pipeline. true: "
        "always tiled; false: never (the frames differ slightly where tiles blend).",
    )
    vae_tile_frames: int = Field(16, ge=8, description="Pixel frames of a temporal tile (diffusers' default 16).")
    vae_tile_stride: int = Field(8, ge=8, description="Pixel frames between temporal tiles (diffusers' default 8).")

    @field_validator("frames")
    @classmethod
    def _eight_k_plus_one(cls, v: int) -> int:
        if v % 8 != 1:
            lo, hi = nearest_frame_counts(v)
            raise ValueError(f"must be 8k+1 for LTX-Video (the VAE compresses time 8x): use {lo} or {hi}")
        return v


@dataclass
class LTXCondition:
    """What ``predict`` and ``decode`` need besides the latents (opaque to the core)."""

    prompt_embeds: Any
    prompt_mask: Any
    negative_prompt_embeds: Any = None
    negative_mask: Any = None
    pixels: Any = None  # image-to-video: the preprocessed images (B, 3, H, W) in [-1, 1]


class LTXBackbone(DiTT2VBackbone):
    """LTX-Video 0.9.x text-to-video with the components of diffusers' ``LTXPipeline``."""

    name = "ltx"
    summary = "LTX-Video 0.9.x text-to-video (Lightricks/LTX-Video; 512x704, 161 frames, flow-match Euler)."
    Options: ClassVar[type[BackboneOptions]] = LTXOptions
    conditioning = "text"
    denoiser_names: ClassVar[tuple[str, ...]] = ("transformer",)
    default_lora_targets = ("to_q", "to_k", "to_v", "to_out.0")
    model_option: ClassVar[str] = "backbone.model"
    pipeline_class: ClassVar[str] = "LTXPipeline"
    size_multiple: ClassVar[int] = 32

    # -------------------------------------------------------------- loading
    def load(self, device: torch.device | str, dtype: torch.dtype) -> None:
        """Load the pipeline's components from ``options.model`` (hub id or local diffusers directory).

        Honours ``HF_HUB_OFFLINE``; missing weights raise :class:`MissingWeightsError`, one line naming the
        hub id and ``backbone.model``.
        """
        from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXVideoTransformer3DModel
        from transformers import AutoTokenizer, T5EncoderModel

        source = self.options.model or LTX_VIDEO
        kw: dict[str, Any] = {"revision": self.options.revision} if self.options.revision else {}
        local = Path(source).expanduser()
        if local.exists():
            need = ("transformer", "vae", "text_encoder", "tokenizer", "scheduler")
            missing = [s for s in need if not (local / s).is_dir()]
            if missing:
                raise MissingWeightsError(
                    f"{local} is not a diffusers LTX-Video directory (no {', '.join(f'{m}/' for m in missing)}); "
                    f"point `{self.model_option}` at the folder written by {self.pipeline_class}.save_pretrained"
                )
            source, kw = str(local), {}
        try:
            comps: dict[str, Any] = {
                "transformer": LTXVideoTransformer3DModel.from_pretrained(
                    source, subfolder="transformer", torch_dtype=dtype, **kw
                ),
                "vae": AutoencoderKLLTXVideo.from_pretrained(source, subfolder="vae", torch_dtype=dtype, **kw),
                "text_encoder": T5EncoderModel.from_pretrained(
                    source, subfolder="text_encoder", torch_dtype=dtype, **kw
                ),
                "tokenizer": AutoTokenizer.from_pretrained(source, subfolder="tokenizer", **kw),
            }
            sched = dict(FlowMatchEulerDiscreteScheduler.load_config(source, subfolder="scheduler", **kw))
        except (OSError, ValueError) as e:
            raise missing_weights(source, e, option=self.model_option, what="LTX-Video weights") from None
        comps["scheduler"] = self.make_scheduler(sched)
        self.setup(comps, device, dtype)

    def load_tiny(self, device: torch.device | str, dtype: torch.dtype, seed: int = 0) -> None:
        """Tiny random components of the LTX-Video 0.9.0 architecture (dynamically shifted Euler), for tests."""
        from .tiny import scheduler_config, tiny_components

        comps = tiny_components(seed)
        comps["scheduler"] = self.make_scheduler(scheduler_config())
        self.setup(comps, device, dtype)

    def setup(self, components: dict[str, Any], device: torch.device | str, dtype: torch.dtype) -> None:
        """Install components: moved to ``device``, cast to ``dtype``, frozen, eval mode; check the size."""
        from diffusers.video_processor import VideoProcessor

        self.install_components(components, device, dtype)
        vae = components["vae"]
        self.vae_temporal = int(vae.temporal_compression_ratio)
        self.vae_spatial = int(vae.spatial_compression_ratio)
        o = self.options
        if (o.frames - 1) % self.vae_temporal:
            lo, hi = nearest_frame_counts(o.frames, self.vae_temporal)
            raise ConfigError(
                f"`backbone.frames` must be {self.vae_temporal}k+1 for this VAE, got {o.frames}: use {lo} or {hi}"
            )
        if o.height % self.vae_spatial or o.width % self.vae_spatial:
            raise ConfigError(
                f"`backbone.height` and `backbone.width` must be multiples of {self.vae_spatial} for this "
                f"checkpoint's VAE, got {o.height}x{o.width}"
            )
        if o.vae_temporal_tiling is not False:
            if o.vae_tile_stride > o.vae_tile_frames or o.vae_tile_frames % self.vae_temporal:
                raise ConfigError(
                    f"`backbone.vae_tile_frames` ({o.vae_tile_frames}) must be a multiple of {self.vae_temporal} "
                    f"and at least `backbone.vae_tile_stride` ({o.vae_tile_stride})"
                )
            vae.use_framewise_decoding = bool(o.vae_temporal_tiling)
            vae.tile_sample_min_num_frames = o.vae_tile_frames
            vae.tile_sample_stride_num_frames = o.vae_tile_stride
        self.video_processor = VideoProcessor(vae_scale_factor=self.vae_spatial)

    def make_scheduler(self, config: dict[str, Any] | None = None) -> Any:
        """The base's scheduler from the checkpoint's configuration; a checkpoint without an Euler configuration
        gets the 0.9.0 / 0.9.1 one (dynamic shifting)."""
        from .tiny import scheduler_config

        config = dict(config or {})
        if config.get("_class_name") != "FlowMatchEulerDiscreteScheduler":
            config = scheduler_config()
        return super().make_scheduler(config)

    def condition_encoders(self) -> dict[str, torch.nn.Module]:
        """T5-XXL (9 GiB in bf16, more than the 2B transformer): used once per batch, so
        ``memory.offload_encoders`` keeps it on the CPU between uses."""
        return {"text_encoder": self.components["text_encoder"]}

    def save_pretrained(self, directory: str | Path) -> None:
        """Write the components with the stock pipeline's ``save_pretrained`` (loadable by both)."""
        import diffusers

        getattr(diffusers, self.pipeline_class)(**self.components).save_pretrained(directory)

    # -------------------------------------------------------------- timesteps
    def latent_grid(self) -> tuple[int, int, int]:
        """Latent frames, height and width of the configured size."""
        o = self.options
        return (o.frames - 1) // self.vae_temporal + 1, o.height // self.vae_spatial, o.width // self.vae_spatial

    def timestep_kwargs(self, steps: int) -> dict[str, Any]:
        """The stock pipeline's sigmas ``linspace(1, 1/steps, steps)`` and, under dynamic shifting, ``mu`` from the
        number of latent tokens (``calculate_shift`` with the scheduler's base and max shifts)."""
        import numpy as np
        from diffusers.pipelines.ltx.pipeline_ltx import calculate_shift

        kw: dict[str, Any] = {"sigmas": np.linspace(1.0, 1 / steps, steps)}
        cfg = self.scheduler.config
        if cfg.get("use_dynamic_shifting"):
            f, h, w = self.latent_grid()
            kw["mu"] = calculate_shift(
                f * h * w,
                cfg.get("base_image_seq_len", 256),
                cfg.get("max_image_seq_len", 4096),
                cfg.get("base_shift", 0.5),
                cfg.get("max_shift", 1.15),
            )
        return kw

    # -------------------------------------------------------------- steps
    @property
    def do_cfg(self) -> bool:
        return self.options.guidance > 1.0

    @property
    def transformer_dtype(self) -> torch.dtype:
        return self.components["transformer"].dtype

    def _embed(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        tok = self.components["tokenizer"](
            list(texts),
            padding="max_length",
            max_length=self.options.max_sequence_length,
            truncation=True,
            add_special_tokens=True,
            return_tensors="pt",
        )
        mask = tok.attention_mask.bool().to(self.device)
        emb = self.components["text_encoder"](tok.input_ids.to(self.device))[0]
        return emb.to(self.components["text_encoder"].dtype), mask

    def encode_condition(self, prompts: Sequence[str], images: Sequence[Any] | None = None) -> LTXCondition:
        with torch.no_grad():
            emb, mask = self._embed(prompts)
            cond = LTXCondition(emb, mask)
            if self.do_cfg:
                cond.negative_prompt_embeds, cond.negative_mask = self._embed(
                    [self.options.negative_prompt] * len(prompts)
                )
        return cond

    def latent_shape(self, batch_size: int) -> tuple[int, ...]:
        return (batch_size, self.components["transformer"].config.in_channels, *self.latent_grid())

    def prepare_latents(
        self, batch_size: int, generator: torch.Generator | None, cond: LTXCondition | None = None
    ) -> torch.Tensor:
        from diffusers.utils.torch_utils import randn_tensor

        return randn_tensor(self.latent_shape(batch_size), generator=generator, device=self.device, dtype=torch.float32)

    def _timestep(self, t: torch.Tensor, b: int, f: int, h: int, w: int) -> torch.Tensor:
        """The transformer's ``timestep``: one per video."""
        return t.expand(b)

    def predict(self, latents: torch.Tensor, t: torch.Tensor, cond: LTXCondition, step_index: int) -> torch.Tensor:
        from diffusers import LTXPipeline

        model = self.components["transformer"]
        p, pt = model.config.patch_size, model.config.patch_size_t
        b, _, f, h, w = latents.shape
        x = LTXPipeline._pack_latents(latents, p, pt).to(cond.prompt_embeds.dtype)
        ts = self._timestep(t, b, f, h, w)
        scale = (self.vae_temporal / self.options.frame_rate, self.vae_spatial, self.vae_spatial)

        def call(x: torch.Tensor, emb: torch.Tensor, mask: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
            return model(
                hidden_states=x,
                encoder_hidden_states=emb,
                timestep=ts,
                encoder_attention_mask=mask,
                num_frames=f,
                height=h,
                width=w,
                rope_interpolation_scale=scale,
                return_dict=False,
            )[0]

        if self.do_cfg:
            out = run_guided(
                call,
                torch.cat([x, x]),
                torch.cat([cond.negative_prompt_embeds, cond.prompt_embeds]),
                torch.cat([cond.negative_mask, cond.prompt_mask]),
                torch.cat([ts, ts]),
            ).float()
            uncond, text = out.chunk(2)
            out = uncond + self.options.guidance * (text - uncond)
            if self.options.guidance_rescale > 0:
                from diffusers.pipelines.ltx.pipeline_ltx import rescale_noise_cfg

                out = rescale_noise_cfg(out, text, guidance_rescale=self.options.guidance_rescale)
        else:
            out = call(x, cond.prompt_embeds, cond.prompt_mask, ts).float()
        return LTXPipeline._unpack_latents(out, f, h, w, p, pt)

    # -------------------------------------------------------------- memory
    def decoder_checkpoint_blocks(self) -> list[torch.nn.Module]:
        """The resnets and upsamplers of the VAE decoder's mid and up blocks."""
        dec = self.components["vae"].decoder
        return layers_of(dec.mid_block, *dec.up_blocks)

    # -------------------------------------------------------------- decoding
    def num_latent_frames(self, latents: torch.Tensor) -> int:
        """Pixel frames the latents decode to: the unit of frame subsampling (see the module docstring)."""
        return (int(latents.shape[2]) - 1) * self.vae_temporal + 1

    def decode(
        self,
        latents: torch.Tensor,
        frames: Sequence[int] | None = None,
        chunk_size: int | None = None,
        cond: LTXCondition | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Decode pixel frames ``frames`` (all if ``None``), ``(B, len(frames), 3, H, W)`` in [0, 1].

        Frames decoded with gradient (``vae_temporal_tiling`` null, the default) or any frames (true) come from
        the temporal tiles that hold them; otherwise the whole video is decoded (the decoder is not causal) and
        the frames picked. ``chunk_size`` has no effect (the tiles are the VAE's own
        chunking). ``generator`` draws the decode noise of a timestep-conditioned VAE, after the chain, as the
        stock pipeline does.
        """
        from diffusers import LTXPipeline
        from diffusers.utils.torch_utils import randn_tensor

        vae = self.components["vae"]
        o = self.options
        n = self.num_latent_frames(latents)
        idx = list(range(n)) if frames is None else [int(f) for f in frames]
        if any(f < 0 or f >= n for f in idx):
            raise ConfigError(f"frames {idx} outside the {n} frames of these latents")
        z = LTXPipeline._denormalize_latents(latents, vae.latents_mean, vae.latents_std, vae.config.scaling_factor)
        z = z.to(self.transformer_dtype)
        temb = None
        if vae.config.timestep_conditioning:
            b = z.shape[0]
            noise_scale = o.decode_noise_scale if o.decode_noise_scale is not None else o.decode_timestep
            if noise_scale > 0:  # the last draw of the chain: skipping it at 0 changes nothing
                noise = randn_tensor(z.shape, generator=generator, device=z.device, dtype=z.dtype)
                scale = torch.tensor([noise_scale] * b, device=z.device, dtype=z.dtype)[:, None, None, None, None]
                z = (1 - scale) * z + scale * noise
            temb = torch.tensor([o.decode_timestep] * b, device=z.device, dtype=z.dtype)
        z = z.to(vae.dtype)
        with_grad = torch.is_grad_enabled() and latents.requires_grad
        tiled = vae.use_framewise_decoding or (o.vae_temporal_tiling is None and with_grad)
        if frames is not None and tiled and z.shape[2] > o.vae_tile_frames // self.vae_temporal and not vae.use_slicing:
            video = self._decode_tiles(z, temb, idx)
        else:
            video = vae.decode(z, temb, return_dict=False)[0][:, :, idx]  # (B, 3, f, H, W) in [-1, 1]
        video = (video / 2 + 0.5).clamp(0, 1)  # the stock postprocess_video
        return video.permute(0, 2, 1, 3, 4).float()

    def _decode_tiles(self, z: torch.Tensor, temb: torch.Tensor | None, idx: list[int]) -> torch.Tensor:
        """Pixel frames ``idx`` of ``AutoencoderKLLTXVideo``'s temporally tiled decode of ``z``, running only the tiles
        they come from.

        The tiled decode (diffusers' ``use_framewise_decoding``) decodes latent tiles of ``min + 1`` frames every
        ``stride`` latent frames (``min``, ``stride``: the pixel tile and stride over the temporal compression);
        tile ``i > 0`` drops its last frame, its first ``blend`` frames are blended in place with the previous
        tile's last ones, and the output takes ``stride`` frames of each (``stride + 1`` of the first).
        """
        vae = self.components["vae"]
        tc = self.vae_temporal
        min_lat = vae.tile_sample_min_num_frames // tc
        stride_lat = vae.tile_sample_stride_num_frames // tc
        stride_px = vae.tile_sample_stride_num_frames
        blend = vae.tile_sample_min_num_frames - stride_px
        nz = int(z.shape[2])
        starts = list(range(0, nz, stride_lat))
        lengths = [(min(min_lat + 1, nz - s) - 1) * tc + 1 - (1 if i else 0) for i, s in enumerate(starts)]

        def locate(p: int) -> tuple[int, int]:
            if p <= stride_px:
                return 0, p
            i = (p - 1) // stride_px
            return i, p - 1 - i * stride_px

        need: set[int] = set()

        def depends(i: int, x: int) -> None:
            need.add(i)
            if i > 0:
                ext = min(lengths[i - 1], lengths[i], blend)
                if x < ext:
                    depends(i - 1, lengths[i - 1] - ext + x)

        where = [locate(p) for p in idx]
        for i, x in where:
            depends(i, x)
        tiles: dict[int, torch.Tensor] = {}
        for i in sorted(need):
            s = starts[i]
            tile = z[:, :, s : s + min_lat + 1]
            if vae.use_tiling and (
                tile.shape[-1] > vae.tile_sample_min_width // self.vae_spatial
                or tile.shape[-2] > vae.tile_sample_min_height // self.vae_spatial
            ):
                out = vae.tiled_decode(tile, temb, return_dict=True).sample
            else:
                out = vae.decoder(tile, temb)
            if i > 0:
                out = out[:, :, :-1]
                if i - 1 in tiles:
                    out = vae.blend_t(tiles[i - 1], out, blend)
            tiles[i] = out
        return torch.stack([tiles[i][:, :, x] for i, x in where], dim=2)


class LTXI2VBackbone(LTXBackbone):
    """LTX-Video 0.9.x image-to-video as diffusers' ``LTXImageToVideoPipeline``: the image's latents are latent
    frame 0, held at timestep 0 through the chain."""

    name = "ltx-i2v"
    summary = (
        "LTX-Video 0.9.x image-to-video (Lightricks/LTX-Video; 512x704, 161 frames; image from train.images / --image)."
    )
    conditioning = "text+image"
    pipeline_class: ClassVar[str] = "LTXImageToVideoPipeline"

    def encode_condition(self, prompts: Sequence[str], images: Sequence[Any] | None = None) -> LTXCondition:
        if not images:
            raise ConfigError(
                f"backbone `{self.name}` is image-to-video: pass conditioning images (vader generate "
                "--image PATH; for training set `train.images` to a folder of images)"
            )
        if len(images) != len(prompts):
            raise ConfigError(
                f"backbone `{self.name}` needs one image per prompt, got {len(images)} images for "
                f"{len(prompts)} prompts"
            )
        from vader_core.media import read_image

        images = [read_image(im) if isinstance(im, (str, Path)) else im for im in images]
        cond = super().encode_condition(prompts, None)
        o = self.options
        with torch.no_grad():
            cond.pixels = torch.cat(
                [self.video_processor.preprocess(im, height=o.height, width=o.width) for im in images]
            ).to(self.device, dtype=cond.prompt_embeds.dtype)
        return cond

    def prepare_latents(
        self, batch_size: int, generator: torch.Generator | None, cond: LTXCondition | None = None
    ) -> torch.Tensor:
        """Noise with latent frame 0 replaced by the images' latents, sampled from the VAE encoder's distribution
        with ``generator`` (one image after the other, before the noise, as the stock pipeline draws)."""
        from diffusers import LTXPipeline
        from diffusers.pipelines.ltx.pipeline_ltx_image2video import retrieve_latents
        from diffusers.utils.torch_utils import randn_tensor

        if cond is None or cond.pixels is None:
            return super().prepare_latents(batch_size, generator, cond)
        vae = self.components["vae"]
        shape = self.latent_shape(batch_size)
        with torch.no_grad():
            lat = torch.cat(
                [retrieve_latents(vae.encode(im[None, :, None].to(vae.dtype)), generator) for im in cond.pixels]
            ).to(torch.float32)
        lat = LTXPipeline._normalize_latents(lat, vae.latents_mean, vae.latents_std).to(self.device)
        noise = randn_tensor(shape, generator=generator, device=self.device, dtype=torch.float32)
        mask = torch.zeros(shape[0], 1, *shape[2:], device=self.device, dtype=torch.float32)
        mask[:, :, 0] = 1.0
        return lat.repeat(1, 1, shape[2], 1, 1) * mask + noise * (1 - mask)

    def _timestep(self, t: torch.Tensor, b: int, f: int, h: int, w: int) -> torch.Tensor:
        """One timestep per token: 0 for the tokens of latent frame 0 (the image), ``t`` for the others."""
        from diffusers import LTXPipeline

        model = self.components["transformer"]
        mask = torch.zeros(b, 1, f, h, w, device=t.device, dtype=torch.float32)
        mask[:, :, 0] = 1.0
        mask = LTXPipeline._pack_latents(mask, model.config.patch_size, model.config.patch_size_t).squeeze(-1)
        return t.expand(b).unsqueeze(-1) * (1 - mask)

    def scheduler_step(
        self,
        model_output: torch.Tensor,
        t: torch.Tensor,
        latents: torch.Tensor,
        step_index: int,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """Step latent frames 1 and on; frame 0 (the image) stays."""
        rest = super().scheduler_step(model_output[:, :, 1:], t, latents[:, :, 1:], step_index, generator)
        return torch.cat([latents[:, :, :1], rest], dim=2)

    def step_log_prob(
        self,
        model_output: torch.Tensor,
        t: torch.Tensor,
        latents: torch.Tensor,
        prev_latents: torch.Tensor,
        step_index: int,
    ) -> torch.Tensor:
        """The log-density of the stepped frames (1 and on; frame 0 is the image's, not sampled)."""
        return super().step_log_prob(model_output[:, :, 1:], t, latents[:, :, 1:], prev_latents[:, :, 1:], step_index)
