"""Building block for text-to-video backbones in the diffusers layout of ModelScope T2V.

``UNet3DConditionModel`` + ``AutoencoderKL`` + CLIP text encoder + a diffusers scheduler, the
components of ``TextToVideoSDPipeline``. The steps reproduce that pipeline exactly (same noise from
the same generator, same guidance, same scheduler calls), so ``vader generate`` matches it.
The ``unet/`` folder may instead hold a ``UNetMotionModel`` (AnimateDiff's layout: a 2D UNet with
temporal attention modules that carry frame-position embeddings); it is fed the text once per frame,
as diffusers' ``AnimateDiffPipeline`` does.
Subclasses: the built-in ``tiny`` and ``toy`` backbones and the ``modelscope`` plugin.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, cast

from pydantic import Field

from .backbone import BackboneOptions, BackbonePlugin
from .errors import ConfigError, MissingWeightsError
from .hub import missing_weights
from .lazy import torch


class UNetT2VOptions(BackboneOptions):
    scheduler: Literal["ddim", "dpmsolver"] = Field("ddim", description="Sampler: `ddim` or `dpmsolver` (multistep).")
    negative_prompt: str = Field("", description="Negative prompt for classifier-free guidance.")
    revision: str | None = Field(None, description="Hub revision of the weights.")


#: diffusers video UNets these steps drive: ``(B, C, F, H, W)`` latents, text through ``encoder_hidden_states``.
SUPPORTED_UNETS: tuple[str, ...] = ("UNet3DConditionModel", "UNetMotionModel")


def takes_text_per_frame(unet: Any) -> bool:
    """Whether ``unet`` expects the text once per frame, ``(B * F, tokens, dim)``.

    ``UNetMotionModel`` runs its spatial layers on frames as a batch and expects one copy of the text per
    frame (``AnimateDiffPipeline`` repeats the prompt embeddings); ``UNet3DConditionModel`` repeats it itself.
    """
    return type(unet).__name__ == "UNetMotionModel"


class UNetT2VBackbone(BackbonePlugin):
    """Text-to-video with the components of diffusers' ``TextToVideoSDPipeline``."""

    Options: ClassVar[type[BackboneOptions]] = UNetT2VOptions
    options: UNetT2VOptions
    conditioning = "text"
    denoiser_name = "unet"
    default_model: ClassVar[str | None] = None
    #: Option that points at a local copy, for error messages.
    model_option: ClassVar[str] = "backbone.model"
    #: Set by ``setup``: the UNet takes the text once per frame (``UNetMotionModel``).
    text_per_frame: bool = False

    # -------------------------------------------------------------- loading
    def load(self, device: torch.device | str, dtype: torch.dtype) -> None:
        from diffusers import AutoencoderKL, AutoModel
        from transformers import CLIPTextModel, CLIPTokenizer

        source = self.options.model or self.default_model
        if source is None:
            raise ConfigError(f"backbone `{self.name}` needs `{self.model_option}` (hub id or local directory)")
        local = Path(source).expanduser()
        kw: dict[str, Any] = {"revision": self.options.revision} if self.options.revision else {}
        if local.exists():
            if not (local / "unet").is_dir():
                raise MissingWeightsError(
                    f"{local} is not a diffusers model directory (no unet/); point `{self.model_option}` at "
                    "the folder written by save_pretrained"
                )
            source, kw = str(local), {}
        try:
            # The class saved in unet/config.json (``_class_name``) decides which diffusers UNet this is.
            unet = AutoModel.from_pretrained(source, subfolder="unet", torch_dtype=dtype, **kw)
            vae = AutoencoderKL.from_pretrained(source, subfolder="vae", torch_dtype=dtype, **kw)
            text_encoder = CLIPTextModel.from_pretrained(source, subfolder="text_encoder", torch_dtype=dtype, **kw)
            tokenizer = CLIPTokenizer.from_pretrained(source, subfolder="tokenizer", **kw)
        except OSError as e:
            raise missing_weights(source, e, option=self.model_option) from None
        if type(unet).__name__ not in SUPPORTED_UNETS:
            raise ConfigError(
                f"`{source}` holds a {type(unet).__name__} in unet/; backbone `{self.name}` drives "
                f"{' or '.join(SUPPORTED_UNETS)}: pick the backbone plugin made for that model"
            )
        self.setup(
            {
                "unet": unet,
                "vae": vae,
                "text_encoder": text_encoder,
                "tokenizer": tokenizer,
                "scheduler": self.make_scheduler(self._scheduler_config(source, kw)),
            },
            device,
            dtype,
        )

    def _scheduler_config(self, source: str, kw: dict[str, Any]) -> dict[str, Any] | None:
        from diffusers import DDIMScheduler

        try:
            return dict(DDIMScheduler.load_config(source, subfolder="scheduler", **kw))
        except (OSError, ValueError):
            return None

    def make_scheduler(self, config: dict[str, Any] | None = None) -> Any:
        """The sampler chosen by ``options.scheduler``, from the model's scheduler config."""
        from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

        base = dict(config or self.default_scheduler_config())
        cls = DDIMScheduler if self.options.scheduler == "ddim" else DPMSolverMultistepScheduler
        return cls.from_config(base)

    def default_scheduler_config(self) -> dict[str, Any]:
        return {
            "num_train_timesteps": 1000,
            "beta_start": 0.00085,
            "beta_end": 0.012,
            "beta_schedule": "scaled_linear",
            "clip_sample": False,
            "set_alpha_to_one": False,
            "steps_offset": 1,
            "prediction_type": "epsilon",
        }

    def setup(self, components: dict[str, Any], device: torch.device | str, dtype: torch.dtype) -> None:
        """Install components: moved to ``device``, cast to ``dtype``, frozen, eval mode."""
        self.install_components(components, device, dtype)
        self.text_per_frame = takes_text_per_frame(components["unet"])
        vae = components["vae"]
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)

    def save_pretrained(self, directory: str | Path) -> None:
        """Write the components in the diffusers layout (loadable by ``load`` and by diffusers)."""
        d = Path(directory)
        for name in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
            self.components[name].save_pretrained(d / name)

    # -------------------------------------------------------------- memory
    def checkpoint_blocks(self) -> list[torch.nn.Module]:
        """Every layer (resnet, temporal convolution, spatial / temporal / motion transformer, down- and
        upsampler) of the UNet's down, mid and up blocks, and ``UNet3DConditionModel``'s input temporal
        transformer: each a few percent of a call's activations (ModelScope's full-resolution up block
        alone holds a third of them)."""
        from .checkpointing import layers_of

        unet: Any = self.denoiser  # a diffusers video UNet: its blocks are attributes, not in torch's stubs
        extra = [unet.transformer_in] if isinstance(getattr(unet, "transformer_in", None), torch.nn.Module) else []
        return extra + layers_of(*unet.down_blocks, unet.mid_block, *unet.up_blocks)

    def decoder_checkpoint_blocks(self) -> list[torch.nn.Module]:
        """The resnets, attention and upsamplers of the VAE decoder's mid and up blocks."""
        from .checkpointing import layers_of

        dec = self.components["vae"].decoder
        return layers_of(dec.mid_block, *dec.up_blocks)

    def condition_encoders(self) -> dict[str, torch.nn.Module]:
        return {"text_encoder": self.components["text_encoder"]}

    # -------------------------------------------------------------- steps
    @property
    def do_cfg(self) -> bool:
        return self.options.guidance > 1.0

    def _embed(self, texts: Sequence[str]) -> torch.Tensor:
        tok = self.components["tokenizer"]
        ids = tok(
            list(texts), padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt"
        ).input_ids.to(self.device)
        return self.components["text_encoder"](ids)[0]

    def encode_condition(self, prompts: Sequence[str], images: Sequence[Any] | None = None) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            emb = self._embed(prompts)
            if self.do_cfg:
                neg = self._embed([self.options.negative_prompt] * len(prompts))
                emb = torch.cat([neg, emb])
        return {"encoder_hidden_states": emb}

    def latent_shape(self, batch_size: int) -> tuple[int, ...]:
        o = self.options
        c = self.components["unet"].config.in_channels
        return (batch_size, c, o.frames, o.height // self.vae_scale_factor, o.width // self.vae_scale_factor)

    def prepare_latents(self, batch_size: int, generator: torch.Generator | None, cond: Any = None) -> torch.Tensor:
        from diffusers.utils.torch_utils import randn_tensor

        latents = randn_tensor(self.latent_shape(batch_size), generator=generator, device=self.device, dtype=self.dtype)
        return latents * self.scheduler.init_noise_sigma

    def predict(
        self, latents: torch.Tensor, t: torch.Tensor, cond: dict[str, torch.Tensor], step_index: int
    ) -> torch.Tensor:
        from .checkpointing import run_guided

        x = torch.cat([latents] * 2) if self.do_cfg else latents
        x = self.scheduler.scale_model_input(x, t)
        text = cond["encoder_hidden_states"]
        if self.text_per_frame:
            text = text.repeat_interleave(x.shape[2], dim=0)

        def unet(x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
            return self.denoiser(x, t, encoder_hidden_states=text, return_dict=False)[0]

        out = run_guided(unet, x, text) if self.do_cfg else unet(x, text)
        if self.do_cfg:
            uncond, text = out.chunk(2)
            out = uncond + self.options.guidance * (text - uncond)
        return out

    def scheduler_step(
        self,
        model_output: torch.Tensor,
        t: torch.Tensor,
        latents: torch.Tensor,
        step_index: int,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        from diffusers import DDIMScheduler

        b, c, f, h, w = latents.shape
        flat = latents.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        out = model_output.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        if isinstance(self.scheduler, DDIMScheduler) and self.options.eta > 0:
            from diffusers.utils.torch_utils import randn_tensor

            # The stochastic step from the Gaussian step_log_prob scores; the noise drawn as diffusers draws it.
            mean, std = self._ddim_gaussian(out, t, flat)
            noise = randn_tensor(out.shape, generator=generator, device=out.device, dtype=out.dtype)
            prev = (mean + std * noise).to(flat.dtype)
        else:
            kwargs: dict[str, Any] = {}
            if self.options.scheduler == "ddim":
                kwargs = {"eta": self.options.eta, "generator": generator}
            elif generator is not None:
                kwargs = {"generator": generator}
            prev = self.scheduler.step(out, t, flat, **kwargs, return_dict=False)[0]
        return prev.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)

    def _ddim_gaussian(
        self, model_output: torch.Tensor, t: torch.Tensor, latents: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of DDIM's stochastic step (Song et al., eq. 12, eta = ``options.eta``) as
        diffusers' ``DDIMScheduler.step`` computes them (prediction type, ``clip_sample``), in float32.

        ``1 - a_prev - std^2`` is clamped at 0: at the first step of a zero-terminal-SNR schedule (``a_t = 0``,
        eta 1) it is 0 exactly, and diffusers' rounding makes it slightly negative, so its square root (and
        every later step) was NaN; the toy model's schedule is one of those."""
        sched = cast(Any, self.scheduler)  # DDIMScheduler's state and config are set at run time, unannotated
        if sched.config.thresholding:
            from .errors import ConfigError

            raise ConfigError(
                "the stochastic DDIM step (sampling.eta > 0) does not take the scheduler's dynamic thresholding: "
                "set sampling.eta=0 or a scheduler config with thresholding false"
            )
        ac = sched.alphas_cumprod.to(latents.device)
        t_int = int(t)
        prev_t = t_int - sched.config.num_train_timesteps // sched.num_inference_steps
        a_t = ac[t_int]
        a_prev = ac[prev_t] if prev_t >= 0 else sched.final_alpha_cumprod.to(latents.device)
        x, eps = latents.float(), model_output.float()
        kind = sched.config.prediction_type
        if kind == "epsilon":
            x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        elif kind == "v_prediction":
            x0 = a_t.sqrt() * x - (1 - a_t).sqrt() * eps
            eps = a_t.sqrt() * eps + (1 - a_t).sqrt() * x
        else:
            x0 = eps
            eps = (x - a_t.sqrt() * x0) / (1 - a_t).sqrt()
        if sched.config.clip_sample:
            x0 = x0.clamp(-sched.config.clip_sample_range, sched.config.clip_sample_range)
        variance = (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)
        std = self.options.eta * variance.clamp(min=0).sqrt()
        mean = a_prev.sqrt() * x0 + (1 - a_prev - std**2).clamp(min=0).sqrt() * eps
        return mean, std

    def step_log_prob(
        self,
        model_output: torch.Tensor,
        t: torch.Tensor,
        latents: torch.Tensor,
        prev_latents: torch.Tensor,
        step_index: int,
    ) -> torch.Tensor:
        """Gaussian log-density of a DDIM step with ``eta > 0`` (the DDPO policy), per video.

        Mean and standard deviation are :meth:`_ddim_gaussian`'s (diffusers' ``DDIMScheduler.step``, Song et
        al., eq. 12), the Gaussian ``scheduler_step`` samples from.
        """
        import math

        from diffusers import DDIMScheduler

        sched = self.scheduler
        if not isinstance(sched, DDIMScheduler) or self.options.eta <= 0:
            from .errors import ConfigError

            raise ConfigError(
                "this method needs a stochastic DDIM sampler: set backbone.scheduler=ddim and sampling.eta=1.0"
            )
        mean, std = self._ddim_gaussian(model_output, t, latents)
        std = std.clamp(min=1e-10)  # the last step of a schedule ending at alpha 1 adds no noise
        logp = -((prev_latents.float() - mean) ** 2) / (2 * std**2) - std.log() - math.log(math.sqrt(2 * math.pi))
        return logp.mean(dim=tuple(range(1, logp.ndim)))

    def decode(
        self,
        latents: torch.Tensor,
        frames: Sequence[int] | None = None,
        chunk_size: int | None = None,
        cond: Any = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        # ``generator`` is unused: these VAEs decode deterministically.
        vae = self.components["vae"]
        if frames is not None:
            latents = latents[:, :, list(frames)]
        b, c, f, h, w = latents.shape
        # 1 / s * x, not x / s: the stock pipeline's rounding, so frames match it to the last bit.
        flat = 1 / vae.config.scaling_factor * latents.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        step = chunk_size or flat.shape[0]
        images = torch.cat([vae.decode(flat[i : i + step]).sample for i in range(0, flat.shape[0], step)])
        video = images.reshape(b, f, *images.shape[1:]).float()
        return (video / 2 + 0.5).clamp(0, 1)
