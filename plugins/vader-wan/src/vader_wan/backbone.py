"""``wan`` and ``wan-i2v``: Wan 2.1 / 2.2 through diffusers as vader backbones.

The components of diffusers' ``WanPipeline`` / ``WanImageToVideoPipeline``: ``WanTransformer3DModel``
(and ``transformer_2``, the low-noise expert of Wan 2.2 A14B), ``AutoencoderKLWan``, the UMT5 text
encoder and its tokenizer, ``CLIPVisionModel`` + ``CLIPImageProcessor`` for Wan 2.1 I2V, and the
checkpoint's scheduler configuration (UniPC with flow shift; flow-match Euler selectable). The steps
reproduce the stock pipelines' arithmetic and draw from the generator in the same order (only the
initial latents), so with the same seed and options ``vader generate`` gives their frames:

* text: ``prompt_clean`` (ftfy, HTML unescape, whitespace), ``max_sequence_length`` tokens, embeddings
  trimmed to each prompt's length and zero padded, cast to the transformer's dtype;
* latents float32 ``(B, C, (F - 1) / 4 + 1, H / s, W / s)``; conditional and unconditional calls are two
  calls, as in the pipeline (``uncond + g * (cond - uncond)``);
* two experts: ``transformer`` for ``t >= boundary_ratio * num_train_timesteps``, ``transformer_2``
  below, each with its guidance (``guidance``, ``guidance_2``);
* Wan 2.2 TI2V 5B (``expand_timesteps`` in ``model_index.json``): one timestep per latent token, the
  first latent frame held at the image's latents (timestep 0) in image-to-video;
* decoding: latents un-normalised with the VAE's ``latents_mean`` / ``latents_std`` and decoded by
  ``AutoencoderKLWan.decode`` (one latent frame after the other through its causal cache).

**Frames and subsampling.** The VAE maps latent frame 0 to pixel frame 0 and latent frame k >= 1 to
pixel frames 4k-3 .. 4k, and it is causal: a pixel frame depends on its latent frame and on every
earlier one (through the convolutions' cached frames), on none after. The unit of frame subsampling is
the pixel frame: :meth:`num_latent_frames` returns the frame count and ``decode(latents, frames)``
decodes only the latent prefix ``0 .. k`` that the last chosen frame needs, one latent frame after the
other through the VAE's own causal cache, and keeps the chosen frames: they equal the same frames of a
full decode (tested). Cost of a decoded frame in latent frame k: the decoder runs on k + 1 latent frames
(the last frame costs a full decode, frame 0 one latent frame). With gradient, by default only the
latent frames that hold a chosen frame keep autograd; the earlier ones decode without it and reach the
chosen ones as constant cached features, so the stored activations are those of one latent frame per
chosen frame (``vae_history_gradient=true`` keeps the whole prefix in the graph: the exact gradient
into earlier latent frames, at the memory of decoding all of them; see the README's estimates).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from vader_core.backbone import BackboneOptions
from vader_core.checkpointing import gradient_only_in_calls, guidance_skipped, layers_of
from vader_core.dit_t2v import DiTT2VBackbone, FlowMatchOptions
from vader_core.errors import ConfigError, MissingWeightsError
from vader_core.hub import missing_weights
from vader_core.lazy import torch

from .tiny import scheduler_config

T2V_1_3B = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
T2V_14B = "Wan-AI/Wan2.1-T2V-14B-Diffusers"
I2V_14B_480P = "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers"
I2V_14B_720P = "Wan-AI/Wan2.1-I2V-14B-720P-Diffusers"
TI2V_5B = "Wan-AI/Wan2.2-TI2V-5B-Diffusers"
T2V_A14B = "Wan-AI/Wan2.2-T2V-A14B-Diffusers"
I2V_A14B = "Wan-AI/Wan2.2-I2V-A14B-Diffusers"


def nearest_frame_counts(frames: int, temporal: int = 4) -> tuple[int, int]:
    """The valid frame counts (``temporal * k + 1``) just below and above ``frames``."""
    below = (frames - 1) // temporal * temporal + 1
    return max(below, 1), below + temporal


def latent_stats(vae: Any, device: Any, dtype: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The VAE's per-channel ``latents_mean`` and ``1 / latents_std``, ``(1, C, 1, 1, 1)``, computed as the stock
    pipelines do (``latents / inv_std + mean`` decodes, ``(latents - mean) * inv_std`` encodes: same rounding)."""
    shape = (1, vae.config.z_dim, 1, 1, 1)
    mean = torch.tensor(vae.config.latents_mean).view(shape).to(device, dtype)
    return mean, 1.0 / torch.tensor(vae.config.latents_std).view(shape).to(device, dtype)


