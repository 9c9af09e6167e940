"""Building block for flow-matching diffusion-transformer (DiT) video backbones in the diffusers layout.

What every diffusers DiT video model (Wan, CogVideoX, LTX-Video, HunyuanVideo, Mochi ...) shares, so that
a new family is a small plugin that supplies only its text encoding, latent shapes, denoiser call and
decoding:

* the **scheduler**: diffusers' flow-matching samplers, chosen by ``options.scheduler``: ``unipc``
  (``UniPCMultistepScheduler`` with flow sigmas and a flow shift, Wan's default) or ``euler``
  (``FlowMatchEulerDiscreteScheduler``), both built from the checkpoint's own scheduler configuration;
  ``flow_shift`` overrides the shift;
* a **stochastic step with a log-probability** for policy-gradient methods (``ddpo``): flow-matching
  samplers integrate an ODE and are deterministic, so with ``eta > 0`` the step is the Euler-Maruyama
  step of the reverse-time SDE with the ODE's marginals (Flow-GRPO, Liu et al. 2025, eq. 9-10 there)::

      std      = eta * sqrt(sigma / (1 - sigma))            (sigma = 1 is replaced by the next sigma)
      mean     = x * (1 + std^2 / (2 sigma) * dt) + v * (1 + std^2 (1 - sigma) / (2 sigma)) * dt
      x_next   = mean + std * sqrt(-dt) * noise,   dt = sigma_next - sigma < 0

  where ``v`` is the predicted velocity; :meth:`step_log_prob` is the Gaussian log-density of exactly
  this step. With ``eta = 0`` the configured diffusers scheduler steps (deterministic);
* **gradient checkpointing** through the library's own per-block switch
  (``enable_gradient_checkpointing``), reported to the core by :meth:`native_gradient_checkpointing`,
  and the block list (``transformer.blocks``) by :meth:`checkpoint_blocks`.

Nothing here assumes integer timesteps, ``alphas_cumprod`` or epsilon prediction: the timesteps are
whatever the scheduler returns (floats ``1000 * sigma`` for these samplers) and are passed through.
Subclass: the ``wan`` plugin.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

from pydantic import Field

from .backbone import BackboneOptions, BackbonePlugin
from .errors import ConfigError
from .lazy import torch


class FlowMatchOptions(BackboneOptions):
    scheduler: Literal["unipc", "euler"] = Field(
        "unipc",
        description="Sampler: `unipc` (UniPC multistep on flow sigmas) or `euler` (flow-match Euler).",
    )
    flow_shift: float | None = Field(
        None,
        gt=0,
        description="Shift of the flow-matching sigmas; null: the checkpoint's scheduler config.",
    )
    eta: float = Field(
        0.0,
        ge=0.0,
        description="Noise level of the stochastic (SDE) step; 0: the deterministic scheduler. "
        "Policy-gradient methods (`ddpo`) need eta > 0 (Flow-GRPO uses 0.7).",
    )
    negative_prompt: str = Field("", description="Negative prompt for classifier-free guidance.")
    revision: str | None = Field(None, description="Hub revision of the weights.")


#: The scheduler configuration a flow-matching checkpoint without one gets (UniPC, flow prediction).
DEFAULT_UNIPC_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "prediction_type": "flow_prediction",
    "use_flow_sigmas": True,
    "flow_shift": 1.0,
    "solver_order": 2,
    "solver_type": "bh2",
    "predict_x0": True,
    "lower_order_final": True,
    "final_sigmas_type": "zero",
    "timestep_spacing": "linspace",
    "steps_offset": 0,
}


def checkpoint_shift(config: dict[str, Any] | None) -> float:
    """The flow shift a saved scheduler configuration names (UniPC ``flow_shift``, Euler ``shift``)."""
    config = config or {}
    for key in ("flow_shift", "shift"):
        if config.get(key) is not None:
            return float(config[key])
    return 1.0


class DiTT2VBackbone(BackbonePlugin):
    """Shared steps of flow-matching diffusers DiT video backbones (scheduler, SDE step, checkpointing)."""

    Options: ClassVar[type[BackboneOptions]] = FlowMatchOptions
    options: FlowMatchOptions
    denoiser_name = "transformer"
    #: Names of the components that are denoisers (LoRA goes on ``denoiser_name``; all are checkpointed).
    denoiser_names: ClassVar[tuple[str, ...]] = ("transformer",)

    # -------------------------------------------------------------- scheduler
    def make_scheduler(self, config: dict[str, Any] | None = None) -> Any:
        """The sampler ``options.scheduler`` names, from the checkpoint's scheduler ``config``."""
        from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

        config = dict(config or {})
        shift = self.options.flow_shift if self.options.flow_shift is not None else checkpoint_shift(config)
        saved = config.get("_class_name")
        if self.options.scheduler == "unipc":
            base = (
                config
                if saved == "UniPCMultistepScheduler"
                else {**DEFAULT_UNIPC_CONFIG, "num_train_timesteps": config.get("num_train_timesteps", 1000)}
            )
            return UniPCMultistepScheduler.from_config(base, flow_shift=shift)
        base = (
            config
            if saved == "FlowMatchEulerDiscreteScheduler"
            else {"num_train_timesteps": config.get("num_train_timesteps", 1000)}
        )
        return FlowMatchEulerDiscreteScheduler.from_config(base, shift=shift)

    def set_timesteps(self, steps: int) -> list[Any]:
        sched = self.scheduler
        sched.set_timesteps(steps, device=self.device)
        if hasattr(sched, "set_begin_index"):
            sched.set_begin_index(0)  # as the stock pipelines do: the step counter starts at 0
        self._sigmas = sched.sigmas.detach().to("cpu", torch.float64).tolist()
        return list(sched.timesteps)

    def sigma(self, step_index: int) -> float:
        """Noise level of step ``step_index`` of the current chain (``x = (1 - s) x0 + s noise``)."""
        return self._sigmas[step_index]

    def scheduler_step(
        self,
        model_output: torch.Tensor,
        t: torch.Tensor,
        latents: torch.Tensor,
        step_index: int,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        if self.options.eta > 0:
            from diffusers.utils.torch_utils import randn_tensor

            mean, std = self.sde_step_mean_std(model_output, latents, step_index)
            noise = randn_tensor(latents.shape, generator=generator, device=latents.device, dtype=torch.float32)
            return (mean + std * noise).to(latents.dtype)
        return self.scheduler.step(model_output, t, latents, return_dict=False)[0]

    def sde_step_mean_std(
        self, model_output: torch.Tensor, latents: torch.Tensor, step_index: int
    ) -> tuple[torch.Tensor, float]:
        """Mean and standard deviation of the Flow-GRPO SDE step from ``latents`` at ``step_index``."""
        s, s_next = self.sigma(step_index), self.sigma(step_index + 1)
        dt = s_next - s
        s_safe = self.sigma(1) if s >= 1.0 and len(self._sigmas) > 2 else s
        std_t = self.options.eta * math.sqrt(s / max(1.0 - s_safe, 1e-12))
        x, v = latents.float(), model_output.float()
        mean = x * (1 + std_t**2 / (2 * s) * dt) + v * (1 + std_t**2 * (1 - s) / (2 * s)) * dt
        return mean, std_t * math.sqrt(-dt)

    def step_log_prob(
        self,
        model_output: torch.Tensor,
        t: torch.Tensor,
        latents: torch.Tensor,
        prev_latents: torch.Tensor,
        step_index: int,
    ) -> torch.Tensor:
        """Gaussian log-density, per video (mean over latent elements), of ``prev_latents`` under the SDE
        step that :meth:`scheduler_step` samples from when ``eta > 0``."""
        if self.options.eta <= 0:
            raise ConfigError(
                f"backbone `{self.name}` samples a deterministic ODE with eta=0; policy-gradient "
                "methods need its stochastic SDE step: set sampling.eta=0.7 (Flow-GRPO's noise level)"
            )
        mean, std = self.sde_step_mean_std(model_output, latents, step_index)
        logp = -((prev_latents.float() - mean) ** 2) / (2 * std**2) - math.log(std) - 0.5 * math.log(2 * math.pi)
        return logp.mean(dim=tuple(range(1, logp.ndim)))

    # -------------------------------------------------------------- memory
    def denoisers(self) -> list[Any]:
        return [self.components[n] for n in self.denoiser_names if self.components.get(n) is not None]

    def native_gradient_checkpointing(self, enabled: bool) -> bool:
        for model in self.denoisers():
            model.enable_gradient_checkpointing() if enabled else model.disable_gradient_checkpointing()
        return True

    def checkpoint_blocks(self) -> list[torch.nn.Module]:
        return [b for m in self.denoisers() for b in getattr(m, "blocks", [])]
