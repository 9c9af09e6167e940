"""``ltx2``: the video branch of LTX-2 (diffusers' ``LTX2Pipeline``) as a vader backbone.

LTX-2 generates video and audio jointly: one ``LTX2VideoTransformer3DModel`` denoises video tokens and audio
tokens together (each stream cross-attends to the other), both stepped with the same flow-match Euler sigmas.
The video depends on the audio latents at every step, so the chain carries both:

* **state**: the chain's latents are one float32 tensor ``(B, N_video + N_audio)``, the packed video tokens
  ``(B, F*H*W, C)`` flattened, then the packed audio tokens ``(B, L, C_a * M)`` flattened (opaque to the core). The
  Euler step is elementwise, so stepping it with one scheduler is the stock pipeline's two schedulers (same
  sigmas). The noise is drawn video first, then audio, from the generator, as the stock pipeline draws it.
* **text**: Gemma 3 (all hidden states stacked), ``max_sequence_length`` tokens padded on the left, then the
  pipeline's ``LTX2TextConnectors`` (video and audio text embeddings) on the [negative, positive] batch.
* **guidance** as the stock pipeline, in x0 space (``x0 = x - sigma * v``): classifier-free guidance (both halves
  in one call), spatio-temporal guidance (one more call with self-attention skipped in
  ``stg_blocks``), modality isolation (one more call without the audio<->video cross-attention), each a delta
  added to the conditional x0, then ``guidance_rescale``; the audio stream the same with its own scales. The
  released defaults use all three: 4 transformer passes per step (3 calls).
* **decoding**: the video latents only, as ``ltx`` (normalisation, decode timestep and noise, temporal tiles
  for frames decoded with gradient). The audio latents are stepped (the video needs them) but never decoded: the
  reward sees the video; ``vader generate`` writes the video only (no audio VAE or vocoder run).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from vader_core.backbone import BackboneOptions
from vader_core.checkpointing import run_guided
from vader_core.errors import ConfigError, MissingWeightsError
from vader_core.hub import missing_weights
from vader_core.lazy import torch

from .backbone import LTXBackbone, LTXOptions

LTX_2 = "Lightricks/LTX-2"


class LTX2Options(LTXOptions):
    model: str | None = Field(LTX_2, description=f"Hub id or local diffusers directory (`{LTX_2}`).")
    height: int = Field(512, ge=32, description="Frame height in pixels (a multiple of 32).")
    width: int = Field(768, ge=32, description="Frame width in pixels (a multiple of 32).")
    frames: int = Field(121, ge=1, description="Frames generated: 8k + 1 (the VAE's temporal compression).")
    steps: int = Field(30, ge=1, description="Denoising steps (LTX2Pipeline's default).")
    guidance: float = Field(
        3.0, ge=0.0, description="Classifier-free guidance of the video stream (x0 space); active above 1."
    )
    stg_scale: float = Field(
        1.0, ge=0.0, description="Spatio-temporal guidance of the video stream (an extra call); active above 0."
    )
    stg_blocks: list[int] = Field(
        default_factory=lambda: [28], description="Transformer blocks whose self-attention STG skips (the release: 28)."
    )
    modality_scale: float = Field(
        3.0, ge=0.0, description="Modality-isolation guidance of the video stream (an extra call); active above 1."
    )
    guidance_rescale: float = Field(0.7, ge=0.0, le=1.0, description="Rescale of the guided video x0 (LTX2Pipeline's).")
    audio_guidance: float = Field(7.0, ge=0.0, description="Classifier-free guidance of the audio stream (0: video's).")
    audio_stg_scale: float = Field(
        1.0, ge=0.0, description="Spatio-temporal guidance of the audio stream (0: video's)."
    )
    audio_modality_scale: float = Field(3.0, ge=0.0, description="Modality guidance of the audio stream (0: video's).")
    audio_guidance_rescale: float = Field(0.7, ge=0.0, le=1.0, description="Rescale of the audio x0 (0: video's).")
    frame_rate: float = Field(24.0, gt=0, description="Frame rate: rotary positions and the audio length follow it.")
    use_cross_timestep: bool = Field(
        True, description="Cross-attention modulated by the other modality's sigma (LTX-2.3 on; false: LTX-2.0)."
    )
    max_sequence_length: int = Field(1024, ge=1, description="Text tokens (Gemma 3), as the stock pipeline's default.")
    image_crf: int | None = Field(
        None,
        ge=0,
        le=51,
        description="`ltx2-i2v`: H.264 CRF the conditioning image is re-compressed with before encoding, as the "
        "stock pipeline does (null: the checkpoint's default, 33 for LTX-2; 0: not re-compressed).",
    )


@dataclass
class LTX2Condition:
    """Connector outputs for the transformer; with classifier-free guidance the [negative, positive] batch."""

    video_embeds: Any
    audio_embeds: Any
    mask: Any
    batch: int
    pixels: Any = None  # image-to-video: the preprocessed images (B, 3, H, W) in [-1, 1]


def _scale(value: float, video: float) -> float:
    """The stock pipeline's ``audio_x or x``: 0 means the video stream's value."""
    return value or video


class LTX2Backbone(LTXBackbone):
    """The video branch of LTX-2 with the components of diffusers' ``LTX2Pipeline`` (audio stepped, not decoded)."""

    name = "ltx2"
    summary = "LTX-2 video branch (Lightricks/LTX-2; 512x768, 121 frames; audio stepped jointly, not decoded)."
    Options: ClassVar[type[BackboneOptions]] = LTX2Options
    conditioning = "text"
    pipeline_class: ClassVar[str] = "LTX2Pipeline"
    #: The video stream's attention: self (``attn1``), text (``attn2``) and audio-to-video cross-attention. The
    #: reward sees the video only; the audio stream's layers of the last block never reach it (``lora.target_modules``
    #: adds others, e.g. ``audio_attn1.to_q``).
    default_lora_targets = tuple(
        f"{m}.{p}" for m in ("attn1", "attn2", "audio_to_video_attn") for p in ("to_q", "to_k", "to_v", "to_out.0")
    )

    # -------------------------------------------------------------- loading
    def load(self, device: torch.device | str, dtype: torch.dtype) -> None:
        """Load ``LTX2Pipeline``'s components from ``options.model`` (hub id or local diffusers directory); the
        vocoder is not loaded (audio is never decoded). Honours ``HF_HUB_OFFLINE``; missing weights raise
        :class:`MissingWeightsError` in one line."""
        from diffusers import (
            AutoencoderKLLTX2Audio,
            AutoencoderKLLTX2Video,
            FlowMatchEulerDiscreteScheduler,
            LTX2VideoTransformer3DModel,
        )
        from diffusers.pipelines.ltx2 import LTX2TextConnectors
        from transformers import AutoTokenizer, Gemma3ForConditionalGeneration

        source = self.options.model or LTX_2
        kw: dict[str, Any] = {"revision": self.options.revision} if self.options.revision else {}
        local = Path(source).expanduser()
        if local.exists():
            need = ("transformer", "vae", "audio_vae", "text_encoder", "tokenizer", "connectors", "scheduler")
            missing = [s for s in need if not (local / s).is_dir()]
            if missing:
                raise MissingWeightsError(
                    f"{local} is not a diffusers LTX-2 directory (no {', '.join(f'{m}/' for m in missing)}); "
                    f"point `{self.model_option}` at the folder written by LTX2Pipeline.save_pretrained"
                )
            source, kw = str(local), {}
        try:
            comps: dict[str, Any] = {
                "transformer": LTX2VideoTransformer3DModel.from_pretrained(
                    source, subfolder="transformer", torch_dtype=dtype, **kw
                ),
                "vae": AutoencoderKLLTX2Video.from_pretrained(source, subfolder="vae", torch_dtype=dtype, **kw),
                "text_encoder": Gemma3ForConditionalGeneration.from_pretrained(
                    source, subfolder="text_encoder", torch_dtype=dtype, **kw
                ),
                "tokenizer": AutoTokenizer.from_pretrained(source, subfolder="tokenizer", **kw),
                "connectors": LTX2TextConnectors.from_pretrained(
                    source, subfolder="connectors", torch_dtype=dtype, **kw
                ),
            }
            # The audio VAE's configuration fixes the audio latent grid (its weights are small and never run).
            comps["audio_vae"] = AutoencoderKLLTX2Audio.from_pretrained(
                source, subfolder="audio_vae", torch_dtype=dtype, **kw
            )
            sched = dict(FlowMatchEulerDiscreteScheduler.load_config(source, subfolder="scheduler", **kw))
        except (OSError, ValueError) as e:
            raise missing_weights(source, e, option=self.model_option, what="LTX-2 weights") from None
        comps["scheduler"] = self.make_scheduler(sched)
        self.setup(comps, device, dtype)

    def load_tiny(self, device: torch.device | str, dtype: torch.dtype, seed: int = 0) -> None:
        """Tiny random components of the LTX-2 architectures (layout ``a`` of :mod:`vader_ltx.tiny_ltx2`, 2 blocks);
        spatio-temporal guidance blocks beyond them (the release's 28) become the last block."""
        from .tiny_ltx2 import scheduler_config, tiny_components

        comps = tiny_components(seed)
        comps.pop("vocoder")
        layers = int(comps["transformer"].config.num_layers)
        if any(b >= layers for b in self.options.stg_blocks):  # the release's block 28: the tiny model's last
            self.options = self.options.model_copy(update={"stg_blocks": [layers - 1]})
        comps["scheduler"] = self.make_scheduler(scheduler_config())
        self.setup(comps, device, dtype)

    def setup(self, components: dict[str, Any], device: torch.device | str, dtype: torch.dtype) -> None:
        super().setup(components, device, dtype)
        o = self.options
        layers = int(components["transformer"].config.num_layers)
        if self.do_stg and (not o.stg_blocks or any(b < 0 or b >= layers for b in o.stg_blocks)):
            raise ConfigError(
                f"`backbone.stg_blocks` {o.stg_blocks} must name blocks 0..{layers - 1} of this transformer "
                "while spatio-temporal guidance is on (or set backbone.stg_scale=0 and backbone.audio_stg_scale=0)"
            )
        avae = components["audio_vae"]
        self.audio_mel = int(avae.config.mel_bins) // int(avae.mel_compression_ratio)
        self.audio_channels = int(avae.config.latent_channels)
        per_second = avae.config.sample_rate / avae.config.mel_hop_length / float(avae.temporal_compression_ratio)
        self.audio_frames = round(o.frames / o.frame_rate * per_second)

    def make_scheduler(self, config: dict[str, Any] | None = None) -> Any:
        from .tiny_ltx2 import scheduler_config

        config = dict(config or {})
        if config.get("_class_name") != "FlowMatchEulerDiscreteScheduler":
            config = scheduler_config()
        return super(LTXBackbone, self).make_scheduler(config)

    def condition_encoders(self) -> dict[str, torch.nn.Module]:
        """Gemma 3 (12B in the release) and the connectors: used once per batch."""
        return {"text_encoder": self.components["text_encoder"], "connectors": self.components["connectors"]}

    def save_pretrained(self, directory: str | Path) -> None:
        """Write the components with ``LTX2Pipeline.save_pretrained``; a vocoder is required by the pipeline, so a
        backbone loaded without one cannot be saved this way."""
        from diffusers import LTX2Pipeline

        if "vocoder" not in self.components:
            raise ConfigError("this ltx2 backbone was loaded without the vocoder: save the checkpoint's directory")
        LTX2Pipeline(**self.components).save_pretrained(directory)

    # -------------------------------------------------------------- timesteps
    def timestep_kwargs(self, steps: int) -> dict[str, Any]:
        """The stock sigmas ``linspace(1, 1/steps, steps)`` and ``mu`` from the video tokens (``calculate_shift``
        with the pipeline's defaults 1024 / 4096 / 0.95 / 2.05) under dynamic shifting."""
        import numpy as np
        from diffusers.pipelines.ltx2.pipeline_ltx2 import calculate_shift

        kw: dict[str, Any] = {"sigmas": np.linspace(1.0, 1 / steps, steps)}
        cfg = self.scheduler.config
        if cfg.get("use_dynamic_shifting"):
            f, h, w = self.latent_grid()
            kw["mu"] = calculate_shift(
                f * h * w,
                cfg.get("base_image_seq_len", 1024),
                cfg.get("max_image_seq_len", 4096),
                cfg.get("base_shift", 0.95),
                cfg.get("max_shift", 2.05),
            )
        return kw

    # -------------------------------------------------------------- guidance switches (as the stock pipeline)
    @property
    def audio_guidance(self) -> float:
        return _scale(self.options.audio_guidance, self.options.guidance)

    @property
    def do_cfg(self) -> bool:
        return self.options.guidance > 1.0 or self.audio_guidance > 1.0

    @property
    def do_stg(self) -> bool:
        o = self.options
        return o.stg_scale > 0.0 or _scale(o.audio_stg_scale, o.stg_scale) > 0.0

    @property
    def do_modality(self) -> bool:
        o = self.options
        return o.modality_scale > 1.0 or _scale(o.audio_modality_scale, o.modality_scale) > 1.0

    # -------------------------------------------------------------- text
    def _embed(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        tok = self.components["tokenizer"]
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        ids = tok(
            [t.strip() for t in texts],
            padding="max_length",
            max_length=self.options.max_sequence_length,
            truncation=True,
            add_special_tokens=True,
            return_tensors="pt",
        )
        enc = self.components["text_encoder"]
        mask = ids.attention_mask.to(self.device)
        out = enc(input_ids=ids.input_ids.to(self.device), attention_mask=mask, output_hidden_states=True)
        emb = torch.stack(out.hidden_states, dim=-1).flatten(2, 3).to(enc.dtype)
        return emb, mask

    def encode_condition(self, prompts: Sequence[str], images: Sequence[Any] | None = None) -> LTX2Condition:
        with torch.no_grad():
            emb, mask = self._embed(prompts)
            if self.do_cfg:
                neg, neg_mask = self._embed([self.options.negative_prompt] * len(prompts))
                emb, mask = torch.cat([neg, emb]), torch.cat([neg_mask, mask])
            padding = getattr(self.components["tokenizer"], "padding_side", "left")
            video, audio, cmask = self.components["connectors"](emb, mask, padding_side=padding)
        return LTX2Condition(video, audio, cmask, len(prompts))

    # -------------------------------------------------------------- latents (the flat state)
    def _sizes(self) -> tuple[tuple[int, int], tuple[int, int]]:
        f, h, w = self.latent_grid()
        c = self.components["transformer"].config.in_channels
        return (f * h * w, c), (self.audio_frames, self.audio_channels * self.audio_mel)

    def _split(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        (sv, cv), (sa, ca) = self._sizes()
        b = state.shape[0]
        return state[:, : sv * cv].reshape(b, sv, cv), state[:, sv * cv :].reshape(b, sa, ca)

    def latent_shape(self, batch_size: int) -> tuple[int, ...]:
        (sv, cv), (sa, ca) = self._sizes()
        return (batch_size, sv * cv + sa * ca)

    def prepare_latents(
        self, batch_size: int, generator: torch.Generator | None, cond: LTX2Condition | None = None
    ) -> torch.Tensor:
        """Video noise ``(B, C, F, H, W)`` then audio noise ``(B, C_a, L, M)``, packed as the stock pipeline packs
        them, flattened and concatenated."""
        from diffusers import LTX2Pipeline
        from diffusers.utils.torch_utils import randn_tensor

        video = LTX2Pipeline._pack_latents(self._video_latents(batch_size, generator, cond))
        audio = randn_tensor(
            (batch_size, self.audio_channels, self.audio_frames, self.audio_mel),
            generator=generator,
            device=self.device,
            dtype=torch.float32,
        )
        audio = LTX2Pipeline._pack_audio_latents(audio)
        return torch.cat([video.flatten(1), audio.flatten(1)], dim=1)

    def _video_latents(
        self, batch_size: int, generator: torch.Generator | None, cond: LTX2Condition | None
    ) -> torch.Tensor:
        """The initial video latents ``(B, C, F, H, W)``: noise from ``generator``."""
        from diffusers.utils.torch_utils import randn_tensor

        f, h, w = self.latent_grid()
        c = self.components["transformer"].config.in_channels
        return randn_tensor((batch_size, c, f, h, w), generator=generator, device=self.device, dtype=torch.float32)

    def _video_timestep(self, ts: torch.Tensor) -> torch.Tensor:
        """The transformer's video ``timestep`` for the batch timesteps ``ts``: the same for every token."""
        return ts

    # -------------------------------------------------------------- predict
    def predict(self, latents: torch.Tensor, t: torch.Tensor, cond: LTX2Condition, step_index: int) -> torch.Tensor:
        """The velocity of both streams after the stock pipeline's guidance (computed in x0 space)."""
        from diffusers.pipelines.ltx2.pipeline_ltx2 import rescale_noise_cfg
        from diffusers.pipelines.ltx2.utils import conditioning_frame_rate

        o = self.options
        model = self.components["transformer"]
        video, audio = self._split(latents)
        b = video.shape[0]
        f, h, w = self.latent_grid()
        fps = conditioning_frame_rate(o.frame_rate, 1.0)
        dtype = cond.video_embeds.dtype
        vcoords = model.rope.prepare_video_coords(b, f, h, w, video.device, fps=fps)
        acoords = model.audio_rope.prepare_audio_coords(b, self.audio_frames, audio.device)
        sigma = self.scheduler.sigmas[step_index]

        def call(
            x: torch.Tensor,
            a: torch.Tensor,
            emb: torch.Tensor,
            aemb: torch.Tensor,
            mask: torch.Tensor,
            ts: torch.Tensor,
            vc: torch.Tensor,
            ac: torch.Tensor,
            isolate: bool = False,
            stg: list[int] | None = None,
        ) -> torch.Tensor:
            v, va = model(
                hidden_states=x,
                audio_hidden_states=a,
                encoder_hidden_states=emb,
                audio_encoder_hidden_states=aemb,
                timestep=self._video_timestep(ts),
                audio_timestep=ts,
                sigma=ts,
                encoder_attention_mask=mask,
                audio_encoder_attention_mask=mask,
                num_frames=f,
                height=h,
                width=w,
                fps=fps,
                audio_num_frames=self.audio_frames,
                video_coords=vc,
                audio_coords=ac,
                isolate_modalities=isolate,
                spatio_temporal_guidance_blocks=stg,
                perturbation_mask=None,
                use_cross_timestep=o.use_cross_timestep,
                return_dict=False,
            )
            return torch.cat([v.float().flatten(1), va.float().flatten(1)], dim=1)

        def x0(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            v, va = self._split(out)
            return video - v * sigma, audio - va * sigma

        ts = t.expand(b)
        if self.do_cfg:
            both = run_guided(
                call,
                torch.cat([video, video]).to(dtype),
                torch.cat([audio, audio]).to(dtype),
                cond.video_embeds,
                cond.audio_embeds,
                cond.mask,
                torch.cat([ts, ts]),
                vcoords.repeat((2,) + (1,) * (vcoords.ndim - 1)),
                acoords.repeat((2,) + (1,) * (acoords.ndim - 1)),
            )
            uncond, text = both.chunk(2)
            pv, pa = x0(text)
            uv, ua = x0(uncond)
            dv = (o.guidance - 1) * (pv - uv)
            da = (self.audio_guidance - 1) * (pa - ua)
            emb, aemb, mask = cond.video_embeds.chunk(2)[1], cond.audio_embeds.chunk(2)[1], cond.mask.chunk(2)[1]
        else:
            pv, pa = x0(
                call(
                    video.to(dtype),
                    audio.to(dtype),
                    cond.video_embeds,
                    cond.audio_embeds,
                    cond.mask,
                    ts,
                    vcoords,
                    acoords,
                )
            )
            dv = da = 0
            emb, aemb, mask = cond.video_embeds, cond.audio_embeds, cond.mask
        args = (video.to(dtype), audio.to(dtype), emb, aemb, mask, ts, vcoords, acoords)
        if self.do_stg:
            sv, sa = x0(call(*args, stg=list(o.stg_blocks)))
            dv = dv + o.stg_scale * (pv - sv)
            da = da + _scale(o.audio_stg_scale, o.stg_scale) * (pa - sa)
        if self.do_modality:
            mv, ma = x0(call(*args, isolate=True))
            dv = dv + (o.modality_scale - 1) * (pv - mv)
            da = da + (_scale(o.audio_modality_scale, o.modality_scale) - 1) * (pa - ma)
        gv, ga = pv + dv, pa + da
        if o.guidance_rescale > 0:
            gv = rescale_noise_cfg(gv, pv, guidance_rescale=o.guidance_rescale)
        arescale = _scale(o.audio_guidance_rescale, o.guidance_rescale)
        if arescale > 0:
            ga = rescale_noise_cfg(ga, pa, guidance_rescale=arescale)
        vel_v = (video - gv) / sigma
        vel_a = (audio - ga) / sigma
        return torch.cat([vel_v.flatten(1), vel_a.flatten(1)], dim=1)

    # -------------------------------------------------------------- decoding (video only)
    def video_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """The video part of the state as ``(B, C, F, H, W)``."""
        from diffusers import LTX2Pipeline

        video, _ = self._split(latents)
        f, h, w = self.latent_grid()
        return LTX2Pipeline._unpack_latents(video, f, h, w)

    def num_latent_frames(self, latents: torch.Tensor) -> int:
        """Pixel frames the video latents decode to (the unit of frame subsampling, as ``ltx``)."""
        f, _, _ = self.latent_grid()
        return (f - 1) * self.vae_temporal + 1

    def decode(
        self,
        latents: torch.Tensor,
        frames: Sequence[int] | None = None,
        chunk_size: int | None = None,
        cond: Any = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Decode pixel frames of the video latents as ``ltx`` does; the audio latents are not decoded."""
        return super().decode(self.video_latents(latents), frames, chunk_size, None, generator)


class LTX2I2VBackbone(LTX2Backbone):
    """LTX-2's video branch, image-to-video, as diffusers' ``LTX2ImageToVideoPipeline``: the image's latents are
    latent frame 0, held at timestep 0 through the chain (the audio stream as in ``ltx2``)."""

    name = "ltx2-i2v"
    summary = (
        "LTX-2 video branch, image-to-video (Lightricks/LTX-2; 512x768, 121 frames; image from train.images / "
        "--image; audio stepped jointly, not decoded)."
    )
    conditioning = "text+image"
    pipeline_class: ClassVar[str] = "LTX2ImageToVideoPipeline"

    def setup(self, components: dict[str, Any], device: torch.device | str, dtype: torch.dtype) -> None:
        from diffusers.video_processor import VideoProcessor

        super().setup(components, device, dtype)
        # LTX2ImageToVideoPipeline resizes the image bilinearly (LTX-Video's pipeline: lanczos, the default).
        self.video_processor = VideoProcessor(vae_scale_factor=self.vae_spatial, resample="bilinear")

    def encode_condition(self, prompts: Sequence[str], images: Sequence[Any] | None = None) -> LTX2Condition:
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

        images = [self._compressed(read_image(im) if isinstance(im, (str, Path)) else im) for im in images]
        cond = super().encode_condition(prompts, None)
        o = self.options
        with torch.no_grad():
            cond.pixels = torch.cat(
                [self.video_processor.preprocess(im, height=o.height, width=o.width) for im in images]
            ).to(self.device, dtype=cond.video_embeds.dtype)
        return cond

    def _compressed(self, image: Any) -> Any:
        """The image re-compressed with H.264 at ``image_crf`` (null: the checkpoint's default, 33 for LTX-2's
        Gemma 3 generation) as the stock pipeline does before resizing; a ``(3, H, W)`` tensor in [0, 1] becomes a
        PIL image first."""
        import numpy as np
        from diffusers.pipelines.ltx2.utils import apply_image_conditioning_crf, resolve_default_image_crf
        from PIL import Image

        o = self.options
        crf = o.image_crf if o.image_crf is not None else resolve_default_image_crf(self.components["text_encoder"])
        if not crf:
            return image
        if isinstance(image, torch.Tensor):
            image = Image.fromarray((image.detach().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy())
        return Image.fromarray(apply_image_conditioning_crf(np.array(image.convert("RGB")), crf))

    def _frame0_mask(self, batch: int) -> torch.Tensor:
        """``(B, F, H, W)`` ones at latent frame 0, zeros after, packed to tokens ``(B, F*H*W)``."""
        from diffusers import LTX2Pipeline

        f, h, w = self.latent_grid()
        mask = torch.zeros(batch, 1, f, h, w, device=self.device, dtype=torch.float32)
        mask[:, :, 0] = 1.0
        return LTX2Pipeline._pack_latents(mask).squeeze(-1)

    def _video_latents(
        self, batch_size: int, generator: torch.Generator | None, cond: LTX2Condition | None
    ) -> torch.Tensor:
        """Noise with latent frame 0 replaced by the images' latents (the VAE encoder's mode, normalised), as the
        stock pipeline forms them; the noise is drawn after the images are encoded."""
        from diffusers import LTX2Pipeline
        from diffusers.utils.torch_utils import randn_tensor

        if cond is None or cond.pixels is None:
            return super()._video_latents(batch_size, generator, cond)
        vae = self.components["vae"]
        f, h, w = self.latent_grid()
        c = self.components["transformer"].config.in_channels
        with torch.no_grad():
            lat = torch.cat([vae.encode(im[None, :, None].to(vae.dtype)).latent_dist.mode() for im in cond.pixels])
        lat = LTX2Pipeline._normalize_latents(lat.float(), vae.latents_mean, vae.latents_std).to(self.device)
        noise = randn_tensor((batch_size, c, f, h, w), generator=generator, device=self.device, dtype=torch.float32)
        mask = torch.zeros(batch_size, 1, f, h, w, device=self.device, dtype=torch.float32)
        mask[:, :, 0] = 1.0
        return lat.repeat(1, 1, f, 1, 1) * mask + noise * (1 - mask)

    def _video_timestep(self, ts: torch.Tensor) -> torch.Tensor:
        """One timestep per video token: 0 for latent frame 0 (the image), ``t`` for the others."""
        return ts.unsqueeze(-1) * (1 - self._frame0_mask(ts.shape[0]).to(ts.dtype))

    def _frame0_size(self) -> int:
        """Entries of the state that hold latent frame 0 (its tokens come first in the packed video)."""
        _, h, w = self.latent_grid()
        return h * w * int(self.components["transformer"].config.in_channels)

    def scheduler_step(
        self,
        model_output: torch.Tensor,
        t: torch.Tensor,
        latents: torch.Tensor,
        step_index: int,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """Step everything after latent frame 0 (the rest of the video, then the audio); frame 0 (the image) stays."""
        n = self._frame0_size()
        rest = super().scheduler_step(model_output[:, n:], t, latents[:, n:], step_index, generator)
        return torch.cat([latents[:, :n], rest], dim=1)

    def step_log_prob(
        self,
        model_output: torch.Tensor,
        t: torch.Tensor,
        latents: torch.Tensor,
        prev_latents: torch.Tensor,
        step_index: int,
    ) -> torch.Tensor:
        """The log-density of the stepped entries (frame 0 is the image's, not sampled)."""
        n = self._frame0_size()
        return super().step_log_prob(model_output[:, n:], t, latents[:, n:], prev_latents[:, n:], step_index)