class WanOptions(FlowMatchOptions):
    model: str | None = Field(T2V_1_3B, description=f"Hub id or local diffusers directory (`{T2V_1_3B}`).")
    height: int = Field(480, ge=16, description="Frame height in pixels (a multiple of 16; 32 for TI2V 5B).")
    width: int = Field(832, ge=16, description="Frame width in pixels (a multiple of 16; 32 for TI2V 5B).")
    frames: int = Field(81, ge=1, description="Frames generated: 4k + 1 (the VAE's temporal compression).")
    steps: int = Field(50, ge=1, description="Denoising steps.")
    guidance: float = Field(
        5.0,
        ge=0.0,
        description="Classifier-free guidance; 1 disables it. With two experts: "
        "the high-noise expert's (`transformer`).",
    )
    guidance_2: float | None = Field(
        None, ge=0.0, description="Guidance of the low-noise expert (`transformer_2`, Wan 2.2 A14B); null: `guidance`."
    )
    max_sequence_length: int = Field(512, ge=1, description="Text tokens (UMT5), as the stock pipeline's default.")
    lora_expert: Literal["auto", "high", "low", "both"] = Field(
        "auto",
        description="Two-expert checkpoints (A14B): the expert that receives LoRA, `high` (`transformer`), "
        "`low` (`transformer_2`) or `both` (one LoRA file holding both; `python -m vader_wan.export DIR` splits "
        "it into the two files diffusers' loader reads); `auto`: the one that runs the last denoising step "
        "(`low`), the step vader's default truncation (mode last, K=1) backpropagates through.",
    )

    vae_tiling: bool = Field(
        False,
        description="Decode in overlapping 256x256 spatial tiles (the VAE's `enable_tiling()`; the frames differ "
        "slightly from an untiled decode, where tiles blend). With gradient each tile's decoder call is "
        "recomputed on its own in backward: at 720x1280 decoding a later frame with gradient takes about "
        "15.5 GiB instead of 23.4 (README, estimated).",
    )
    vae_history_gradient: bool = Field(
        False,
        description="Backpropagate a decoded frame's reward into the earlier latent frames it depends on "
        "through the causal VAE's cache (exact gradient, but the decode of every earlier latent frame is stored: "
        "hundreds of GiB at 480x832x81). Off: the earlier latent frames decode without gradient; the frames "
        "are the same either way.",
    )

    @field_validator("frames")
    @classmethod
    def _four_k_plus_one(cls, v: int) -> int:
        if v % 4 != 1:
            lo, hi = nearest_frame_counts(v)
            raise ValueError(f"must be 4k+1 for Wan (the VAE compresses time 4x): use {lo} or {hi}")
        return v


@dataclass
class WanCondition:
    """What ``predict`` needs besides the latents (opaque to the core)."""

    prompt_embeds: Any
    negative_prompt_embeds: Any
    image_embeds: Any = None  # Wan 2.1 I2V: CLIP image features (B, 257, 1280)
    pixels: Any = None  # image-to-video: the preprocessed images (B, 3, H, W) in [-1, 1]
    condition: Any = None  # image-to-video: filled in by prepare_latents
    first_frame_mask: Any = None  # TI2V (expand_timesteps): 0 at the first latent frame


