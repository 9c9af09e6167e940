"""``videocrafter2``: VideoCrafter2 text-to-video (``VideoCrafter/VideoCrafter2``, ``model.ckpt``) as a vader backbone.

Components: the LVDM 3D UNet (:mod:`vader_videocrafter.unet`), the Stable Diffusion VAE as diffusers'
``AutoencoderKL``, the OpenCLIP ViT-H-14 text tower read at its penultimate block, all three filled
from the one official checkpoint (:mod:`vader_videocrafter.checkpoint`), and the official DDIM sampler.

The sampler is the official ``DDIMSampler`` with VideoCrafter2's ``use_scale``: timesteps
``range(0, 1000, 1000 // steps) + 1`` (diffusers' DDIM with ``timestep_spacing="leading"`` and
``steps_offset=1``; see :func:`ddim_timesteps` for step counts that do not divide 1000), the last step going to ``alphas_cumprod[0]`` (``set_alpha_to_one=False``),
``eta`` noise, and the predicted clean latents rescaled by ``scale_arr[t_prev] / scale_arr[t]``
(``scale_arr`` falls linearly from 1 to 0.7 over the first 400 training timesteps, then stays at
0.7). Without the rescale, a step is exactly diffusers' ``DDIMScheduler.step``; the backbone keeps a
``DDIMScheduler`` configured like the official schedule as its ``scheduler`` component and computes
the step itself. Guidance: the unconditional branch encodes the empty prompt (``uncond_type:
empty_seq``); the frame rate enters the UNet as a tensor, for both branches.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from vader_core.backbone import BackboneOptions
from vader_core.checkpointing import reject_folded_options, run_guided
from vader_core.errors import ConfigError, MissingWeightsError
from vader_core.hub import missing_weights
from vader_core.lazy import torch
from vader_core.unet_t2v import UNetT2VBackbone, UNetT2VOptions

HUB_ID = "VideoCrafter/VideoCrafter2"
CHECKPOINT_FILE = "model.ckpt"

#: The official ``first_stage_config`` (``ddconfig``: ch 128, ch_mult [1, 2, 4, 4], 2 res blocks, z 4) in
#: diffusers' ``AutoencoderKL`` terms, with the model's ``scale_factor`` 0.18215.
VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "act_fn": "silu",
    "sample_size": 512,
    "scaling_factor": 0.18215,
}

#: The official noise schedule: ``linear_start``/``linear_end`` of LDM's "linear" schedule (diffusers'
#: "scaled_linear"), 1000 steps, epsilon prediction; ``use_scale`` with ``scale_b`` 0.7 (``scale_a`` 1,
#: ``mid_step`` 400, ``fix_scale_bug`` false: the defaults of ``LatentDiffusion``).
SCHEDULE: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "linear_start": 0.00085,
    "linear_end": 0.012,
    "use_scale": True,
    "scale_a": 1.0,
    "scale_b": 0.7,
    "mid_step": 400,
    "fix_scale_bug": False,
}


class VideoCrafterOptions(UNetT2VOptions):
    model: str | None = Field(
        HUB_ID,
        description=f"Hub id (file `{CHECKPOINT_FILE}`), local checkpoint file (.ckpt/.pt/.safetensors) "
        f"or directory holding `{CHECKPOINT_FILE}`.",
    )
    height: int = Field(320, ge=16, multiple_of=8, description="Frame height in pixels (multiple of 8).")
    width: int = Field(512, ge=16, multiple_of=8, description="Frame width in pixels (multiple of 8).")
    frames: int = Field(12, ge=1, description="Number of frames generated (VADER trains on 12).")
    steps: int = Field(25, ge=1, le=999, description="DDIM steps.")
    guidance: float = Field(
        12.0,
        ge=0.0,
        description="Classifier-free guidance scale: `uncond + g (text - uncond)`; exactly 1 skips the "
        "unconditional branch (as the official sampler).",
    )
    eta: float = Field(1.0, ge=0.0, description="DDIM stochasticity (1.0, the official; 0 = deterministic).")
    fps: int = Field(24, ge=1, description="Frame rate fed to the UNet's fps conditioning.")
    scheduler: Literal["ddim"] = Field("ddim", description="Sampler: `ddim` (the official DDIM sampler).")
    allow_pickle: bool = Field(
        False,
        description="Unpickle Python objects in a .ckpt (weights_only=False); only for files you trust.",
    )

    @model_validator(mode="before")
    @classmethod
    def _folded(cls, data: Any) -> Any:
        return reject_folded_options(data, ("block_checkpointing",))


def lvdm_alphas_cumprod(schedule: dict[str, Any] = SCHEDULE) -> torch.Tensor:
    """``alphas_cumprod`` of the official ``register_schedule``: computed in float64, kept in float32."""
    n = schedule["num_train_timesteps"]
    betas = torch.linspace(schedule["linear_start"] ** 0.5, schedule["linear_end"] ** 0.5, n, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0).float()


def lvdm_scale_arr(schedule: dict[str, Any] = SCHEDULE) -> torch.Tensor | None:
    """VideoCrafter2's ``scale_arr`` (``None`` without ``use_scale``); 1400 entries with the official
    ``fix_scale_bug: false``, of which only the first 1000 are ever read."""
    if not schedule["use_scale"]:
        return None
    n, mid = schedule["num_train_timesteps"], schedule["mid_step"]
    ramp = torch.linspace(schedule["scale_a"], schedule["scale_b"], mid, dtype=torch.float64)
    rest = torch.full((n - mid if schedule["fix_scale_bug"] else n,), schedule["scale_b"], dtype=torch.float64)
    return torch.cat([ramp, rest]).float()


def ddim_timesteps(steps: int, num_train_timesteps: int = 1000) -> list[int]:
    """DDIM timesteps, ascending: ``i * (T // steps) + 1`` for ``i < steps``.

    The official uniform spacing ``range(0, T, T // steps) + 1`` when ``steps`` divides ``T`` (25, 50, ...),
    and diffusers' "leading" spacing with ``steps_offset=1`` always. Where ``steps`` does not divide ``T``
    the official one makes extra steps (31 for 30) or indexes past the schedule (3 gives 1000) and fails;
    this one makes exactly ``steps`` steps with the same stride.
    """
    if not 1 <= steps < num_train_timesteps:  # 1000 steps would need timestep 1000 (the +1 offset)
        raise ConfigError(f"`backbone.steps` must be between 1 and {num_train_timesteps - 1}, got {steps}")
    return [i * (num_train_timesteps // steps) + 1 for i in range(steps)]


class VideoCrafterBackbone(UNetT2VBackbone):
    """VideoCrafter2 (LVDM 3D UNet, SD VAE, OpenCLIP ViT-H-14 text) with the official DDIM sampler."""

    name = "videocrafter2"
    summary = "VideoCrafter2 text-to-video (VideoCrafter/VideoCrafter2 model.ckpt; 320x512, 12 frames, DDIM, fps 24)."
    Options: ClassVar[type[BackboneOptions]] = VideoCrafterOptions
    default_model: ClassVar[str | None] = HUB_ID
    default_lora_targets = ("to_q", "to_k", "to_v")  # the VADER code's peft targets
    #: Noise schedule of the sampler (the official one).
    schedule: ClassVar[dict[str, Any]] = SCHEDULE
    #: Configurations the checkpoint is read into: ``unet_config``, ``vae_config``, ``text_config``
    #: (empty: the official 512 model's). Tests point them at the tiny ones.
    architecture: ClassVar[dict[str, Any]] = {}

    # -------------------------------------------------------------- loading
    def checkpoint_path(self) -> Path:
        """The local checkpoint file: ``options.model`` as a file or directory, else downloaded from the hub."""
        source = self.options.model or HUB_ID
        local = Path(source).expanduser()
        if local.is_dir():
            local = local / CHECKPOINT_FILE
            if not local.is_file():
                raise MissingWeightsError(
                    f"{local.parent} has no {CHECKPOINT_FILE}; point `backbone.model` at the checkpoint file"
                )
        if local.is_file():
            return local
        if source.startswith((".", "/", "~")) or source.endswith((".ckpt", ".pt", ".pth", ".safetensors")):
            raise MissingWeightsError(
                f"no checkpoint at {local}; point `backbone.model` at VideoCrafter2's "
                f"{CHECKPOINT_FILE} or use the hub id {HUB_ID}"
            )
        from huggingface_hub import hf_hub_download

        try:
            return Path(hf_hub_download(source, CHECKPOINT_FILE, revision=self.options.revision))
        except Exception as e:  # noqa: BLE001 - offline, missing file, bad id, network: all need the same action
            raise missing_weights(
                source,
                e,
                option="backbone.model",
                filename=CHECKPOINT_FILE,
                files=[CHECKPOINT_FILE],
                local=f"a local {CHECKPOINT_FILE}",
            ) from None

    def load(self, device: torch.device | str, dtype: torch.dtype) -> None:
        from .checkpoint import check_schedule, read_state_dict

        path = self.checkpoint_path()
        sd = read_state_dict(path, allow_pickle=self.options.allow_pickle)
        check_schedule(sd, lvdm_alphas_cumprod(self.schedule), lvdm_scale_arr(self.schedule), str(path))
        self.load_state_dict_components(sd, str(path), device, dtype, **self.architecture)

    def load_state_dict_components(
        self,
        sd: dict[str, Any],
        source: str,
        device: torch.device | str,
        dtype: torch.dtype,
        unet_config: dict[str, Any] | None = None,
        vae_config: dict[str, Any] | None = None,
        text_config: dict[str, Any] | None = None,
    ) -> None:
        """Fill the components (built on the meta device, so no memory is spent twice) from a VideoCrafter2
        state dict; the configurations default to the official 512 model's."""
        import open_clip
        from diffusers import AutoencoderKL

        from .checkpoint import split_and_check
        from .text_encoder import ARCH, OpenCLIPTextEncoder, build_openclip_text_model, tokenizer
        from .unet import LVDMUNet3DModel

        with torch.device("meta"):
            unet = LVDMUNet3DModel(**(unet_config or {}))
            vae = AutoencoderKL(**(vae_config or VAE_CONFIG))
        text = OpenCLIPTextEncoder(build_openclip_text_model(text_config or open_clip.get_model_config(ARCH), "meta"))
        modules = {"unet": unet, "vae": vae, "text_encoder": text}
        expected = {k: {n: t.shape for n, t in m.state_dict().items()} for k, m in modules.items()}
        parts = split_and_check(sd, expected, vae.config, source)
        for k, m in modules.items():
            m.load_state_dict(parts[k], strict=True, assign=True)
        text.rebuild_buffers()
        self.setup({**modules, "tokenizer": tokenizer(), "scheduler": self.make_scheduler()}, device, dtype)

    def load_tiny(self, device: Any, dtype: Any, seed: int = 0) -> None:
        """Tiny random components of the real architectures (UNet, VAE, OpenCLIP text tower) for tests."""
        from .tiny import tiny_components

        self.setup({**tiny_components(seed), "scheduler": self.make_scheduler()}, device, dtype)

    def setup(self, components: dict[str, Any], device: torch.device | str, dtype: torch.dtype) -> None:
        for m in components.values():  # cast here: diffusers' own .to() warns about casting
            if isinstance(m, torch.nn.Module):
                torch.nn.Module.to(m, dtype=dtype)
        super().setup(components, device, dtype)

    def checkpoint_blocks(self) -> list[torch.nn.Module]:
        """Every residual block, spatial and temporal transformer and down/upsampler of the LVDM UNet (the
        layers the official ``use_checkpoint`` recomputes), recomputed by the core."""
        return self.denoiser.checkpoint_layers()

    def condition_encoders(self) -> dict[str, torch.nn.Module]:
        return {"text_encoder": self.components["text_encoder"]}

    def make_scheduler(self, config: dict[str, Any] | None = None) -> Any:
        """diffusers' ``DDIMScheduler`` configured like the official schedule (the container of its
        configuration; the step itself, with VideoCrafter2's rescale, is :meth:`scheduler_step`)."""
        from diffusers import DDIMScheduler

        sch = self.schedule
        return DDIMScheduler(
            num_train_timesteps=sch["num_train_timesteps"],
            beta_start=sch["linear_start"],
            beta_end=sch["linear_end"],
            beta_schedule="scaled_linear",
            clip_sample=False,
            set_alpha_to_one=False,
            steps_offset=1,
            timestep_spacing="leading",
            prediction_type="epsilon",
        )

    def save_pretrained(self, directory: str | Path) -> None:
        raise NotImplementedError("videocrafter2 loads the official model.ckpt; there is no diffusers layout to save")

    # -------------------------------------------------------------- steps
    @property
    def do_cfg(self) -> bool:
        """As the official DDIM sampler: the unconditional branch is skipped only at exactly 1 (scales below 1 mix
        it in too, unlike diffusers' pipelines, which skip it for every scale <= 1)."""
        return self.options.guidance != 1.0

    def _embed(self, texts: Sequence[str]) -> torch.Tensor:
        enc = self.components["text_encoder"]
        ids = self.components["tokenizer"](list(texts), context_length=enc.context_length).to(self.device)
        return enc(ids)

    def encode_condition(self, prompts: Sequence[str], images: Sequence[Any] | None = None) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            emb = self._embed(prompts)
            if self.do_cfg:
                # uncond_type "empty_seq": the unconditional branch encodes the empty prompt
                emb = torch.cat([self._embed([self.options.negative_prompt] * len(prompts)), emb])
        fps = torch.full((emb.shape[0],), self.options.fps, dtype=torch.long, device=self.device)
        return {"encoder_hidden_states": emb, "fps": fps}

    def set_timesteps(self, steps: int) -> Sequence[torch.Tensor]:
        """The official DDIM chain: timesteps (descending) and, per step, the schedule values it reads."""
        ascending = ddim_timesteps(steps, self.schedule["num_train_timesteps"])
        ac = lvdm_alphas_cumprod(self.schedule).double()
        idx = torch.tensor(ascending)
        a_t = ac[idx]
        a_prev = torch.cat([ac[:1], ac[idx[:-1]]])
        sigma = self.options.eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)).sqrt()
        scale = lvdm_scale_arr(self.schedule)
        if scale is None:
            s_t = s_prev = torch.ones_like(a_t)
        else:
            s_t, s_prev = scale[idx].double(), torch.cat([scale[:1], scale[idx[:-1]]]).double()
        # One row per sampling step (descending timesteps), as float32 like the official buffers.
        self._chain = torch.stack([a_t, a_prev, sigma, s_t, s_prev], dim=1).flip(0).float().to(self.device)
        return [torch.tensor(t, device=self.device) for t in reversed(ascending)]

    def predict(
        self, latents: torch.Tensor, t: torch.Tensor, cond: dict[str, torch.Tensor], step_index: int
    ) -> torch.Tensor:
        x = torch.cat([latents] * 2) if self.do_cfg else latents
        ts = t.reshape(-1).expand(x.shape[0]).to(self.device)

        def unet(x: torch.Tensor, ts: torch.Tensor, text: torch.Tensor, fps: torch.Tensor) -> torch.Tensor:
            return self.denoiser(x, ts, text, fps=fps)

        args = (x, ts, cond["encoder_hidden_states"], cond["fps"])
        out = run_guided(unet, *args) if self.do_cfg else unet(*args)
        if self.do_cfg:
            uncond, text = out.chunk(2)
            out = uncond + self.options.guidance * (text - uncond)
        return out

    def _step_mean_std(
        self, eps: torch.Tensor, latents: torch.Tensor, step_index: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        a_t, a_prev, sigma, s_t, s_prev = self._chain[step_index]
        x, eps = latents.float(), eps.float()
        pred_x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        dir_xt = (1.0 - a_prev - sigma**2).sqrt() * eps
        return a_prev.sqrt() * s_prev * (pred_x0 / s_t) + dir_xt, sigma

    def scheduler_step(
        self,
        model_output: torch.Tensor,
        t: torch.Tensor,
        latents: torch.Tensor,
        step_index: int,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        from diffusers.utils.torch_utils import randn_tensor

        mean, sigma = self._step_mean_std(model_output, latents, step_index)
        if float(sigma) > 0:
            mean = mean + sigma * randn_tensor(
                latents.shape, generator=generator, device=latents.device, dtype=mean.dtype
            )
        return mean.to(latents.dtype)

    def step_log_prob(
        self,
        model_output: torch.Tensor,
        t: torch.Tensor,
        latents: torch.Tensor,
        prev_latents: torch.Tensor,
        step_index: int,
    ) -> torch.Tensor:
        """Gaussian log-density of the official DDIM step (the DDPO policy), per video."""
        mean, sigma = self._step_mean_std(model_output, latents, step_index)
        if float(sigma) <= 0:
            raise ConfigError("this method needs a stochastic sampler: set sampling.eta (backbone.eta) > 0")
        logp = -((prev_latents.float() - mean) ** 2) / (2 * sigma**2) - sigma.log() - math.log(math.sqrt(2 * math.pi))
        return logp.mean(dim=tuple(range(1, logp.ndim)))
