"""``svd``: Stable Video Diffusion (image-to-video) as a vader backbone.

The components of diffusers' ``StableVideoDiffusionPipeline`` (``stabilityai/stable-video-diffusion-img2vid``
and ``-img2vid-xt``): ``UNetSpatioTemporalConditionModel``, ``AutoencoderKLTemporalDecoder``, a CLIP
image encoder and processor, and the EDM ``EulerDiscreteScheduler``. The steps reproduce the stock
pipeline's arithmetic (image embeddings, noise-augmented image latents, added time ids, the
per-frame guidance ramp, Euler steps), and draw from the generator in the same order: first the
noise that augments the conditioning image, then the initial latents. With the same seed and
options ``vader generate`` gives the stock pipeline's frames.

Two things differ from a text-to-video backbone:

* ``predict`` is pure. It scales the model input with the sigma of ``step_index`` instead of calling
  ``scheduler.scale_model_input`` (which reads the scheduler's own step counter), and
  ``scheduler_step`` applies the Euler update with the sigmas of ``step_index`` and
  ``step_index + 1``; with gradient checkpointing the core calls ``predict`` again during backward,
  after the scheduler has moved on.
* The temporal decoder mixes frames: each frame's pixels depend on every frame decoded with it
  (temporal convolutions, and group norms over the whole chunk). ``decode(latents, frames)`` therefore
  decodes every chunk of ``decode_chunk_size`` frames that holds a chosen frame and keeps the chosen
  ones, so a decoded subset equals the same frames of a full decode.

SVD latents are ``(B, F, C, h, w)``; frames are dimension 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, field_validator, model_validator

from vader_core.backbone import BackboneOptions, BackbonePlugin
from vader_core.checkpointing import layers_of, reject_folded_options, run_guided
from vader_core.errors import ConfigError, MissingWeightsError
from vader_core.hub import missing_weights
from vader_core.lazy import torch

from .preprocess import CLIP_SIZE, load_image, resize_with_antialiasing, to_unit_tensor, vae_pixels

IMG2VID = "stabilityai/stable-video-diffusion-img2vid"
IMG2VID_XT = "stabilityai/stable-video-diffusion-img2vid-xt"
#: Frame counts of the released checkpoints: img2vid was trained on 14 frames, img2vid-xt on 25.
RELEASED_FRAMES = (14, 25)
SUBFOLDERS = ("unet", "vae", "image_encoder", "feature_extractor", "scheduler")


class SVDOptions(BackboneOptions):
    model: str | None = Field(
        IMG2VID,
        description=f"Hub id or local diffusers directory: `{IMG2VID}` (14 frames) or `{IMG2VID_XT}` (25 frames).",
    )
    height: int = Field(576, ge=8, description="Frame height in pixels (multiple of 8; 576 for the released models).")
    width: int = Field(1024, ge=8, description="Frame width in pixels (multiple of 8; 1024 for the released models).")
    frames: int = Field(
        14,
        ge=1,
        description="Frames generated: 14 (img2vid) or 25 (img2vid-xt) as released; other counts warn "
        "when the weights load.",
    )
    steps: int = Field(25, ge=1, description="Euler (EDM) denoising steps.")
    guidance: float = Field(
        3.0,
        ge=0.0,
        description="Guidance of the last frame (the stock pipeline's `max_guidance_scale`); guidance "
        "ramps linearly from `min_guidance` at the first frame. <= 1 disables classifier-free guidance.",
    )
    min_guidance: float = Field(1.0, ge=0.0, description="Guidance of the first frame (`min_guidance_scale`).")
    max_guidance: float | None = Field(
        None,
        ge=0.0,
        description="The stock pipeline's name for `guidance`; when set it wins over `guidance`.",
    )
    eta: float = Field(0.0, ge=0.0, description="Unused: the EDM Euler sampler of SVD is deterministic.")
    fps: int = Field(
        7, ge=1, description="Frame rate the UNet is conditioned on (it receives fps - 1, as in the stock pipeline)."
    )
    motion_bucket_id: int = Field(127, ge=0, description="Motion conditioning: higher values give more motion.")
    noise_aug_strength: float = Field(
        0.02,
        ge=0.0,
        description="Std of the noise added to the conditioning image before the VAE encodes it.",
    )
    decode_chunk_size: int | None = Field(
        None,
        ge=1,
        description="Frames the temporal decoder decodes together; null: all (the stock default). "
        "Smaller chunks use less memory but change the frames (the decoder mixes frames within a chunk); "
        "`memory.decode_chunk_size` overrides it when set.",
    )
    variant: str | None = Field(None, description="Weight file variant, e.g. `fp16` (half the download).")
    revision: str | None = Field(None, description="Hub revision of the weights.")

    @model_validator(mode="before")
    @classmethod
    def _folded(cls, data: Any) -> Any:
        return reject_folded_options(data, ("unet_gradient_checkpointing", "vae_gradient_checkpointing"))

    @field_validator("height", "width")
    @classmethod
    def _multiple_of_8(cls, v: int) -> int:
        if v % 8:
            raise ValueError(f"must be a multiple of 8, got {v}")
        return v


@dataclass
class SVDCondition:
    """What ``predict`` needs besides the latents (opaque to the core).

    Attributes:
        image_embeddings (`torch.Tensor`): CLIP image embeddings ``(B', 1, D)``; with guidance
            ``B' = 2B`` and the first half are zeros (the unconditional branch).
        pixels (`torch.Tensor`): the conditioning images for the VAE, ``(B, 3, H, W)`` float32 in [-1, 1].
        added_time_ids (`torch.Tensor`): ``(B', 3)``: fps - 1, motion bucket id, noise augmentation.
        guidance (`torch.Tensor` or `None`): per-frame guidance ``(B, F, 1, 1, 1)``, or `None` without guidance.
        image_latents (`torch.Tensor` or `None`): VAE latents of the noise-augmented images repeated
            over frames, ``(B', F, C, h, w)``; filled in by ``prepare_latents``, which draws the
            augmentation noise from the generator before the initial latents.
    """

    image_embeddings: Any
    pixels: Any
    added_time_ids: Any
    guidance: Any
    image_latents: Any = None

    @property
    def batch_size(self) -> int:
        return int(self.pixels.shape[0])


class SVDBackbone(BackbonePlugin):
    """Stable Video Diffusion image-to-video (img2vid / img2vid-xt) with diffusers components."""

    name = "svd"
    summary = "Stable Video Diffusion img2vid / img2vid-xt (image-to-video, EDM Euler, 576x1024, 14 or 25 frames)."
    Options: ClassVar[type[BackboneOptions]] = SVDOptions
    conditioning = "image"
    denoiser_name = "unet"
    default_lora_targets = ("to_q", "to_k", "to_v", "to_out.0")
    model_option: ClassVar[str] = "backbone.model"

    def __init__(self, options: BackboneOptions | None = None) -> None:
        super().__init__(options)
        self._pending: SVDCondition | None = None

    @classmethod
    def export_lora(cls, lora: Path, out: Path) -> dict[str, Path]:
        """The ComfyUI and kohya layouts (the original SGM UNet's names): ``out/comfyui``, ``out/kohya``."""
        from .export import export_original

        return export_original(lora, out)

    # -------------------------------------------------------------- loading
    def load(self, device: torch.device | str, dtype: torch.dtype) -> None:
        """Load the five components from ``options.model`` (hub id or local diffusers directory).

        Honours ``HF_HUB_OFFLINE``; raises :class:`~vader_core.errors.MissingWeightsError` with the hub id
        and how to point ``backbone.model`` at a local copy when the weights are not available; warns
        when ``frames`` is not a count the checkpoint was trained on.
        """
        from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler, UNetSpatioTemporalConditionModel
        from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

        source = self.options.model or IMG2VID
        kw: dict[str, Any] = {"revision": self.options.revision} if self.options.revision else {}
        local = Path(source).expanduser()
        if local.exists():
            missing = ", ".join(f"{s}/" for s in SUBFOLDERS if not (local / s).is_dir())
            if missing:
                raise MissingWeightsError(
                    f"{local} is not a diffusers Stable Video Diffusion directory (no {missing}); point "
                    f"`{self.model_option}` at a folder written by StableVideoDiffusionPipeline.save_pretrained"
                )
            source, kw = str(local), {}
        weights_kw = dict(kw, variant=self.options.variant) if self.options.variant else dict(kw)
        try:
            unet_config = UNetSpatioTemporalConditionModel.load_config(source, subfolder="unet", **kw)
            self._check_frames(int(unet_config.get("num_frames", 0) or 0), source)
            unet = UNetSpatioTemporalConditionModel.from_pretrained(
                source, subfolder="unet", torch_dtype=dtype, **weights_kw
            )
            vae = AutoencoderKLTemporalDecoder.from_pretrained(source, subfolder="vae", torch_dtype=dtype, **weights_kw)
            image_encoder = CLIPVisionModelWithProjection.from_pretrained(
                source, subfolder="image_encoder", torch_dtype=dtype, **weights_kw
            )
            feature_extractor = CLIPImageProcessor.from_pretrained(source, subfolder="feature_extractor", **kw)
            scheduler = EulerDiscreteScheduler.from_pretrained(source, subfolder="scheduler", **kw)
        except OSError as e:
            raise missing_weights(source, e, option=self.model_option, what="Stable Video Diffusion weights") from None
        self.setup(
            {
                "unet": unet,
                "vae": vae,
                "image_encoder": image_encoder,
                "feature_extractor": feature_extractor,
                "scheduler": scheduler,
            },
            device,
            dtype,
        )

    def _check_frames(self, trained_frames: int, source: str) -> None:
        """Warn (one line) when ``frames`` is neither a released model's frame count nor the one this
        checkpoint's UNet config names: the stock pipeline accepts any count, and fewer frames save memory."""
        if self.options.frames in RELEASED_FRAMES or self.options.frames == trained_frames:
            return
        from vader_core.errors import warn

        own = f"; `{source}` names {trained_frames}" if trained_frames and trained_frames not in RELEASED_FRAMES else ""
        warn(
            f"`backbone.frames` is {self.options.frames}: the released Stable Video Diffusion models were trained "
            f"on 14 (img2vid) and 25 frames (img2vid-xt{own}); other counts run but may move less well"
        )

    def load_tiny(self, device: torch.device | str, dtype: torch.dtype, seed: int = 0) -> None:
        """Tiny random components of the real architecture (any frame count), for tests."""
        from .tiny import tiny_components

        self.setup(tiny_components(seed), device, dtype)

    def setup(self, components: dict[str, Any], device: torch.device | str, dtype: torch.dtype) -> None:
        """Install components: moved to ``device``, cast to ``dtype``, frozen, in eval mode."""
        from diffusers import EulerDiscreteScheduler
        from diffusers.video_processor import VideoProcessor

        if not isinstance(components["scheduler"], EulerDiscreteScheduler):
            components["scheduler"] = EulerDiscreteScheduler.from_config(components["scheduler"].config)
        self.install_components(components, device, dtype)
        unet = components["unet"]
        expected = unet.add_embedding.linear_1.in_features
        if unet.config.addition_time_embed_dim * 3 != expected:
            raise ConfigError(
                f"the UNet expects added time ids of size {expected}, but fps, motion bucket id and noise augmentation "
                f"give {unet.config.addition_time_embed_dim * 3}: not a Stable Video Diffusion UNet"
            )
        vae = components["vae"]
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.video_processor = VideoProcessor(do_resize=True, vae_scale_factor=self.vae_scale_factor)
        self._pending = None

    # -------------------------------------------------------------- memory
    def checkpoint_blocks(self) -> list[torch.nn.Module]:
        """Every spatio-temporal resnet, transformer and down/upsampler of the UNet's down, mid and up
        blocks (diffusers' own switch on this UNet recomputes only the resnets)."""
        unet = self.denoiser
        return layers_of(*unet.down_blocks, unet.mid_block, *unet.up_blocks)

    def decoder_checkpoint_blocks(self) -> list[torch.nn.Module]:
        """The resnets, attention and upsamplers of the temporal decoder's mid and up blocks."""
        dec = self.components["vae"].decoder
        return layers_of(dec.mid_block, *dec.up_blocks)

    def condition_encoders(self) -> dict[str, torch.nn.Module]:
        # The VAE also encodes the conditioning image (prepare_latents), but it decodes too: it stays.
        return {"image_encoder": self.components["image_encoder"]}

    # -------------------------------------------------------------- options
    @property
    def guidance_range(self) -> tuple[float, float]:
        """Guidance of the first and the last frame."""
        o = self.options
        return o.min_guidance, o.max_guidance if o.max_guidance is not None else o.guidance

    @property
    def do_cfg(self) -> bool:
        # As in the stock pipeline: guidance is on when the largest scale of the ramp exceeds 1.
        return self.guidance_range[1] > 1.0

    # -------------------------------------------------------------- steps
    def encode_condition(self, prompts: Sequence[str], images: Sequence[Any] | None = None) -> SVDCondition:
        """Encode the conditioning images (prompts are captions, used only by text-aware rewards).

        Args:
            prompts (`Sequence[str]`): one caption per video.
            images (`Sequence`): one image per video: PIL images, ``(3, H, W)`` tensors in [0, 1], or paths.

        Returns:
            `SVDCondition`: image embeddings, VAE pixels, added time ids and the guidance ramp. Its image
            latents are filled in by the next :meth:`prepare_latents`, which draws their noise augmentation.
        """
        if not images:
            raise ConfigError(
                "backbone `svd` is image-to-video: pass conditioning images (vader generate --image PATH; "
                "for training set `train.images` to a folder of images)"
            )
        if len(images) != len(prompts):
            raise ConfigError(
                f"backbone `svd` needs one image per prompt, got {len(images)} images for {len(prompts)} prompts"
            )
        o = self.options
        loaded = [load_image(im) for im in images]
        encoder, fe = self.components["image_encoder"], self.components["feature_extractor"]
        with torch.no_grad():
            clip_in = []
            for im in loaded:
                # Resized in [-1, 1] and mapped back, as the reference sampler does before CLIP.
                x = resize_with_antialiasing(to_unit_tensor(im) * 2.0 - 1.0, CLIP_SIZE)
                clip_in.append((x + 1.0) / 2.0)
            pixel_values = fe(
                images=torch.cat(clip_in),
                do_normalize=True,
                do_center_crop=False,
                do_resize=False,
                do_rescale=False,
                return_tensors="pt",
            ).pixel_values
            enc_dtype = next(encoder.parameters()).dtype
            emb = encoder(pixel_values.to(device=self.device, dtype=enc_dtype)).image_embeds.unsqueeze(1)
            pixels = torch.cat([vae_pixels(im, o.height, o.width, self.video_processor) for im in loaded])
            pixels = pixels.to(self.device)
            b = len(loaded)
            ids = torch.tensor([[o.fps - 1, o.motion_bucket_id, o.noise_aug_strength]], dtype=emb.dtype).repeat(b, 1)
            guidance = None
            if self.do_cfg:
                emb = torch.cat([torch.zeros_like(emb), emb])
                ids = torch.cat([ids, ids])
                lo, hi = self.guidance_range
                guidance = torch.linspace(lo, hi, o.frames).unsqueeze(0).to(self.device, self.dtype).repeat(b, 1)
                guidance = guidance[:, :, None, None, None]
        cond = SVDCondition(image_embeddings=emb, pixels=pixels, added_time_ids=ids.to(self.device), guidance=guidance)
        self._pending = cond
        return cond

    def latent_shape(self, batch_size: int) -> tuple[int, ...]:
        o = self.options
        c = self.components["unet"].config.in_channels // 2
        return (batch_size, o.frames, c, o.height // self.vae_scale_factor, o.width // self.vae_scale_factor)

    def _init_noise_sigma(self) -> torch.Tensor:
        # From a fresh copy set to `options.steps`: the live scheduler's sigmas depend on what ran before.
        from diffusers import EulerDiscreteScheduler

        sched = EulerDiscreteScheduler.from_config(self.scheduler.config)
        sched.set_timesteps(self.options.steps)
        return sched.init_noise_sigma

    def prepare_latents(
        self, batch_size: int, generator: torch.Generator | None, cond: SVDCondition | None = None
    ) -> torch.Tensor:
        """Initial latents ``(B, F, C, h, w)``, after the noise that augments the conditioning images.

        The generator gives first the augmentation noise ``(B, 3, H, W)``, then the latents, as in the
        stock pipeline. The noisy images are encoded by the VAE into ``cond.image_latents`` of the
        condition from the latest :meth:`encode_condition` (or of ``cond`` when given).

        Args:
            batch_size (`int`): number of videos.
            generator (`torch.Generator`, *optional*): source of all the noise.
            cond (`SVDCondition`, *optional*): the condition to complete; defaults to the one returned by
                the latest :meth:`encode_condition`.
        """
        from diffusers.utils.torch_utils import randn_tensor

        o = self.options
        cond = cond if cond is not None else self._pending
        self._pending = None
        noise = randn_tensor(
            (batch_size, 3, o.height, o.width), generator=generator, device=self.device, dtype=torch.float32
        )
        latents = (
            randn_tensor(self.latent_shape(batch_size), generator=generator, device=self.device, dtype=self.dtype)
            * self._init_noise_sigma()
        )
        if cond is not None:
            if cond.batch_size != batch_size:
                raise ConfigError(
                    f"the condition holds {cond.batch_size} images but {batch_size} videos were asked for"
                )
            cond.image_latents = self._image_latents(cond, noise)
        return latents

    def _image_latents(self, cond: SVDCondition, noise: torch.Tensor) -> torch.Tensor:
        vae = self.components["vae"]
        image = cond.pixels + self.options.noise_aug_strength * noise
        upcast = vae.dtype == torch.float16 and vae.config.force_upcast
        with torch.no_grad():
            if upcast:
                vae.to(dtype=torch.float32)
            try:
                lat = vae.encode(image.to(dtype=vae.dtype)).latent_dist.mode()
            finally:
                if upcast:
                    vae.to(dtype=torch.float16)
            if self.do_cfg:
                lat = torch.cat([torch.zeros_like(lat), lat])
            lat = lat.to(cond.image_embeddings.dtype)
        return lat.unsqueeze(1).repeat(1, self.options.frames, 1, 1, 1)

    def predict(self, latents: torch.Tensor, t: torch.Tensor, cond: SVDCondition, step_index: int) -> torch.Tensor:
        """One UNet evaluation with the per-frame guidance ramp; returns the v-prediction.

        Pure: the input scaling ``1 / sqrt(sigma^2 + 1)`` uses the sigma of ``step_index``.
        """
        if cond.image_latents is None:
            raise ConfigError(
                "call prepare_latents() after encode_condition(): it draws the noise augmentation of the "
                "conditioning image from the generator, as the stock pipeline does"
            )
        x = torch.cat([latents] * 2) if self.do_cfg else latents
        sigma = self.scheduler.sigmas[step_index]
        x = x / ((sigma**2 + 1) ** 0.5)
        x = torch.cat([x, cond.image_latents], dim=2)

        def unet(x: torch.Tensor, emb: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
            return self.denoiser(x, t, encoder_hidden_states=emb, added_time_ids=ids, return_dict=False)[0]

        args = (x, cond.image_embeddings, cond.added_time_ids)
        out = run_guided(unet, *args) if self.do_cfg else unet(*args)
        if self.do_cfg:
            uncond, image = out.chunk(2)
            out = uncond + cond.guidance * (image - uncond)
        return out

    def scheduler_step(
        self,
        model_output: torch.Tensor,
        t: torch.Tensor,
        latents: torch.Tensor,
        step_index: int,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """The Euler step of ``EulerDiscreteScheduler.step`` (no churn), from sigma[i] to sigma[i + 1].

        Computed here from ``step_index`` (not the scheduler's counter) and differentiable; the tests
        check it against the scheduler's own ``step``.
        """
        sigmas = self.scheduler.sigmas
        sigma, sigma_next = sigmas[step_index], sigmas[step_index + 1]
        sample = latents.to(torch.float32)
        kind = self.scheduler.config.prediction_type
        if kind == "v_prediction":
            x0 = model_output * (-sigma / (sigma**2 + 1) ** 0.5) + (sample / (sigma**2 + 1))
        elif kind == "epsilon":
            x0 = sample - sigma * model_output
        elif kind in ("sample", "original_sample"):
            x0 = model_output
        else:
            raise ConfigError(f"unsupported scheduler prediction_type {kind!r} (epsilon, v_prediction or sample)")
        derivative = (sample - x0) / sigma
        prev = sample + derivative * (sigma_next - sigma)
        return prev.to(model_output.dtype)

    def num_latent_frames(self, latents: torch.Tensor) -> int:
        """Frames are dimension 1 of SVD latents ``(B, F, C, h, w)``."""
        return int(latents.shape[1])

    def decode(
        self,
        latents: torch.Tensor,
        frames: Sequence[int] | None = None,
        chunk_size: int | None = None,
        cond: Any = None,
    ) -> torch.Tensor:
        """Decode the latent frames ``frames`` (all if `None`) with the temporal decoder.

        Frames are decoded in chunks of ``chunk_size`` (else ``options.decode_chunk_size``, else all
        frames) consecutive frames of each video, as the stock pipeline's ``decode_chunk_size``. For a
        subset, every chunk that holds a chosen frame is decoded whole and the chosen frames kept, so
        the result equals the same frames of a full decode with the same chunks (the decoder mixes the
        frames of a chunk). Memory is that of decoding those chunks.

        Returns:
            `torch.Tensor`: ``(B, len(frames), 3, H, W)`` float32 in [0, 1], differentiable in ``latents``.
        """
        vae = self.components["vae"]
        b, f = latents.shape[:2]
        chosen = list(range(f)) if frames is None else [int(i) for i in frames]
        if any(not 0 <= i < f for i in chosen):
            raise ConfigError(f"frame indices must be in [0, {f - 1}], got {chosen}")
        size = chunk_size or self.options.decode_chunk_size or f
        decoded: dict[int, torch.Tensor] = {}
        for start in sorted({i // size * size for i in chosen}):
            z = latents[:, start : start + size]
            n = z.shape[1]
            z = 1 / vae.config.scaling_factor * z.flatten(0, 1)
            pixels = vae.decode(z, num_frames=n).sample
            pixels = pixels.reshape(b, n, *pixels.shape[1:])
            for j in range(n):
                decoded[start + j] = pixels[:, j]
        video = torch.stack([decoded[i] for i in chosen], dim=1).float()
        return (video / 2 + 0.5).clamp(0, 1)
