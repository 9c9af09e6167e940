"""Building block for flow-matching diffusion-transformer (DiT) video backbones in the diffusers layout.

What every diffusers DiT video model (Wan, CogVideoX, LTX-Video, HunyuanVideo, Mochi ...) shares, so that
a new family is a small plugin that supplies only its text encoding, latent shapes, denoiser call and
decoding:

* the **scheduler**: diffusers' flow-matching samplers, chosen by ``options.scheduler``: ``auto`` (the
  default: the sampler the checkpoint ships, by its scheduler configuration's ``_class_name``), ``unipc``
  (``UniPCMultistepScheduler`` with flow sigmas and a flow shift, Wan's) or ``euler``
  (``FlowMatchEulerDiscreteScheduler``, LTX-Video's and HunyuanVideo's), both built from the checkpoint's
  own scheduler configuration; ``flow_shift`` overrides the shift;
* the **timesteps**: :meth:`DiTT2VBackbone.set_timesteps` calls the scheduler's ``set_timesteps`` with the
  keyword arguments of the one hook :meth:`DiTT2VBackbone.timestep_kwargs` (``mu`` for a scheduler with
  dynamic shifting, a ``sigmas`` list where the stock pipeline passes one) and records the chain's public
  ``scheduler.sigmas`` for the stochastic step;
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
  and the block list by :meth:`checkpoint_blocks`: the repeated blocks as diffusers names them
  (:func:`repeated_blocks`).

Nothing here assumes integer timesteps, ``alphas_cumprod`` or epsilon prediction: the timesteps are
whatever the scheduler returns (floats ``1000 * sigma`` for these samplers) and are passed through.
Subclasses: the ``wan`` plugin; docs/plugins.md walks through writing one.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

from pydantic import Field

from .backbone import BackboneOptions, BackbonePlugin
from .errors import ConfigError
from .lazy import torch


class FlowMatchOptions(BackboneOptions):
    scheduler: Literal["auto", "unipc", "euler"] = Field(
        "auto",
        description="Sampler: `auto` (the one the checkpoint ships: its scheduler config's class), `unipc` "
        "(UniPC multistep on flow sigmas) or `euler` (flow-match Euler).",
    )
    flow_shift: float | None = Field(
        None,
        gt=0,
        description="Shift of the flow-matching sigmas; null: the checkpoint's scheduler config. For a checkpoint "
        "whose scheduler shifts dynamically (`use_dynamic_shifting`: the shift follows the resolution), a value "
        "turns dynamic shifting off and shifts by this constant instead.",
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
        """The sampler ``options.scheduler`` names, from the checkpoint's scheduler ``config`` (the whole saved
        configuration: dynamic shifting and its parameters are kept)."""
        from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

        config = dict(config or {})
        shift = self.options.flow_shift if self.options.flow_shift is not None else checkpoint_shift(config)
        saved = config.get("_class_name")
        kind = self.options.scheduler
        if kind == "auto":
            kind = "euler" if saved == "FlowMatchEulerDiscreteScheduler" else "unipc"
        # An explicit flow_shift replaces the resolution-dependent (dynamic) shift by this constant.
        static = {"use_dynamic_shifting": False} if self.options.flow_shift is not None else {}
        if kind == "unipc":
            base = (
                config
                if saved == "UniPCMultistepScheduler"
                else {**DEFAULT_UNIPC_CONFIG, "num_train_timesteps": config.get("num_train_timesteps", 1000)}
            )
            return UniPCMultistepScheduler.from_config(base, flow_shift=shift, **static)
        base = (
            config
            if saved == "FlowMatchEulerDiscreteScheduler"
            else {"num_train_timesteps": config.get("num_train_timesteps", 1000)}
        )
        return FlowMatchEulerDiscreteScheduler.from_config(base, shift=shift, **static)

    def timestep_kwargs(self, steps: int) -> dict[str, Any]:
        """Keyword arguments of the scheduler's ``set_timesteps`` for a chain of ``steps`` steps, besides the step
        count and the device: the one hook for a family's timesteps.

        Return what the family's stock pipeline passes: ``{"mu": ...}`` for a scheduler with dynamic shifting
        (``use_dynamic_shifting``; diffusers' ``calculate_shift`` of the latent sequence length), ``{"sigmas":
        [...]}`` for a custom sigma list. Default: none. The base does the rest (:meth:`set_timesteps`)."""
        return {}

    def set_timesteps(self, steps: int) -> list[Any]:
        """Set the scheduler's chain with :meth:`timestep_kwargs` and record its public ``sigmas`` (read by
        :meth:`sigma` and the stochastic step). Families override :meth:`timestep_kwargs`, not this."""
        sched = self.scheduler
        kwargs = self.timestep_kwargs(steps)
        if getattr(sched.config, "use_dynamic_shifting", False) and kwargs.get("mu") is None:
            raise ConfigError(
                f"backbone `{self.name}`: the scheduler shifts its sigmas dynamically (use_dynamic_shifting) and "
                "needs `mu`: return it from timestep_kwargs() (docs/plugins.md), or set `backbone.flow_shift`"
            )
        sched.set_timesteps(steps, device=self.device, **kwargs)
        if hasattr(sched, "set_begin_index"):
            sched.set_begin_index(0)  # as the stock pipelines do: the step counter starts at 0
        self.chain_sigmas: list[float] = sched.sigmas.detach().to("cpu", torch.float64).tolist()
        return list(sched.timesteps)

    def sigma(self, step_index: int) -> float:
        """Noise level of step ``step_index`` of the current chain (``x = (1 - s) x0 + s noise``)."""
        return self.chain_sigmas[step_index]

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
        s_safe = self.sigma(1) if s >= 1.0 and len(self.chain_sigmas) > 2 else s
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
        """The repeated blocks of every denoiser (:func:`repeated_blocks`); a denoiser without any raises."""
        return [b for m in self.denoisers() for b in repeated_blocks(m)]


def repeated_blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated transformer blocks of a diffusers model, found as diffusers names them: the modules whose
    class the model lists in ``_repeated_blocks`` (what its regional compilation uses), else the list
    ``transformer_blocks``, else ``blocks``. Raises :class:`~vader_core.errors.ConfigError` when none is found,
    rather than leaving block checkpointing to recompute nothing."""
    names = set(getattr(type(model), "_repeated_blocks", None) or ())
    if names:
        found = [m for m in model.modules() if type(m).__name__ in names]
        # outermost only: a listed block never holds another listed one in the checkpoint list
        inner = {id(c) for b in found for c in list(b.modules())[1:]}
        found = [b for b in found if id(b) not in inner]
        if found:
            return found
    for attr in ("transformer_blocks", "blocks"):
        blocks = getattr(model, attr, None)
        if isinstance(blocks, torch.nn.ModuleList) and len(blocks):
            return list(blocks)
    raise ConfigError(
        f"{type(model).__name__} names no repeated blocks (no `_repeated_blocks`, `transformer_blocks` or `blocks`): "
        "override checkpoint_blocks() to list the denoiser's blocks"
    )
