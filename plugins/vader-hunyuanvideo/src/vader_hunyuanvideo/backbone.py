"""``hunyuanvideo15`` and ``hunyuanvideo15-i2v``: HunyuanVideo 1.5 through diffusers as vader backbones.

The components of diffusers' ``HunyuanVideo15Pipeline`` / ``HunyuanVideo15ImageToVideoPipeline``:
``HunyuanVideo15Transformer3DModel`` (8.3B), ``AutoencoderKLHunyuanVideo15`` (16x spatial, 4x temporal,
causal), the Qwen2.5-VL-7B text model (``Qwen2_5_VLTextModel``) with its chat template, the byT5 glyph
encoder (``T5EncoderModel`` + ``ByT5Tokenizer``) for quoted text, SigLIP (``SiglipVisionModel``) for
image-to-video, and the checkpoint's own ``FlowMatchEulerDiscreteScheduler`` and
``ClassifierFreeGuidance`` guider. The steps reproduce the stock pipelines' arithmetic and draw from the
generator in the same order (only the initial latents), so with the same seed and options ``vader
generate`` gives their frames:

* text: the stock pipeline's own encoders (``HunyuanVideo15Pipeline._get_mllm_prompt_embeds``: the
  system-prompt chat template, 1000 + 108 tokens, the third-last hidden state, the first 108 template
  tokens cropped; ``_get_byt5_prompt_embeds``: the quoted text of the prompt through byT5, 256 tokens, zeros
  when the prompt quotes nothing), cast with their masks to the transformer's dtype;
* sigmas ``linspace(1, 0, steps + 1)[:-1]`` shifted by the checkpoint's ``shift`` (the pipeline passes them
  to the scheduler; the scheduler's own spacing differs);
* the transformer input is ``[latents, condition latents, mask]`` on the channel axis (zeros for
  text-to-video; the image's latents at latent frame 0 and a mask of ones there for image-to-video),
  with SigLIP image tokens (zeros of 729 tokens for text-to-video);
* guidance: the checkpoint's ``ClassifierFreeGuidance`` (``guider/``) combines the conditional and the
  unconditional call, ``uncond + g (cond - uncond)``, for every ``g`` other than 1, also below 1, as the
  stock guider does; ``backbone.guidance`` overrides its scale;
* image-to-video with a step-distilled (MeanFlow) transformer passes the next timestep as ``timestep_r``;
* decoding: ``latents / scaling_factor`` through ``AutoencoderKLHunyuanVideo15.decode``.

**Frames and subsampling.** The VAE maps latent frame 0 to pixel frame 0 and latent frame k >= 1 to pixel
frames 4k-3 .. 4k, and it is causal (causal 3D convolutions, frame-causal attention in its mid block): a
pixel frame depends on its latent frame and every earlier one, on none after. The unit of frame subsampling
is the pixel frame: :meth:`num_latent_frames` returns the frame count and ``decode(latents, frames)`` decodes
the latent prefix ``0 .. k`` that the last chosen frame needs (in the graph, with the decoder's blocks
recomputed in backward at ``memory.gradient_checkpointing=block``) and keeps the chosen frames: they equal
the same frames of a full decode (tested).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from vader_core.backbone import BackboneOptions
from vader_core.checkpointing import checkpoint
from vader_core.dit_t2v import DiTT2VBackbone, FlowMatchOptions
from vader_core.errors import ConfigError, MissingWeightsError
from vader_core.hub import missing_weights
from vader_core.lazy import torch

T2V_480P = "hunyuanvideo-community/HunyuanVideo-1.5-480p_t2v"
I2V_480P = "hunyuanvideo-community/HunyuanVideo-1.5-480p_i2v"
T2V_720P = "hunyuanvideo-community/HunyuanVideo-1.5-720p_t2v"
I2V_720P = "hunyuanvideo-community/HunyuanVideo-1.5-720p_i2v"

#: The stock pipelines' text constants (``HunyuanVideo15Pipeline.__init__``): Qwen tokens after the
#: template, template tokens cropped, byT5 tokens, SigLIP tokens of text-to-video's zero image.
TEXT_TOKENS = 1000
TEMPLATE_TOKENS = 108
GLYPH_TOKENS = 256
IMAGE_TOKENS = 729


def nearest_frame_counts(frames: int, temporal: int = 4) -> tuple[int, int]:
    """The valid frame counts (``temporal * k + 1``) just below and above ``frames``."""
    below = (frames - 1) // temporal * temporal + 1
    return max(below, 1), below + temporal


def guidance_enabled(guider: Any) -> bool:
    """Whether ``ClassifierFreeGuidance`` runs the unconditional branch at all (its own rule: enabled, and a
    scale other than the one that makes it the conditional prediction: 1, or 0 in the original formulation)."""
    neutral = 0.0 if guider.use_original_formulation else 1.0
    return bool(guider.config.enabled) and not math.isclose(guider.guidance_scale, neutral)


class HunyuanVideoOptions(FlowMatchOptions):
    model: str | None = Field(T2V_480P, description=f"Hub id or local diffusers directory (`{T2V_480P}`).")
    scheduler: Literal["auto", "euler"] = Field(  # type: ignore[assignment]
        "auto",
        description="Sampler: `auto` (the checkpoint's: flow-match Euler, all HunyuanVideo 1.5 checkpoints) or `euler`.",
    )
    height: int | None = Field(
        480,
        ge=16,
        description="Frame height in pixels (a multiple of 16); 480x848 is the stock 480p default (16:9).",
    )
    width: int | None = Field(848, ge=16, description="Frame width in pixels (a multiple of 16).")
    frames: int = Field(121, ge=1, description="Frames generated: 4k + 1 (the VAE's temporal compression).")
    steps: int = Field(50, ge=1, description="Denoising steps.")
    guidance: float | None = Field(
        None,
        ge=0.0,
        description="Classifier-free guidance scale; null: the checkpoint's guider (6.0; 1.0 for the distilled "
        "checkpoints, which turns guidance off).",
    )

    @field_validator("frames")
    @classmethod
    def _four_k_plus_one(cls, v: int) -> int:
        if v % 4 != 1:
            lo, hi = nearest_frame_counts(v)
            raise ValueError(f"must be 4k+1 for HunyuanVideo 1.5 (the VAE compresses time 4x): use {lo} or {hi}")
        return v


class HunyuanVideoI2VOptions(HunyuanVideoOptions):
    model: str | None = Field(I2V_480P, description=f"Hub id or local diffusers directory (`{I2V_480P}`).")
    height: int | None = Field(
        None,
        ge=16,
        description="Frame height; null (with width): the stock pipeline's size, the bucket of the checkpoint's "
        "target size (640 at 480p) nearest to the image's aspect ratio, the image cropped to it.",
    )
    width: int | None = Field(None, ge=16, description="Frame width; null: from the image, as `height`.")


@dataclass
class HunyuanCondition:
    """What ``predict`` needs besides the latents (opaque to the core)."""

    prompt_embeds: Any
    prompt_mask: Any
    glyph_embeds: Any
    glyph_mask: Any
    negative: tuple[Any, Any, Any, Any] | None  # the same four for the negative prompt, when guidance runs
    image_embeds: Any  # SigLIP tokens (B, N, D); zeros of 729 tokens for text-to-video
    size: tuple[int, int]  # (height, width) of the videos
    image_latents: Any = None  # image-to-video: the image's latents (B, C, 1, h, w), scaled


class HunyuanVideoBackbone(DiTT2VBackbone):
    """HunyuanVideo 1.5 text-to-video with the components of diffusers' ``HunyuanVideo15Pipeline``."""

    name = "hunyuanvideo15"
    summary = (
        "HunyuanVideo 1.5 text-to-video (hunyuanvideo-community/HunyuanVideo-1.5-480p_t2v; 480x848, 121 frames, "
        "flow-match Euler, shift 5, guidance 6)."
    )
    Options: ClassVar[type[BackboneOptions]] = HunyuanVideoOptions
    conditioning = "text"
    default_lora_targets = ("to_q", "to_k", "to_v", "to_out.0")
    model_option: ClassVar[str] = "backbone.model"
    pipeline_class: ClassVar[str] = "HunyuanVideo15Pipeline"
    size_multiple: ClassVar[int] = 16
    #: Components of the pipeline directory besides the transformer.
    required: ClassVar[tuple[str, ...]] = (
        "transformer",
        "vae",
        "text_encoder",
        "tokenizer",
        "text_encoder_2",
        "tokenizer_2",
        "scheduler",
    )

    # -------------------------------------------------------------- loading
    def load(self, device: torch.device | str, dtype: torch.dtype) -> None:
        """Load the pipeline's components from ``options.model`` (hub id or local diffusers directory).

        Honours ``HF_HUB_OFFLINE``; missing weights raise :class:`MissingWeightsError`, one line naming the
        hub id and ``backbone.model``.
        """
        from diffusers import (
            AutoencoderKLHunyuanVideo15,
            ClassifierFreeGuidance,
            FlowMatchEulerDiscreteScheduler,
            HunyuanVideo15Transformer3DModel,
        )
        from transformers import AutoTokenizer, ByT5Tokenizer, Qwen2_5_VLTextModel, T5EncoderModel

        source = self.options.model or self.Options().model or T2V_480P
        kw: dict[str, Any] = {"revision": self.options.revision} if self.options.revision else {}
        local = Path(source).expanduser()
        if local.exists():
            missing = [s for s in self.required if not (local / s).is_dir()]
            if missing:
                raise MissingWeightsError(
                    f"{local} is not a diffusers HunyuanVideo 1.5 directory (no {', '.join(m + '/' for m in missing)}); "
                    f"point `{self.model_option}` at the folder written by {self.pipeline_class}.save_pretrained"
                )
            source, kw = str(local), {}
        try:
            comps: dict[str, Any] = {
                "transformer": HunyuanVideo15Transformer3DModel.from_pretrained(
                    source, subfolder="transformer", torch_dtype=dtype, **kw
                ),
                "vae": AutoencoderKLHunyuanVideo15.from_pretrained(source, subfolder="vae", torch_dtype=dtype, **kw),
                "text_encoder": Qwen2_5_VLTextModel.from_pretrained(
                    source, subfolder="text_encoder", torch_dtype=dtype, **kw
                ),
                "tokenizer": AutoTokenizer.from_pretrained(source, subfolder="tokenizer", **kw),
                "text_encoder_2": T5EncoderModel.from_pretrained(
                    source, subfolder="text_encoder_2", torch_dtype=dtype, **kw
                ),
                "tokenizer_2": ByT5Tokenizer.from_pretrained(source, subfolder="tokenizer_2", **kw),
            }
            comps.update(self._load_image_components(source, dtype, kw))
            sched = dict(FlowMatchEulerDiscreteScheduler.load_config(source, subfolder="scheduler", **kw))
            try:
                guider = dict(ClassifierFreeGuidance.load_config(source, subfolder="guider", **kw))
            except OSError:  # a directory without guider/: the pipeline's default guider
                guider = {}
        except (OSError, ValueError) as e:
            raise missing_weights(source, e, option=self.model_option, what="HunyuanVideo 1.5 weights") from None
        comps["scheduler"] = self.make_scheduler(sched)
        comps["guider"] = ClassifierFreeGuidance.from_config(guider)
        self.setup(comps, device, dtype)

    def _load_image_components(self, source: str, dtype: Any, kw: dict[str, Any]) -> dict[str, Any]:
        return {}

    def load_tiny(self, device: torch.device | str, dtype: torch.dtype, seed: int = 0) -> None:
        """Tiny random components of the HunyuanVideo 1.5 architecture (Euler, shift 5, guidance 6), for tests."""
        from .tiny import tiny_components

        comps = tiny_components(seed)
        comps["scheduler"] = self.make_scheduler(saved_config(comps["scheduler"]))
        self.setup(comps, device, dtype)

    def setup(self, components: dict[str, Any], device: torch.device | str, dtype: torch.dtype) -> None:
        """Install components: moved to ``device``, cast to ``dtype``, frozen, eval mode; the guider gets
        ``options.guidance``."""
        from diffusers import ClassifierFreeGuidance
        from diffusers.pipelines.hunyuan_video1_5.image_processor import HunyuanVideo15ImageProcessor

        guider = components.get("guider") or ClassifierFreeGuidance()
        if self.options.guidance is not None:
            guider = ClassifierFreeGuidance.from_config(guider.config, guidance_scale=self.options.guidance)
        components["guider"] = guider
        self.install_components(components, device, dtype)
        vae = components["vae"]
        self.vae_temporal = int(vae.config.temporal_compression_ratio)
        self.vae_spatial = int(vae.config.spatial_compression_ratio)
        self._check_frames()
        cfg = components["transformer"].config
        self.size_step = self.vae_spatial * int(cfg.patch_size)
        self.target_size = int(cfg.target_size)
        self.use_meanflow = bool(cfg.use_meanflow)
        o = self.options
        if o.height is not None and o.width is not None and (o.height % self.size_step or o.width % self.size_step):
            raise ConfigError(
                f"`backbone.height` and `backbone.width` must be multiples of {self.size_step} for this "
                f"checkpoint (VAE {self.vae_spatial}x, patch {cfg.patch_size}), got {o.height}x{o.width}"
            )
        self.video_processor = HunyuanVideo15ImageProcessor(vae_scale_factor=self.vae_spatial)
        # The image-to-video pipeline's processor: the image is cropped to the size first, then not resized.
        self.image_processor = HunyuanVideo15ImageProcessor(
            vae_scale_factor=self.vae_spatial, do_resize=False, do_convert_rgb=True
        )

    def _check_frames(self) -> None:
        f, temporal = self.options.frames, self.vae_temporal
        if f % temporal != 1:
            lo, hi = nearest_frame_counts(f, temporal)
            raise ConfigError(f"`backbone.frames` must be {temporal}k+1 for this VAE, got {f}: use {lo} or {hi}")

    def condition_encoders(self) -> dict[str, torch.nn.Module]:
        """The Qwen2.5-VL text model (7.6B, 15 GiB in bf16), byT5 and SigLIP: used once per batch, so
        ``memory.offload_encoders`` keeps them on the CPU between uses."""
        return {
            k: self.components[k] for k in ("text_encoder", "text_encoder_2", "image_encoder") if k in self.components
        }

    def save_pretrained(self, directory: str | Path) -> None:
        """Write the components with the stock pipeline's ``save_pretrained`` (loadable by both)."""
        import diffusers

        getattr(diffusers, self.pipeline_class)(**self.components).save_pretrained(directory)

    @property
    def guider(self) -> Any:
        """The checkpoint's ``ClassifierFreeGuidance`` (its scale replaced by ``options.guidance``)."""
        return self.components["guider"]

    # -------------------------------------------------------------- steps
    @property
    def transformer_dtype(self) -> torch.dtype:
        return self.components["transformer"].dtype

    def _encode_text(self, prompts: list[str]) -> tuple[Any, Any, Any, Any]:
        from diffusers import HunyuanVideo15Pipeline

        c, dtype = self.components, self.transformer_dtype
        emb, mask = HunyuanVideo15Pipeline._get_mllm_prompt_embeds(
            c["text_encoder"],
            c["tokenizer"],
            prompts,
            self.device,
            tokenizer_max_length=TEXT_TOKENS,
            crop_start=TEMPLATE_TOKENS,
        )
        glyph, glyph_mask = HunyuanVideo15Pipeline._get_byt5_prompt_embeds(
            c["tokenizer_2"], c["text_encoder_2"], prompts, self.device, tokenizer_max_length=GLYPH_TOKENS
        )
        return tuple(x.to(self.device, dtype) for x in (emb, mask, glyph, glyph_mask))  # type: ignore[return-value]

    def text_condition(self, prompts: Sequence[str], size: tuple[int, int]) -> HunyuanCondition:
        """The prompts' (and, when guidance runs, the negative prompt's) embeddings, no image (zero tokens)."""
        prompts = list(prompts)
        with torch.no_grad():
            emb, mask, glyph, glyph_mask = self._encode_text(prompts)
            negative = [self.options.negative_prompt] * len(prompts)
            neg = self._encode_text(negative) if guidance_enabled(self.guider) else None
        dim = self.components["transformer"].config.image_embed_dim
        zeros = torch.zeros(len(prompts), IMAGE_TOKENS, dim, device=self.device, dtype=self.transformer_dtype)
        return HunyuanCondition(emb, mask, glyph, glyph_mask, neg, zeros, size)

    def encode_condition(self, prompts: Sequence[str], images: Sequence[Any] | None = None) -> HunyuanCondition:
        o = self.options
        if o.height is None or o.width is None:
            raise ConfigError(f"backbone `{self.name}` needs `backbone.height` and `backbone.width`")
        return self.text_condition(prompts, (o.height, o.width))

    def timestep_kwargs(self, steps: int) -> dict[str, Any]:
        """The stock pipelines' chain: sigmas ``linspace(1, 0, steps + 1)[:-1]``, which the scheduler shifts (its
        own spacing, without them, differs)."""
        import numpy as np

        return {"sigmas": np.linspace(1.0, 0.0, steps + 1)[:-1].tolist()}

    def latent_shape(self, batch_size: int, size: tuple[int, int] | None = None) -> tuple[int, ...]:
        o = self.options
        h, w = size or (o.height, o.width)
        if h is None or w is None:
            raise ConfigError(f"backbone `{self.name}` needs `backbone.height` and `backbone.width` (or an image)")
        c = self.components["vae"].config.latent_channels
        return (batch_size, c, (o.frames - 1) // self.vae_temporal + 1, h // self.vae_spatial, w // self.vae_spatial)

    def prepare_latents(
        self, batch_size: int, generator: torch.Generator | None, cond: HunyuanCondition | None = None
    ) -> torch.Tensor:
        from diffusers.utils.torch_utils import randn_tensor

        shape = self.latent_shape(batch_size, cond.size if cond is not None else None)
        return randn_tensor(shape, generator=generator, device=self.device, dtype=torch.float32)

    def model_input(self, latents: torch.Tensor, cond: HunyuanCondition) -> torch.Tensor:
        """``[latents, condition latents, mask]`` on the channel axis, as the pipelines build it."""
        b, _, f, h, w = latents.shape
        image = torch.zeros_like(latents)
        mask = latents.new_zeros(b, 1, f, h, w)
        if cond.image_latents is not None:
            image[:, :, :1] = cond.image_latents.to(latents.dtype)
            mask[:, :, 0] = 1.0
        return torch.cat([latents, image, mask], dim=1).to(self.transformer_dtype)

    def predict(self, latents: torch.Tensor, t: torch.Tensor, cond: HunyuanCondition, step_index: int) -> torch.Tensor:
        model = self.components["transformer"]
        x = self.model_input(latents, cond)
        timestep = t.expand(x.shape[0]).to(x.dtype)
        kw: dict[str, Any] = {}
        timesteps = self.scheduler.timesteps
        if self.use_meanflow and cond.image_latents is not None:  # the image-to-video pipeline's MeanFlow step
            nxt = timesteps[step_index + 1] if step_index + 1 < len(timesteps) else torch.zeros(())
            kw["timestep_r"] = torch.as_tensor(nxt, device=x.device).expand(x.shape[0]).to(latents.dtype)

        def call(emb: Any, mask: Any, glyph: Any, glyph_mask: Any) -> torch.Tensor:
            return model(
                hidden_states=x,
                image_embeds=cond.image_embeds,
                timestep=timestep,
                encoder_hidden_states=emb,
                encoder_attention_mask=mask,
                encoder_hidden_states_2=glyph,
                encoder_attention_mask_2=glyph_mask,
                return_dict=False,
                **kw,
            )[0]

        if torch.is_grad_enabled() and model.gradient_checkpointing:
            # Block-level checkpointing (the transformer's own switch is on): each guidance call is its own
            # checkpoint too, so backward recomputes one call at a time and holds the block inputs of one call
            # (54 blocks x 51k tokens x 2048 in bf16: 11 GiB at 480p), not of both.
            plain = call

            def call(*a: Any) -> torch.Tensor:
                return checkpoint(plain, *a)

        guider = self.guider
        guider.set_state(step=step_index, num_inference_steps=len(timesteps), timestep=t)
        out = call(cond.prompt_embeds, cond.prompt_mask, cond.glyph_embeds, cond.glyph_mask)
        uncond = call(*cond.negative) if guider.num_conditions > 1 and cond.negative is not None else None
        return guider.forward(out, uncond).pred

    # -------------------------------------------------------------- memory
    def checkpoint_blocks(self) -> list[torch.nn.Module]:
        """The blocks diffusers' switch checkpoints: ``transformer_blocks`` (the model's ``_repeated_blocks`` also
        name its patch embedding and text token refiner, which the switch leaves alone)."""
        return list(self.components["transformer"].transformer_blocks)

    def decoder_checkpoint_blocks(self) -> list[torch.nn.Module]:
        from vader_core.checkpointing import layers_of

        dec = self.components["vae"].decoder
        return layers_of(dec.mid_block, *dec.up_blocks)

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
        cond: HunyuanCondition | None = None,
    ) -> torch.Tensor:
        """Decode pixel frames ``frames`` (all if ``None``): the latent prefix they need, then those frames.
        ``chunk_size`` has no effect (the VAE decodes the prefix in one call; its own spatial tiling is
        ``vae.enable_tiling()``)."""
        vae = self.components["vae"]
        n = self.num_latent_frames(latents)
        idx = list(range(n)) if frames is None else [int(f) for f in frames]
        if any(f < 0 or f >= n for f in idx):
            raise ConfigError(f"frames {idx} outside the {n} frames of these latents")
        z = latents[:, :, : self.latent_frame_of(max(idx)) + 1].to(vae.dtype) / vae.config.scaling_factor
        # One video at a time (what the VAE's own `use_slicing` does): the frame-causal attention mask of its mid
        # block, (B, L, L), does not broadcast against the heads axis for B > 1 (diffusers 0.42).
        video = torch.cat([vae.decode(zi, return_dict=False)[0] for zi in z.split(1)])  # (B, 3, f, H, W), [-1, 1]
        video = (video / 2 + 0.5).clamp(0, 1)  # the stock postprocess_video
        return video.permute(0, 2, 1, 3, 4)[:, idx].float()


