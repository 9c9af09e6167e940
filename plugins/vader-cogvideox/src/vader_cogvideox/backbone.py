"""``cogvideox`` and ``cogvideox-i2v``: CogVideoX 1.0 / 1.5 through diffusers as vader backbones.

The components of diffusers' ``CogVideoXPipeline`` / ``CogVideoXImageToVideoPipeline``:
``CogVideoXTransformer3DModel``, ``AutoencoderKLCogVideoX``, the T5 v1.1 XXL encoder and its tokenizer, and the
checkpoint's scheduler (``CogVideoXDDIMScheduler`` or ``CogVideoXDPMScheduler``, v-prediction). The steps
reproduce the stock pipelines' arithmetic and draw from the generator in the same order (the image latents of
image-to-video, the initial latents, the DPM sampler's step noise), so with the same seed and options
``vader generate`` gives their frames:

* text: ``max_sequence_length`` T5 tokens (the transformer's ``max_text_seq_length``, 226), no attention mask,
  as the pipeline encodes them; guidance ``uncond + g (text - uncond)`` on one doubled batch when ``g > 1`` (the
  pipeline's ``do_classifier_free_guidance``), optionally with the pipeline's ``use_dynamic_cfg`` schedule;
* latents float32 ``(B, F, C, H / 8, W / 8)`` (frames before channels, the pipeline's layout) with
  ``F = (frames - 1) / 4 + 1`` latent frames, padded at the front to a multiple of the transformer's temporal
  patch (CogVideoX 1.5: 2), the padding dropped before decoding, as the pipeline does;
* 3D rotary embeddings (CogVideoX-5B, 1.5) computed as the pipeline computes them; image-to-video: the image's
  VAE latents (sampled from the generator) in the first latent frame, zeros after, concatenated on channels;
  CogVideoX 1.5 I2V's ``ofs`` embedding at 2.0;
* samplers: the DDIM step (deterministic), or the DPM-Solver++ (2M SDE) step, which draws its noise from the
  generator and carries the previous step's ``x0`` prediction: chain state, held by the scheduler beside its own
  as diffusers' multistep schedulers hold their previous outputs, reset by :meth:`set_timesteps`.

**Frames and subsampling.** The VAE is causal and decodes the latent frames in groups (2, and the odd first one
with the first group): pixel frame 0 comes from latent frame 0, pixel frames ``4k - 3 .. 4k`` from latent frame
``k``, each depending on its group and every earlier one. The unit of frame subsampling is the pixel frame:
:meth:`num_latent_frames` returns the frame count and ``decode(latents, frames)`` decodes only the groups up to
the one that holds the last chosen frame (the same groups as a full decode, hence the same values) and keeps the
chosen frames. The frame count is ``8k + 1`` (81 for CogVideoX 1.5, 49 for 1.0): an odd number of latent frames,
so that the decoded video has exactly ``frames`` frames.

**Policy gradients.** ``eta > 0`` (with the DDIM sampler) replaces the deterministic step by DDIM's stochastic
step (Song et al., eq. 12; the DDPO policy) on the checkpoint's own noise schedule, whose Gaussian log-density is
:meth:`step_log_prob`; its last step ends at the first training timestep's noise level (``alphas_cumprod[0]``)
instead of exactly zero noise, so that every step of the policy has a variance. The DPM sampler is stochastic
too, but its step depends on the previous step's prediction: ``ddpo`` needs ``scheduler=ddim``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from vader_core.backbone import BackboneOptions, BackbonePlugin
from vader_core.checkpointing import gradient_only_in_calls, run_guided
from vader_core.errors import ConfigError, MissingWeightsError
from vader_core.hub import missing_weights
from vader_core.lazy import torch

COGVIDEOX_1_5_5B = "THUDM/CogVideoX1.5-5B"
COGVIDEOX_1_5_5B_I2V = "THUDM/CogVideoX1.5-5B-I2V"
COGVIDEOX_5B = "THUDM/CogVideoX-5b"
COGVIDEOX_5B_I2V = "THUDM/CogVideoX-5b-I2V"
COGVIDEOX_2B = "THUDM/CogVideoX-2b"

SCHEDULERS = {"ddim": "CogVideoXDDIMScheduler", "dpm": "CogVideoXDPMScheduler"}


def nearest_frame_counts(frames: int) -> tuple[int, int]:
    """The valid frame counts (``8k + 1``) just below and above ``frames``."""
    below = max((frames - 1) // 8 * 8 + 1, 1)
    return below, below + 8


class CogVideoXOptions(BackboneOptions):
    model: str | None = Field(
        COGVIDEOX_1_5_5B, description=f"Hub id or local diffusers directory (`{COGVIDEOX_1_5_5B}`)."
    )
    height: int = Field(768, ge=16, description="Frame height in pixels (a multiple of 16).")
    width: int = Field(1360, ge=16, description="Frame width in pixels (a multiple of 16).")
    frames: int = Field(
        81, ge=1, description="Frames generated: 8k + 1 (81 for CogVideoX 1.5 at 16 fps, 49 for 1.0 at 8 fps)."
    )
    steps: int = Field(50, ge=1, description="Denoising steps.")
    guidance: float = Field(
        6.0, ge=0.0, description="Classifier-free guidance; at most 1 skips the unconditional branch (as the pipeline)."
    )
    scheduler: Literal["auto", "ddim", "dpm"] = Field(
        "auto",
        description="Sampler: `auto` (the one the checkpoint ships: its scheduler config's class), `ddim` "
        "(CogVideoXDDIMScheduler) or `dpm` (CogVideoXDPMScheduler, DPM-Solver++ 2M SDE, which the CogVideoX "
        "team recommends for the 5B models, with use_dynamic_cfg).",
    )
    use_dynamic_cfg: bool = Field(
        False,
        description="The pipeline's `use_dynamic_cfg`: guidance rises from 1 to 1 + g along a cosine schedule "
        "over the chain (the CogVideoX team uses it with the DPM sampler).",
    )
    eta: float = Field(
        0.0,
        ge=0.0,
        description="DDIM's eta: 0 is the deterministic DDIM step; > 0 the stochastic step policy-gradient "
        "methods (`ddpo`) need (DDPO uses 1.0); needs the ddim sampler.",
    )
    negative_prompt: str = Field("", description="Negative prompt for classifier-free guidance.")
    max_sequence_length: int | None = Field(
        None, ge=1, description="T5 tokens; null: the transformer's `max_text_seq_length` (226)."
    )
    vae_tiling: bool = Field(
        False,
        description="Decode in overlapping spatial tiles (the VAE's `enable_tiling()` with its default tiles, as "
        "the CogVideoX team's demo runs 1.5; the frames differ slightly from an untiled decode). With gradient "
        "each tile's decoder call is recomputed on its own in backward: at 768x1360 decoding frame 0 with "
        "gradient takes about 17 GiB instead of 61 (see the README).",
    )
    vae_history_gradient: bool = Field(
        False,
        description="Backpropagate a decoded frame's reward into the earlier groups of latent frames it depends on "
        "through the causal VAE's cache (the exact gradient, but every earlier group's decode is stored). Off: "
        "the earlier groups decode without gradient; the frames are the same either way.",
    )
    revision: str | None = Field(None, description="Hub revision of the weights.")

    @field_validator("frames")
    @classmethod
    def _eight_k_plus_one(cls, v: int) -> int:
        if v % 8 != 1:
            lo, hi = nearest_frame_counts(v)
            near = f"{lo} or {hi}" if lo != v else str(hi)
            raise ValueError(
                f"must be 8k+1 for CogVideoX (the VAE compresses time 4x and decodes an odd number of latent "
                f"frames to exactly 4k+1 frames): use {near}"
            )
        return v


class CogVideoXI2VOptions(CogVideoXOptions):
    model: str | None = Field(
        COGVIDEOX_1_5_5B_I2V, description=f"Hub id or local diffusers directory (`{COGVIDEOX_1_5_5B_I2V}`)."
    )


@dataclass
class CogVideoXCondition:
    """What ``predict`` needs besides the latents (opaque to the core)."""

    prompt_embeds: Any  # (B, L, D); with guidance: (2B, L, D), negative first
    pixels: Any = None  # image-to-video: the preprocessed images (B, 3, H, W) in [-1, 1]
    image_latents: Any = None  # image-to-video: filled in by prepare_latents, (B, F, C, h, w)


class CogVideoXBackbone(BackbonePlugin):
    """CogVideoX 1.0 / 1.5 text-to-video with the components of diffusers' ``CogVideoXPipeline``."""

    name = "cogvideox"
    summary = (
        "CogVideoX 1.0 / 1.5 text-to-video (THUDM/CogVideoX1.5-5B; 768x1360, 81 frames, v-prediction, "
        "CogVideoX DDIM / DPM)."
    )
    Options: ClassVar[type[BackboneOptions]] = CogVideoXOptions
    conditioning = "text"
    denoiser_name = "transformer"
    default_lora_targets = ("to_q", "to_k", "to_v", "to_out.0")
    model_option: ClassVar[str] = "backbone.model"
    pipeline_class: ClassVar[str] = "CogVideoXPipeline"
    #: VAE 8x times the transformer's 2x2 patch.
    size_multiple: ClassVar[int] = 16

    def __init__(self, options: BackboneOptions | None = None) -> None:
        super().__init__(options)
        self._timesteps: list[Any] = []

    # -------------------------------------------------------------- loading
    def load(self, device: torch.device | str, dtype: torch.dtype) -> None:
        """Load the pipeline's components from ``options.model`` (hub id or local diffusers directory).

        Honours ``HF_HUB_OFFLINE``; missing weights raise :class:`MissingWeightsError`, one line naming the
        hub id and ``backbone.model``.
        """
        from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXTransformer3DModel
        from transformers import AutoTokenizer, T5EncoderModel

        source = self.options.model or self.Options().model or COGVIDEOX_1_5_5B
        kw: dict[str, Any] = {"revision": self.options.revision} if self.options.revision else {}
        local = Path(source).expanduser()
        if local.exists():
            parts = ("transformer", "vae", "text_encoder", "tokenizer", "scheduler")
            missing = [s for s in parts if not (local / s).is_dir()]
            if missing:
                raise MissingWeightsError(
                    f"{local} is not a diffusers CogVideoX directory (no {', '.join(m + '/' for m in missing)}); "
                    f"point `{self.model_option}` at the folder written by {self.pipeline_class}.save_pretrained"
                )
            source, kw = str(local), {}
        try:
            comps: dict[str, Any] = {
                "transformer": CogVideoXTransformer3DModel.from_pretrained(
                    source, subfolder="transformer", torch_dtype=dtype, **kw
                ),
                "vae": AutoencoderKLCogVideoX.from_pretrained(source, subfolder="vae", torch_dtype=dtype, **kw),
                "text_encoder": T5EncoderModel.from_pretrained(
                    source, subfolder="text_encoder", torch_dtype=dtype, **kw
                ),
                "tokenizer": AutoTokenizer.from_pretrained(source, subfolder="tokenizer", **kw),
            }
            sched = dict(CogVideoXDDIMScheduler.load_config(source, subfolder="scheduler", **kw))
        except (OSError, ValueError) as e:
            raise missing_weights(source, e, option=self.model_option, what="CogVideoX weights") from None
        comps["scheduler"] = self.make_scheduler(sched)
        self.setup(comps, device, dtype)

    def load_tiny(self, device: torch.device | str, dtype: torch.dtype, seed: int = 0) -> None:
        """Tiny random components of the CogVideoX 1.5 architecture (DDIM, v-prediction), for tests."""
        from .tiny import scheduler_config, tiny_components

        comps = tiny_components(seed, self.tiny_variant)
        comps["scheduler"] = self.make_scheduler(scheduler_config("ddim"))
        self.setup(comps, device, dtype)

    #: The :mod:`vader_cogvideox.tiny` variant ``load_tiny`` builds.
    tiny_variant: ClassVar[str] = "1.5"

    def make_scheduler(self, config: dict[str, Any] | None = None) -> Any:
        """The sampler ``options.scheduler`` names, from the checkpoint's scheduler ``config`` (``auto``: the
        class the checkpoint names)."""
        import diffusers

        config = dict(config or {})
        kind = self.options.scheduler
        cls_name = config.get("_class_name") if kind == "auto" else SCHEDULERS[kind]
        if cls_name not in SCHEDULERS.values():
            cls_name = SCHEDULERS["ddim"]
        return getattr(diffusers, cls_name).from_config(config)

    def setup(self, components: dict[str, Any], device: torch.device | str, dtype: torch.dtype) -> None:
        """Install components: moved to ``device``, cast to ``dtype``, frozen, eval mode; check the sizes."""
        from diffusers.video_processor import VideoProcessor

        self.install_components(components, device, dtype)
        vae, tr = components["vae"], components["transformer"]
        self.vae_spatial = 2 ** (len(vae.config.block_out_channels) - 1)
        self.vae_temporal = int(vae.config.temporal_compression_ratio)
        self.video_processor = VideoProcessor(vae_scale_factor=self.vae_spatial)
        o = self.options
        vae.enable_tiling() if o.vae_tiling else vae.disable_tiling()
        multiple = self.vae_spatial * int(tr.config.patch_size)
        if o.height % multiple or o.width % multiple:
            raise ConfigError(
                f"`backbone.height` and `backbone.width` must be multiples of {multiple} for this checkpoint "
                f"(VAE {self.vae_spatial}x, patch {tr.config.patch_size}), got {o.height}x{o.width}"
            )
        if tr.config.use_learned_positional_embeddings and (
            o.height != tr.config.sample_height * self.vae_spatial
            or o.width != tr.config.sample_width * self.vae_spatial
        ):
            raise ConfigError(
                f"this checkpoint's learned position embeddings fix the size to "
                f"{tr.config.sample_height * self.vae_spatial}x{tr.config.sample_width * self.vae_spatial} "
                f"(CogVideoX-5B-I2V); set backbone.height and backbone.width to it, got {o.height}x{o.width}"
            )
        if o.eta > 0 and not self._ddim:
            raise ConfigError(
                "`sampling.eta` > 0 (the stochastic DDIM step) needs the ddim sampler: set backbone.scheduler=ddim"
            )

    def condition_encoders(self) -> dict[str, torch.nn.Module]:
        """T5 v1.1 XXL (9 GiB in bf16): used once per batch, so ``memory.offload_encoders`` keeps it on the CPU."""
        return {"text_encoder": self.components["text_encoder"]}

    def save_pretrained(self, directory: str | Path) -> None:
        """Write the components with the stock pipeline's ``save_pretrained`` (loadable by both)."""
        import diffusers

        getattr(diffusers, self.pipeline_class)(**self.components).save_pretrained(directory)

    # -------------------------------------------------------------- memory
    def native_gradient_checkpointing(self, enabled: bool) -> bool:
        tr = self.components["transformer"]
        tr.enable_gradient_checkpointing() if enabled else tr.disable_gradient_checkpointing()
        return True

    def checkpoint_blocks(self) -> list[torch.nn.Module]:
        """The transformer's ``transformer_blocks``: the blocks diffusers' switch recomputes."""
        from vader_core.dit_t2v import repeated_blocks

        return repeated_blocks(self.components["transformer"])

    def decoder_checkpoint_blocks(self) -> list[torch.nn.Module]:
        """The VAE decoder's mid-block and up-block resnets and upsamplers, recomputed one by one in backward; with
        ``vae_tiling`` the decoder itself, so that each tile's call (one tile of one group of latent frames) is
        recomputed on its own: the activations of one tile at a time, instead of every tile's block boundaries
        (where the frames are larger than one tile)."""
        vae, o = self.components["vae"], self.options
        if vae.use_tiling and (o.height > vae.tile_sample_min_height or o.width > vae.tile_sample_min_width):
            return [vae.decoder]  # (the VAE tiles only frames larger than a tile)
        dec = self.components["vae"].decoder
        blocks: list[torch.nn.Module] = list(dec.mid_block.resnets)
        for up in dec.up_blocks:
            blocks += list(up.resnets) + list(up.upsamplers or [])
        return blocks

    # -------------------------------------------------------------- steps
    @property
    def _ddim(self) -> bool:
        from diffusers import CogVideoXDPMScheduler

        return not isinstance(self.scheduler, CogVideoXDPMScheduler)

    @property
    def do_cfg(self) -> bool:
        return self.options.guidance > 1.0

    @property
    def transformer_dtype(self) -> torch.dtype:
        return self.components["transformer"].dtype

    @property
    def text_length(self) -> int:
        n = self.options.max_sequence_length
        return int(n if n is not None else self.components["transformer"].config.max_text_seq_length)

    def _embed(self, texts: Sequence[str]) -> torch.Tensor:
        tok = self.components["tokenizer"](
            list(texts),
            padding="max_length",
            max_length=self.text_length,
            truncation=True,
            add_special_tokens=True,
            return_tensors="pt",
        )
        emb = self.components["text_encoder"](tok.input_ids.to(self.device))[0]
        return emb.to(self.transformer_dtype)

    def encode_condition(self, prompts: Sequence[str], images: Sequence[Any] | None = None) -> CogVideoXCondition:
        with torch.no_grad():
            emb = self._embed(prompts)
            if self.do_cfg:
                emb = torch.cat([self._embed([self.options.negative_prompt] * len(prompts)), emb])
        return CogVideoXCondition(emb)

    def set_timesteps(self, steps: int) -> list[Any]:
        sched = self.scheduler
        sched.set_timesteps(steps, device=self.device)
        self._timesteps = list(sched.timesteps)
        # The DPM sampler's previous x0 prediction, none before the first step: chain state, held by the scheduler
        # beside its own (as diffusers' multistep schedulers hold their previous outputs), reset with the chain.
        sched.prev_pred_original_sample = None
        return list(self._timesteps)

    @property
    def latent_padding(self) -> int:
        """Latent frames the pipeline adds at the front so that the count divides the temporal patch."""
        n = (self.options.frames - 1) // self.vae_temporal + 1
        p = self.components["transformer"].config.patch_size_t
        return 0 if p is None or n % p == 0 else p - n % p

    def latent_shape(self, batch_size: int) -> tuple[int, ...]:
        o = self.options
        c = self.components["vae"].config.latent_channels
        n = (o.frames - 1) // self.vae_temporal + 1 + self.latent_padding
        return (batch_size, n, c, o.height // self.vae_spatial, o.width // self.vae_spatial)

    def prepare_latents(
        self, batch_size: int, generator: torch.Generator | None, cond: CogVideoXCondition | None = None
    ) -> torch.Tensor:
        from diffusers.utils.torch_utils import randn_tensor

        if cond is not None and cond.pixels is not None:
            self._image_latents(cond, generator)  # the pipeline samples them from the generator first
        latents = randn_tensor(
            self.latent_shape(batch_size), generator=generator, device=self.device, dtype=torch.float32
        )
        return latents * self.scheduler.init_noise_sigma

    def _image_latents(self, cond: CogVideoXCondition, generator: torch.Generator | None) -> None:
        raise ConfigError(f"backbone `{self.name}` is text-to-video; use `cogvideox-i2v` for image-to-video")

    def rotary_embeddings(self, latent_frames: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The 3D rotary embeddings the pipeline builds for ``latent_frames`` (``None``: the model has none)."""
        from diffusers.models.embeddings import get_3d_rotary_pos_embed
        from diffusers.pipelines.cogvideo.pipeline_cogvideox import get_resize_crop_region_for_grid

        cfg = self.components["transformer"].config
        if not cfg.use_rotary_positional_embeddings:
            return None
        p, p_t = cfg.patch_size, cfg.patch_size_t
        gh = self.options.height // (self.vae_spatial * p)
        gw = self.options.width // (self.vae_spatial * p)
        base_w, base_h = cfg.sample_width // p, cfg.sample_height // p
        if p_t is None:
            return get_3d_rotary_pos_embed(
                embed_dim=cfg.attention_head_dim,
                crops_coords=get_resize_crop_region_for_grid((gh, gw), base_w, base_h),
                grid_size=(gh, gw),
                temporal_size=latent_frames,
                device=self.device,
            )
        return get_3d_rotary_pos_embed(
            embed_dim=cfg.attention_head_dim,
            crops_coords=None,
            grid_size=(gh, gw),
            temporal_size=(latent_frames + p_t - 1) // p_t,
            grid_type="slice",
            max_size=(base_h, base_w),
            device=self.device,
        )

    def guidance_at(self, t: torch.Tensor) -> float:
        """The guidance of timestep ``t``: ``options.guidance``, or with ``use_dynamic_cfg`` the pipeline's cosine
        schedule ``1 + g (1 - cos(pi ((steps - t) / steps)^5)) / 2``."""
        g, o = self.options.guidance, self.options
        if not o.use_dynamic_cfg:
            return g
        n = len(self._timesteps) or o.steps
        return 1 + g * ((1 - math.cos(math.pi * ((n - float(t)) / n) ** 5.0)) / 2)

    def predict(
        self, latents: torch.Tensor, t: torch.Tensor, cond: CogVideoXCondition, step_index: int
    ) -> torch.Tensor:
        tr = self.components["transformer"]
        x = self.scheduler.scale_model_input(latents, t)
        if cond.image_latents is not None:
            x = torch.cat([x, cond.image_latents.to(x.dtype)], dim=2)
        x = x.to(self.transformer_dtype)
        rotary = self.rotary_embeddings(latents.shape[1])
        ofs = None if tr.config.ofs_embed_dim is None else x.new_full((1,), 2.0)

        def call(x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
            return tr(
                hidden_states=x,
                encoder_hidden_states=emb,
                timestep=t.expand(x.shape[0]),
                ofs=ofs,
                image_rotary_emb=rotary,
                return_dict=False,
            )[0]

        if self.do_cfg:
            # the unconditional and conditional halves one after the other at a kept step (memory.split_guidance)
            out = run_guided(call, torch.cat([x, x]), cond.prompt_embeds).float()
            uncond, text = out.chunk(2)
            return uncond + self.guidance_at(t) * (text - uncond)
        return call(x, cond.prompt_embeds).float()

    def scheduler_step(
        self,
        model_output: torch.Tensor,
        t: torch.Tensor,
        latents: torch.Tensor,
        step_index: int,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        sched = self.scheduler
        if not self._ddim:
            back = self._timesteps[step_index - 1] if step_index > 0 else None
            old = sched.prev_pred_original_sample if step_index > 0 else None
            prev, sched.prev_pred_original_sample = sched.step(
                model_output, old, t, back, latents, eta=0.0, generator=generator, return_dict=False
            )
            return prev
        if self.options.eta > 0:
            from diffusers.utils.torch_utils import randn_tensor

            mean, std = self._ddim_mean_std(model_output, t, latents)
            noise = randn_tensor(latents.shape, generator=generator, device=latents.device, dtype=torch.float32)
            return mean + std * noise
        return sched.step(model_output, t, latents, eta=0.0, generator=generator, return_dict=False)[0]

    def _ddim_mean_std(
        self, model_output: torch.Tensor, t: torch.Tensor, latents: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of DDIM's stochastic step (eta = ``options.eta``) on the scheduler's noise
        schedule, v-prediction; the last step ends at ``alphas_cumprod[0]`` (see the module docstring)."""
        sched = self.scheduler
        ac = sched.alphas_cumprod.to(latents.device, torch.float64)
        t_int = int(t)
        prev_t = t_int - sched.config.num_train_timesteps // sched.num_inference_steps
        a_t, a_prev = ac[t_int], ac[max(prev_t, 0)]
        x, v = latents.double(), model_output.double()
        x0 = a_t.sqrt() * x - (1 - a_t).sqrt() * v
        eps = a_t.sqrt() * v + (1 - a_t).sqrt() * x
        variance = (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)
        std = self.options.eta * variance.clamp(min=0).sqrt()
        mean = a_prev.sqrt() * x0 + (1 - a_prev - std**2).clamp(min=0).sqrt() * eps
        return mean.float(), std.float()

    def step_log_prob(
        self,
        model_output: torch.Tensor,
        t: torch.Tensor,
        latents: torch.Tensor,
        prev_latents: torch.Tensor,
        step_index: int,
    ) -> torch.Tensor:
        """Gaussian log-density, per video (mean over latent elements), of ``prev_latents`` under the stochastic
        DDIM step :meth:`scheduler_step` samples from when ``eta > 0``."""
        if not self._ddim or self.options.eta <= 0:
            raise ConfigError(
                f"backbone `{self.name}`: policy-gradient methods need the stochastic DDIM step: set "
                "backbone.scheduler=ddim and sampling.eta=1.0 (DDPO's)"
            )
        mean, std = self._ddim_mean_std(model_output, t, latents)
        logp = -((prev_latents.float() - mean) ** 2) / (2 * std**2) - std.log() - 0.5 * math.log(2 * math.pi)
        return logp.mean(dim=tuple(range(1, logp.ndim)))

    # -------------------------------------------------------------- decoding
    def num_latent_frames(self, latents: torch.Tensor) -> int:
        """Pixel frames the latents decode to: the unit of frame subsampling (see the module docstring)."""
        return (int(latents.shape[1]) - self.latent_padding - 1) * self.vae_temporal + 1

    def latent_frame_of(self, frame: int) -> int:
        """The latent frame (after the padding is dropped) that pixel frame ``frame`` is decoded from."""
        return 0 if frame == 0 else (frame - 1) // self.vae_temporal + 1

    def decoded_prefix(self, latent_frame: int, total: int) -> int:
        """Latent frames to decode for ``latent_frame``: up to the end of the VAE's group that holds it (groups of
        ``num_latent_frames_batch_size``, the remainder with the first), so the groups match a full decode's."""
        size = int(getattr(self.components["vae"], "num_latent_frames_batch_size", 2))
        r = total % size
        if total < size:
            return total
        group = max(0, (latent_frame - r) // size)
        return min(total, size * (group + 1) + r)

    def _group_of(self, latent_frame: int, total: int) -> int:
        """The VAE's group (its decoder call, in order) that decodes ``latent_frame`` of ``total``."""
        size = int(getattr(self.components["vae"], "num_latent_frames_batch_size", 2))
        return max(0, (latent_frame - total % size) // size) if total >= size else 0

    def decode(
        self,
        latents: torch.Tensor,
        frames: Sequence[int] | None = None,
        chunk_size: int | None = None,
        cond: CogVideoXCondition | None = None,
    ) -> torch.Tensor:
        """Decode pixel frames ``frames`` (all if ``None``): the VAE's groups up to the last one they need; with
        gradient, only the groups that hold a chosen frame record autograd (unless ``vae_history_gradient``).

        ``chunk_size`` has no effect: the CogVideoX VAE always decodes its groups of latent frames one after the
        other through its causal cache (that is its chunking).
        """
        vae = self.components["vae"]
        n = self.num_latent_frames(latents)
        idx = list(range(n)) if frames is None else [int(f) for f in frames]
        if any(f < 0 or f >= n for f in idx):
            raise ConfigError(f"frames {idx} outside the {n} frames of these latents")
        z = latents[:, self.latent_padding :]
        z = z[:, : self.decoded_prefix(self.latent_frame_of(max(idx)), z.shape[1])]
        z = z.permute(0, 2, 1, 3, 4).to(vae.dtype) / vae.config.scaling_factor
        if torch.is_grad_enabled() and z.requires_grad and not self.options.vae_history_gradient:
            # The VAE calls its decoder once per group, in order (with tiling, for each tile in turn).
            keep = {self._group_of(self.latent_frame_of(f), z.shape[2]) for f in idx}
            groups = max(z.shape[2] // int(getattr(vae, "num_latent_frames_batch_size", 2)), 1)
            with gradient_only_in_calls(vae.decoder, keep, groups):
                video = vae.decode(z).sample
        else:
            video = vae.decode(z).sample  # (B, 3, f, H, W) in [-1, 1]
        video = (video / 2 + 0.5).clamp(0, 1)  # the stock postprocess_video
        return video.permute(0, 2, 1, 3, 4)[:, idx].float()


class CogVideoXI2VBackbone(CogVideoXBackbone):
    """CogVideoX image-to-video (CogVideoX1.5-5B-I2V, CogVideoX-5B-I2V) as ``CogVideoXImageToVideoPipeline``."""

    name = "cogvideox-i2v"
    summary = (
        "CogVideoX 1.0 / 1.5 image-to-video (THUDM/CogVideoX1.5-5B-I2V; 768x1360, 81 frames; image from "
        "train.images / --image)."
    )
    Options: ClassVar[type[BackboneOptions]] = CogVideoXI2VOptions
    conditioning = "text+image"
    pipeline_class: ClassVar[str] = "CogVideoXImageToVideoPipeline"
    tiny_variant: ClassVar[str] = "1.5-i2v"

    def encode_condition(self, prompts: Sequence[str], images: Sequence[Any] | None = None) -> CogVideoXCondition:
        if not images:
            raise ConfigError(
                f"backbone `{self.name}` is image-to-video: pass conditioning images (vader generate --image PATH; "
                "for training set `train.images` to a folder of images)"
            )
        if len(images) != len(prompts):
            raise ConfigError(
                f"backbone `{self.name}` needs one image per prompt, got {len(images)} images for {len(prompts)} prompts"
            )
        from vader_core.media import read_image

        images = [read_image(im) if isinstance(im, (str, Path)) else im for im in images]
        cond = super().encode_condition(prompts, None)
        o = self.options
        with torch.no_grad():
            cond.pixels = torch.cat(
                [self.video_processor.preprocess(im, height=o.height, width=o.width) for im in images]
            ).to(self.device, dtype=torch.float32)
        return cond

    def _image_latents(self, cond: CogVideoXCondition, generator: torch.Generator | None) -> None:
        """The image's VAE latents sampled from ``generator`` (one image after the other, as the pipeline), scaled,
        in latent frame 0 with zeros after: ``(B, F, C, h, w)``."""
        from diffusers.pipelines.cogvideo.pipeline_cogvideox_image2video import retrieve_latents

        vae = self.components["vae"]
        with torch.no_grad():
            lat = torch.cat(
                [retrieve_latents(vae.encode(im[None, :, None].to(vae.dtype)), generator) for im in cond.pixels]
            )
        lat = lat.float().permute(0, 2, 1, 3, 4)  # (B, 1, C, h, w)
        s = vae.config.scaling_factor
        lat = lat / s if vae.config.invert_scale_latents else s * lat
        b, n, c, h, w = self.latent_shape(lat.shape[0])
        lat = torch.cat([lat, lat.new_zeros(b, n - 1, c, h, w)], dim=1)
        p = self.components["transformer"].config.patch_size_t
        if p is not None:  # the pipeline's first-frame repeat (a no-op for a padded, divisible count)
            lat = torch.cat([lat[:, : lat.shape[1] % p], lat], dim=1)
        cond.image_latents = lat