class WanBackbone(DiTT2VBackbone):
    """Wan 2.1 / 2.2 text-to-video with the components of diffusers' ``WanPipeline``."""

    name = "wan"
    summary = (
        "Wan 2.1 / 2.2 text-to-video (Wan-AI/Wan2.1-T2V-1.3B-Diffusers; 480x832, 81 frames, UniPC, flow matching)."
    )
    Options: ClassVar[type[BackboneOptions]] = WanOptions
    conditioning = "text"
    denoiser_names: ClassVar[tuple[str, ...]] = ("transformer", "transformer_2")
    default_lora_targets = ("to_q", "to_k", "to_v", "to_out.0")
    model_option: ClassVar[str] = "backbone.model"
    pipeline_class: ClassVar[str] = "WanPipeline"
    #: VAE 8x times the transformer's 2x2 patch (TI2V 5B's 16x VAE needs 32: checked when it loads).
    size_multiple: ClassVar[int] = 16

    @classmethod
    def export_lora(cls, lora: Path, out: Path) -> dict[str, Path]:
        """The ComfyUI and kohya layouts (original Wan module names): ``out/comfyui``, ``out/kohya``."""
        from .export import export_original

        return export_original(lora, out)

    def __init__(self, options: BackboneOptions | None = None) -> None:
        super().__init__(options)
        self.boundary_ratio: float | None = None
        self.expand_timesteps = False

    def _check_frames(self, temporal: int = 4) -> None:
        f = self.options.frames
        if f % temporal != 1:
            lo, hi = nearest_frame_counts(f, temporal)
            near = f"{lo} or {hi}" if lo != f else f"{hi}"
            raise ConfigError(
                f"`backbone.frames` must be {temporal}k+1 for Wan (the VAE compresses time "
                f"{temporal}x), got {f}: use {near}"
            )

    # -------------------------------------------------------------- loading
    def load(self, device: torch.device | str, dtype: torch.dtype) -> None:
        """Load the pipeline's components from ``options.model`` (hub id or local diffusers directory).

        Honours ``HF_HUB_OFFLINE``; missing weights raise :class:`MissingWeightsError`, one line naming the
        hub id and ``backbone.model``.
        """
        from diffusers import AutoencoderKLWan, DiffusionPipeline, UniPCMultistepScheduler, WanTransformer3DModel
        from transformers import AutoTokenizer, UMT5EncoderModel

        source = self.options.model or T2V_1_3B
        kw: dict[str, Any] = {"revision": self.options.revision} if self.options.revision else {}
        local = Path(source).expanduser()
        if local.exists():
            missing = [s for s in ("vae", "text_encoder", "tokenizer", "scheduler") if not (local / s).is_dir()]
            if missing or not any((local / s).is_dir() for s in ("transformer", "transformer_2")):
                absent = ", ".join(f"{m}/" for m in missing) or "transformer/"
                raise MissingWeightsError(
                    f"{local} is not a diffusers Wan directory (no {absent}); "
                    f"point `{self.model_option}` at the folder written by {self.pipeline_class}.save_pretrained"
                )
            source, kw = str(local), {}
        try:
            index = dict(DiffusionPipeline.load_config(source, **kw))
            comps: dict[str, Any] = {}
            for name in ("transformer", "transformer_2"):
                entry = index.get(name)
                if entry is not None and entry[0] is not None:
                    comps[name] = WanTransformer3DModel.from_pretrained(source, subfolder=name, torch_dtype=dtype, **kw)
            comps["vae"] = AutoencoderKLWan.from_pretrained(source, subfolder="vae", torch_dtype=dtype, **kw)
            comps["text_encoder"] = UMT5EncoderModel.from_pretrained(
                source, subfolder="text_encoder", torch_dtype=dtype, **kw
            )
            comps["tokenizer"] = AutoTokenizer.from_pretrained(source, subfolder="tokenizer", **kw)
            comps.update(self._load_image_components(source, index, dtype, kw))
            sched = dict(UniPCMultistepScheduler.load_config(source, subfolder="scheduler", **kw))
        except (OSError, ValueError) as e:
            raise missing_weights(source, e, option=self.model_option, what="Wan weights") from None
        if "transformer" not in comps:
            raise ConfigError(f"`{source}` has no transformer/: vader trains LoRA on `transformer`")
        comps["scheduler"] = self.make_scheduler(sched)
        self.setup(
            comps,
            device,
            dtype,
            boundary_ratio=index.get("boundary_ratio"),
            expand_timesteps=bool(index.get("expand_timesteps", False)),
        )

    def _load_image_components(
        self, source: str, index: dict[str, Any], dtype: Any, kw: dict[str, Any]
    ) -> dict[str, Any]:
        return {}

    def load_tiny(self, device: torch.device | str, dtype: torch.dtype, seed: int = 0) -> None:
        """Tiny random components of the Wan 2.1 architecture (UniPC, flow shift 3), for tests."""
        from .tiny import tiny_components

        comps = tiny_components(seed)
        comps["scheduler"] = self.make_scheduler(scheduler_config())
        self.setup(comps, device, dtype)

    def setup(
        self,
        components: dict[str, Any],
        device: torch.device | str,
        dtype: torch.dtype,
        boundary_ratio: float | None = None,
        expand_timesteps: bool = False,
    ) -> None:
        """Install components: moved to ``device``, cast to ``dtype``, frozen, eval mode."""
        from diffusers.video_processor import VideoProcessor

        self.install_components(components, device, dtype)
        vae = components["vae"]
        vae.enable_tiling() if self.options.vae_tiling else vae.disable_tiling()
        self.vae_temporal = int(vae.config.scale_factor_temporal)
        self.vae_spatial = int(vae.config.scale_factor_spatial)
        self._check_frames(self.vae_temporal)
        patch = self.components["transformer"].config.patch_size
        multiple = self.vae_spatial * max(patch[1], patch[2])
        o = self.options
        if o.height % multiple or o.width % multiple:
            raise ConfigError(
                f"`backbone.height` and `backbone.width` must be multiples of {multiple} for this "
                f"checkpoint (VAE {self.vae_spatial}x, patch {patch[1]}x{patch[2]}), got "
                f"{o.height}x{o.width}"
            )
        self.boundary_ratio = boundary_ratio if "transformer_2" in components else None
        self.expand_timesteps = expand_timesteps
        self.video_processor = VideoProcessor(vae_scale_factor=self.vae_spatial)
        two = self.boundary_ratio is not None
        self.lora_component = "transformer_2" if two and o.lora_expert in ("auto", "low") else "transformer"
        self._experts = None
        if two and o.lora_expert == "both":
            # One module for the trainer: LoRA keys `transformer.transformer.…` and `transformer.transformer_2.…`.
            self._experts = torch.nn.ModuleDict({n: components[n] for n in ("transformer", "transformer_2")})
        elif o.lora_expert == "both":
            raise ConfigError(
                "`backbone.lora_expert=both` needs a two-expert checkpoint (Wan 2.2 A14B); this one "
                "has one transformer: use auto"
            )

    @property
    def denoiser(self) -> torch.nn.Module:
        """The expert that receives LoRA (``lora_expert``). Its LoRA keys keep the prefix ``transformer``, the one
        diffusers' ``WanLoraLoaderMixin`` reads; the low-noise expert's load with ``load_into_transformer_2=True``."""
        if getattr(self, "_experts", None) is not None:
            return self._experts
        return self.components[getattr(self, "lora_component", "transformer")]

    def condition_encoders(self) -> dict[str, torch.nn.Module]:
        """UMT5-XXL (10.6 GiB in bf16, four fifths of the 1.3B checkpoint) and, for Wan 2.1 I2V, the CLIP
        image tower: used once per batch, so ``memory.offload_encoders`` keeps them on the CPU between uses."""
        return {k: self.components[k] for k in ("text_encoder", "image_encoder") if k in self.components}

    def save_pretrained(self, directory: str | Path) -> None:
        """Write the components with the stock pipeline's ``save_pretrained`` (loadable by both)."""
        import diffusers

        comps = {k: v for k, v in self.components.items()}
        extra = {"boundary_ratio": self.boundary_ratio} if self.boundary_ratio is not None else {}
        if self.expand_timesteps:
            extra["expand_timesteps"] = True
        getattr(diffusers, self.pipeline_class)(**comps, **extra).save_pretrained(directory)

    # -------------------------------------------------------------- steps
    @property
    def do_cfg(self) -> bool:
        return self.options.guidance > 1.0

    @property
    def transformer_dtype(self) -> torch.dtype:
        return self.components["transformer"].dtype

    def _embed(self, texts: Sequence[str]) -> torch.Tensor:
        from diffusers.pipelines.wan.pipeline_wan import prompt_clean

        n = self.options.max_sequence_length
        tok = self.components["tokenizer"](
            [prompt_clean(t) for t in texts],
            padding="max_length",
            max_length=n,
            truncation=True,
            add_special_tokens=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        ids, mask = tok.input_ids.to(self.device), tok.attention_mask.to(self.device)
        lens = mask.gt(0).sum(dim=1).long()
        emb = self.components["text_encoder"](ids, mask).last_hidden_state
        emb = torch.stack(
            [torch.cat([u[:v], u.new_zeros(n - int(v), u.size(1))]) for u, v in zip(emb, lens, strict=True)]
        )
        return emb.to(self.transformer_dtype)

    def encode_condition(self, prompts: Sequence[str], images: Sequence[Any] | None = None) -> WanCondition:
        with torch.no_grad():
            emb = self._embed(prompts)
            neg = self._embed([self.options.negative_prompt] * len(prompts)) if self.do_cfg else None
        return WanCondition(emb, neg)

    def latent_shape(self, batch_size: int) -> tuple[int, ...]:
        o = self.options
        c = self.components["vae"].config.z_dim
        return (
            batch_size,
            c,
            (o.frames - 1) // self.vae_temporal + 1,
            o.height // self.vae_spatial,
            o.width // self.vae_spatial,
        )

    def prepare_latents(
        self, batch_size: int, generator: torch.Generator | None, cond: WanCondition | None = None
    ) -> torch.Tensor:
        from diffusers.utils.torch_utils import randn_tensor

        latents = randn_tensor(
            self.latent_shape(batch_size), generator=generator, device=self.device, dtype=torch.float32
        )
        if cond is not None and cond.pixels is not None:
            self._complete_image_condition(cond, latents)
        if self.expand_timesteps:
            mask = torch.ones(1, 1, *latents.shape[2:], dtype=torch.float32, device=self.device)
            if cond is not None and cond.condition is not None:
                mask[:, :, 0] = 0
            if cond is not None:
                cond.first_frame_mask = mask
        return latents

    def _complete_image_condition(self, cond: WanCondition, latents: torch.Tensor) -> None:
        raise ConfigError(f"backbone `{self.name}` is text-to-video; use `wan-i2v` for image-to-video")

    def expert(self, t: torch.Tensor) -> tuple[torch.nn.Module, float]:
        """The transformer and guidance for timestep ``t`` (two experts switch at the boundary)."""
        o = self.options
        if self.boundary_ratio is None or t >= self.boundary_ratio * self.scheduler.config.num_train_timesteps:
            return self.components["transformer"], o.guidance
        return self.components["transformer_2"], o.guidance_2 if o.guidance_2 is not None else o.guidance

    def model_input(self, latents: torch.Tensor, t: torch.Tensor, cond: WanCondition) -> tuple[Any, Any]:
        """The transformer's ``hidden_states`` and ``timestep`` for ``latents`` at ``t``, as the pipelines build them."""
        b = latents.shape[0]
        if self.expand_timesteps:
            mask = cond.first_frame_mask
            x = latents if cond.condition is None else (1 - mask) * cond.condition + mask * latents
            ts = (mask[0][0][:, ::2, ::2] * t).flatten()
            return x.to(self.transformer_dtype), ts.unsqueeze(0).expand(b, -1)
        if cond.condition is not None:
            return torch.cat([latents, cond.condition], dim=1).to(self.transformer_dtype), t.expand(b)
        return latents.to(self.transformer_dtype), t.expand(b)

    def predict(self, latents: torch.Tensor, t: torch.Tensor, cond: WanCondition, step_index: int) -> torch.Tensor:
        model, guidance = self.expert(t)
        x, timestep = self.model_input(latents, t, cond)
        kw = {"encoder_hidden_states_image": cond.image_embeds} if cond.image_embeds is not None else {}
        out = model(
            hidden_states=x, timestep=timestep, encoder_hidden_states=cond.prompt_embeds, return_dict=False, **kw
        )[0]
        # The core may ask a call before the first kept step to skip the unconditional half
        # (`sampling.guidance_interval`): the conditional prediction then stands for the guided one.
        if self.do_cfg and not guidance_skipped():
            uncond = model(
                hidden_states=x,
                timestep=timestep,
                encoder_hidden_states=cond.negative_prompt_embeds,
                return_dict=False,
                **kw,
            )[0]
            out = uncond + guidance * (out - uncond)
        return out

    def decoder_checkpoint_blocks(self) -> list[torch.nn.Module]:
        """The residual blocks, attention and upsamplers of the VAE decoder's mid and up blocks, recomputed one
        by one in backward. They update the decoder's causal cache in place; the core's checkpoint replays
        each from the cache as it was at the call (``vader_core.checkpointing``), so the gradient is exact.
        With ``vae_tiling`` (frames larger than a tile) the decoder itself."""
        vae, o = self.components["vae"], self.options
        if vae.use_tiling and (o.height > vae.tile_sample_min_height or o.width > vae.tile_sample_min_width):
            # Tiled: each tile's decoder call (one latent frame of one tile) is the unit, so that one tile's
            # activations at a time are recomputed instead of every tile's block inputs being kept.
            return [vae.decoder]
        dec = vae.decoder
        blocks = layers_of(dec.mid_block, *dec.up_blocks)
        # Wan 2.2's residual up blocks hold their upsampler outside a ModuleList.
        blocks += [u for up in dec.up_blocks if (u := getattr(up, "upsampler", None)) is not None]
        return blocks

    # -------------------------------------------------------------- decoding
    def num_latent_frames(self, latents: torch.Tensor) -> int:
        """Pixel frames the latents decode to: the unit of frame subsampling (see the module docstring)."""
        return (int(latents.shape[2]) - 1) * self.vae_temporal + 1

    def latent_frame_of(self, frame: int) -> int:
        """The latent frame that pixel frame ``frame`` is decoded from."""
        return 0 if frame == 0 else (frame - 1) // self.vae_temporal + 1

    def decode(
        self,
        latents: torch.Tensor,
        frames: Sequence[int] | None = None,
        chunk_size: int | None = None,
        cond: WanCondition | None = None,
    ) -> torch.Tensor:
        """Decode pixel frames ``frames`` (all if ``None``): the latent prefix they need, then those frames.

        ``chunk_size`` has no effect: the Wan VAE always decodes one latent frame at a time through its
        causal cache (that is its chunking), so memory does not grow with a chunk.
        """
        vae = self.components["vae"]
        n = self.num_latent_frames(latents)
        idx = list(range(n)) if frames is None else [int(f) for f in frames]
        if any(f < 0 or f >= n for f in idx):
            raise ConfigError(f"frames {idx} outside the {n} frames of these latents")
        z = latents[:, :, : self.latent_frame_of(max(idx)) + 1].to(vae.dtype)
        mean, inv_std = latent_stats(vae, z.device, z.dtype)
        z = z / inv_std + mean
        if torch.is_grad_enabled() and z.requires_grad and not self.options.vae_history_gradient:
            video = self._decode_cut_history(z, {self.latent_frame_of(f) for f in idx})
        else:
            video = vae.decode(z, return_dict=False)[0]  # (B, 3, f, H, W) in [-1, 1]
        video = (video / 2 + 0.5).clamp(0, 1)  # the stock postprocess_video
        return video.permute(0, 2, 1, 3, 4)[:, idx].float()

    def _decode_cut_history(self, z: torch.Tensor, keep: set[int]) -> torch.Tensor:
        """``AutoencoderKLWan.decode`` of ``z`` with autograd only for the latent frames in ``keep``: the VAE calls
        its decoder once per latent frame, in order (tiled, for each tile in turn), and the other calls run
        without gradient, so their cached features enter the kept frames as constants (the same values)."""
        vae = self.components["vae"]
        with gradient_only_in_calls(vae.decoder, keep, z.shape[2]):
            return vae.decode(z, return_dict=False)[0]


class WanI2VBackbone(WanBackbone):
    """Wan image-to-video (Wan 2.1 I2V 14B, Wan 2.2 I2V A14B, TI2V 5B with an image) as ``WanImageToVideoPipeline``."""

    name = "wan-i2v"
    summary = (
        "Wan 2.1 / 2.2 image-to-video (Wan-AI/Wan2.1-I2V-14B-480P-Diffusers; 480x832, 81 frames; "
        "image from train.images / --image)."
    )
    conditioning = "text+image"
    pipeline_class: ClassVar[str] = "WanImageToVideoPipeline"

    def _load_image_components(
        self, source: str, index: dict[str, Any], dtype: Any, kw: dict[str, Any]
    ) -> dict[str, Any]:
        entry = index.get("image_encoder")
        if entry is None or entry[0] is None:
            return {}  # Wan 2.2 (A14B, TI2V 5B): the image enters only through the VAE latents
        from transformers import CLIPImageProcessor, CLIPVisionModel

        encoder = CLIPVisionModel.from_pretrained(source, subfolder="image_encoder", torch_dtype=dtype, **kw)
        return {
            "image_encoder": encoder,
            "image_processor": CLIPImageProcessor.from_pretrained(source, subfolder="image_processor", **kw),
        }

    def load_tiny(self, device: torch.device | str, dtype: torch.dtype, seed: int = 0) -> None:
        """Tiny random Wan 2.1 I2V components (CLIP image features + 36-channel transformer input), for tests."""
        from .tiny import tiny_i2v_components

        comps = tiny_i2v_components(seed)
        comps["scheduler"] = self.make_scheduler(scheduler_config())
        self.setup(comps, device, dtype)

    def encode_condition(self, prompts: Sequence[str], images: Sequence[Any] | None = None) -> WanCondition:
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
            enc = self.components.get("image_encoder")
            if enc is not None and self.components["transformer"].config.image_dim is not None:
                # The stock pipeline encodes one image per call; here one per video.
                feats = []
                for im in images:
                    x = self.components["image_processor"](images=im, return_tensors="pt").to(self.device)
                    out = enc(pixel_values=x.pixel_values.to(enc.dtype), output_hidden_states=True)
                    feats.append(out.hidden_states[-2])
                cond.image_embeds = torch.cat(feats).to(self.transformer_dtype)
            cond.pixels = torch.cat(
                [self.video_processor.preprocess(im, height=o.height, width=o.width) for im in images]
            ).to(self.device, dtype=torch.float32)
        return cond

    def _complete_image_condition(self, cond: WanCondition, latents: torch.Tensor) -> None:
        from diffusers.pipelines.wan.pipeline_wan_i2v import retrieve_latents

        vae = self.components["vae"]
        b, _, lat_f, h, w = latents.shape
        image = cond.pixels.unsqueeze(2)
        frames = self.options.frames
        if self.expand_timesteps:
            video = image
        else:
            video = torch.cat([image, image.new_zeros(image.shape[0], image.shape[1], frames - 1, *image.shape[3:])], 2)
        mean, inv_std = latent_stats(vae, latents.device, latents.dtype)
        with torch.no_grad():
            lat = torch.cat([retrieve_latents(vae.encode(v[None].to(vae.dtype)), sample_mode="argmax") for v in video])
        lat = (lat.to(latents.device, latents.dtype) - mean) * inv_std
        if self.expand_timesteps:
            cond.condition = lat
            return
        mask = torch.ones(b, 1, frames, h, w)
        mask[:, :, list(range(1, frames))] = 0
        first = torch.repeat_interleave(mask[:, :, 0:1], dim=2, repeats=self.vae_temporal)
        mask = torch.concat([first, mask[:, :, 1:]], dim=2)
        mask = mask.view(b, -1, self.vae_temporal, h, w).transpose(1, 2).to(lat.device)
        cond.condition = torch.concat([mask, lat], dim=1)

    def decode(
        self,
        latents: torch.Tensor,
        frames: Sequence[int] | None = None,
        chunk_size: int | None = None,
        cond: WanCondition | None = None,
    ) -> torch.Tensor:
        # TI2V (expand_timesteps): the decoded first latent frame is the image's, as the stock pipeline sets it
        # before decoding; the condition the chain ran with says which.
        if self.expand_timesteps and cond is not None and cond.condition is not None:
            mask = cond.first_frame_mask
            latents = (1 - mask) * cond.condition + mask * latents
        return super().decode(latents, frames, chunk_size, cond)