class HunyuanVideoI2VBackbone(HunyuanVideoBackbone):
    """HunyuanVideo 1.5 image-to-video as ``HunyuanVideo15ImageToVideoPipeline``."""

    name = "hunyuanvideo15-i2v"
    summary = (
        "HunyuanVideo 1.5 image-to-video (hunyuanvideo-community/HunyuanVideo-1.5-480p_i2v; size from the image, "
        "121 frames; image from train.images / --image)."
    )
    Options: ClassVar[type[BackboneOptions]] = HunyuanVideoI2VOptions
    conditioning = "text+image"
    pipeline_class: ClassVar[str] = "HunyuanVideo15ImageToVideoPipeline"
    required: ClassVar[tuple[str, ...]] = (*HunyuanVideoBackbone.required, "image_encoder", "feature_extractor")

    def _load_image_components(self, source: str, dtype: Any, kw: dict[str, Any]) -> dict[str, Any]:
        from transformers import SiglipImageProcessor, SiglipVisionModel

        return {
            "image_encoder": SiglipVisionModel.from_pretrained(
                source, subfolder="image_encoder", torch_dtype=dtype, **kw
            ),
            "feature_extractor": SiglipImageProcessor.from_pretrained(source, subfolder="feature_extractor", **kw),
        }

    def load_tiny(self, device: torch.device | str, dtype: torch.dtype, seed: int = 0) -> None:
        """Tiny random image-to-video components (SigLIP image tokens, image latents at latent frame 0)."""
        from .tiny import tiny_i2v_components

        comps = tiny_i2v_components(seed)
        comps["scheduler"] = self.make_scheduler(saved_config(comps["scheduler"]))
        self.setup(comps, device, dtype)

    def video_size(self, image: Any) -> tuple[int, int]:
        """``(height, width)``: the options', or the stock pipeline's bucket for the image's aspect ratio."""
        o = self.options
        if o.height is not None and o.width is not None:
            return o.height, o.width
        if (o.height is None) != (o.width is None):
            raise ConfigError("set both `backbone.height` and `backbone.width`, or neither (size from the image)")
        h, w = self.video_processor.calculate_default_height_width(
            height=image.size[1], width=image.size[0], target_size=self.target_size
        )
        return int(h), int(w)

    def encode_condition(self, prompts: Sequence[str], images: Sequence[Any] | None = None) -> HunyuanCondition:
        if not images:
            raise ConfigError(
                f"backbone `{self.name}` is image-to-video: pass conditioning images (vader generate "
                "--image PATH; for training set `train.images` to a folder of images)"
            )
        if len(images) != len(prompts):
            raise ConfigError(
                f"backbone `{self.name}` needs one image per prompt, got {len(images)} images for {len(prompts)} prompts"
            )
        pil = [_as_pil(im) for im in images]
        sizes = {self.video_size(im) for im in pil}
        if len(sizes) > 1:
            raise ConfigError(
                f"the images of one batch give different video sizes {sorted(sizes)} (each from its aspect ratio): "
                "set `backbone.height` and `backbone.width`"
            )
        h, w = sizes.pop()
        cond = self.text_condition(prompts, (h, w))
        from diffusers.pipelines.hunyuan_video1_5.pipeline_hunyuan_video1_5_image2video import retrieve_latents

        vae, enc = self.components["vae"], self.components["image_encoder"]
        extractor = self.components["feature_extractor"]
        with torch.no_grad():
            feats, lats = [], []
            for im in pil:
                im = self.video_processor.resize(im, height=h, width=w, resize_mode="crop")
                x = extractor.preprocess(images=im, do_resize=True, return_tensors="pt", do_convert_rgb=True).to(
                    self.device, enc.dtype
                )
                feats.append(enc(**x).last_hidden_state)
                p = self.image_processor.preprocess(im, height=h, width=w).to(self.device, vae.dtype).unsqueeze(2)
                lats.append(retrieve_latents(vae.encode(p), sample_mode="argmax") * vae.config.scaling_factor)
        cond.image_embeds = torch.cat(feats).to(self.transformer_dtype)
        cond.image_latents = torch.cat(lats).to(self.device, torch.float32)
        return cond


def saved_config(scheduler: Any) -> dict[str, Any]:
    """A scheduler's configuration as ``save_pretrained`` writes it (with its ``_class_name``)."""
    return {**scheduler.config, "_class_name": type(scheduler).__name__}


def _as_pil(image: Any) -> Any:
    """A PIL RGB image from a path, a PIL image or a ``(3, H, W)`` tensor in [0, 1]."""
    from PIL import Image

    from vader_core.media import read_image

    if isinstance(image, (str, Path)):
        return read_image(image)
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    x = torch.as_tensor(image).detach().float().cpu()
    arr = (x.permute(1, 2, 0) * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    return Image.fromarray(arr)
