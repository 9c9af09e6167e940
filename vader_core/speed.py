"""Levers that make a training step faster, each an option of the configuration, all off by default.

A K=1 step of vader runs the whole sampling chain and differentiates only its last calls, so most of a
step's arithmetic is plain inference without gradient: the *prefix*, the calls before the first kept
step. The levers here act on that prefix, or on every call where the result is unchanged:

* ``speed.cache``: diffusers' own cache hooks on the denoiser (``enable_cache`` with a
  ``FirstBlockCacheConfig``, ``TaylorSeerCacheConfig`` or ``PyramidAttentionBroadcastConfig``), switched on at the start of each training chain and off before
  its first kept call, so that no kept call, and no call after it, ever reads a cached value;
* ``sampling.guidance_interval``: prefix calls outside the interval evaluate only the conditional half
  of classifier-free guidance (:func:`vader_core.checkpointing.conditional_only`);
* ``speed.compile``: ``torch.compile`` of the denoiser's repeated blocks (diffusers'
  ``compile_repeated_blocks``), after LoRA was added, so LoRA and block checkpointing run compiled;
* ``speed.attention_backend``: diffusers' ``set_attention_backend`` on the denoiser.

``sampling.train_steps`` (fewer denoising steps for training than for validation) is applied by
:func:`vader_core.sampling.sample_with_grad`. benchmarks B8 measures each lever (docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .checkpointing import conditional_only
from .errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .backbone import BackbonePlugin
    from .config import SamplingSection, SpeedSection

#: ``speed.cache`` names and the diffusers configuration class of each. (FasterCache is left out: it needs the
#: two guidance halves in one batch, and the denoisers that have cache hooks, Wan's, get them one by one.)
CACHES = {
    "first_block": "FirstBlockCacheConfig",
    "taylorseer": "TaylorSeerCacheConfig",
    "pab": "PyramidAttentionBroadcastConfig",
}


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


def set_attention_backend(module: torch.nn.Module, name: str) -> None:
    """diffusers' ``set_attention_backend(name)`` on ``module``; a :class:`ConfigError` of one line when the
    model has no such switch, the name is unknown or the backend's package is not installed."""
    setter = getattr(module, "set_attention_backend", None)
    if setter is None:
        raise ConfigError(
            f"`speed.attention_backend`: the denoiser `{type(module).__name__}` has no diffusers attention "
            "backends; remove the option"
        )
    try:
        setter(name)
    except (ValueError, RuntimeError, ImportError, ModuleNotFoundError) as e:
        raise ConfigError(
            f"`speed.attention_backend: {name}` cannot be used here ({_first_line(e)}); install its package "
            "or pick another backend (`native` is always there)"
        ) from None


def compile_repeated_blocks(module: Any) -> None:
    """diffusers' regional compilation of ``module`` (``compile_repeated_blocks``): each repeated block is
    compiled once and the compiled code reused by all of them."""
    if not getattr(module, "_repeated_blocks", None) or not hasattr(module, "compile_repeated_blocks"):
        raise ConfigError(
            f"`speed.compile`: the denoiser `{type(module).__name__}` declares no repeated blocks for diffusers' "
            "regional compilation (DiTs such as Wan do); set speed.compile=false"
        )
    module.compile_repeated_blocks()


def apply_speed(backbone: BackbonePlugin, speed: SpeedSection) -> None:
    """Install the step-independent levers on the backbone's denoiser (after LoRA was added)."""
    if speed.attention_backend:
        set_attention_backend(backbone.denoiser, speed.attention_backend)
    if speed.compile:
        compile_repeated_blocks(backbone.denoiser)
    if speed.cache != "off":
        check_cache(backbone.denoiser, speed.cache, speed.cache_options)


def cache_config(kind: str, options: dict[str, Any], timestep: Any = None) -> Any:
    """The diffusers cache configuration of ``speed.cache = kind`` with ``options``; ``timestep`` returns the
    current timestep (the attention-broadcast caches ask for it)."""
    import diffusers.hooks as hooks

    cls = getattr(hooks, CACHES[kind])
    opts = dict(options)
    if kind == "pab":
        opts.setdefault("current_timestep_callback", timestep)
    if kind == "pab" and not any(k.endswith("block_skip_range") for k in opts):
        opts["spatial_attention_block_skip_range"] = 2  # PAB's published setting for spatial attention
    try:
        return cls(**opts)
    except TypeError as e:
        raise ConfigError(f"`speed.cache_options` for `{kind}` ({cls.__name__}): {_first_line(e)}") from None


def check_cache(module: Any, kind: str, options: dict[str, Any]) -> None:
    """One-line :class:`ConfigError` unless ``module`` takes the cache ``kind`` with ``options``: enabled once
    and disabled again, so that a bad option or model stops the run before any step."""
    if not hasattr(module, "enable_cache"):
        raise ConfigError(
            f"`speed.cache: {kind}`: the denoiser `{type(module).__name__}` has no diffusers cache hooks "
            "(`enable_cache`; DiTs such as Wan have them); set speed.cache=off"
        )
    try:
        module.enable_cache(cache_config(kind, options, lambda: 0))
    except (ValueError, TypeError, AttributeError) as e:
        raise ConfigError(
            f"`speed.cache: {kind}` does not apply to `{type(module).__name__}` ({_first_line(e)}); "
            "set speed.cache=off or another cache"
        ) from None
    module.disable_cache()


class PrefixPlan:
    """How the no-gradient calls before the first kept step of one training chain run.

    Args:
        backbone: the backbone whose denoiser is cached.
        num_steps (`int`): steps of the chain.
        first_kept (`int`): index of the first kept step (``num_steps`` when none is kept).
        cache (`str`, *optional*): ``speed.cache``; ``"off"`` caches nothing.
        cache_options (`dict`, *optional*): ``speed.cache_options``.
        guidance_interval (`tuple[float, float]`, *optional*): ``sampling.guidance_interval``.
    """

    def __init__(
        self,
        backbone: BackbonePlugin,
        num_steps: int,
        first_kept: int,
        cache: str = "off",
        cache_options: dict[str, Any] | None = None,
        guidance_interval: tuple[float, float] | None = None,
    ) -> None:
        self.backbone = backbone
        self.num_steps = num_steps
        self.first_kept = first_kept
        self.cache = cache
        self.cache_options = dict(cache_options or {})
        self.guidance_interval = guidance_interval
        self._module: Any = None
        self._hooks: list[Any] = []
        self._step = 0
        self._t: Any = None
        self._calls = 0
        self._open: list[Any] = []

    @classmethod
    def for_config(
        cls,
        backbone: BackbonePlugin,
        num_steps: int,
        first_kept: int,
        sampling: SamplingSection | None,
        speed: SpeedSection | None,
    ) -> PrefixPlan | None:
        """The plan of ``sampling`` and ``speed``, or ``None`` when neither asks for anything."""
        interval = sampling.guidance_interval if sampling is not None else None
        cache = speed.cache if speed is not None else "off"
        if interval is None and cache == "off":
            return None
        return cls(backbone, num_steps, first_kept, cache, speed.cache_options if speed else None, interval)

    def guided(self, i: int) -> bool:
        """Whether prefix call ``i`` keeps its unconditional half."""
        if self.guidance_interval is None or i >= self.first_kept:
            return True
        lo, hi = self.guidance_interval
        f = i / self.num_steps
        return lo <= f < hi or (hi >= 1.0 and f >= lo)

    # ------------------------------------------------------------------ the cache
    def _enable(self) -> None:
        module: Any = self.backbone.denoiser  # a diffusers model with cache hooks (checked by check_cache)
        module.enable_cache(cache_config(self.cache, self.cache_options, lambda: int(self._t)))

        def pre(mod: Any, args: Any, kwargs: Any) -> None:
            # One cache state per call of a step (a backbone may call the denoiser twice: conditional, then
            # unconditional), as diffusers' pipelines name them.
            ctx = mod.cache_context(
                f"call{self._calls}", step_index=self._step, num_inference_steps=self.num_steps, timestep=self._t
            )
            ctx.__enter__()
            self._open.append(ctx)
            self._calls += 1

        def post(mod: Any, args: Any, kwargs: Any, out: Any) -> None:
            if self._open:
                self._open.pop().__exit__(None, None, None)

        self._hooks = [
            module.register_forward_pre_hook(pre, with_kwargs=True),
            module.register_forward_hook(post, with_kwargs=True),
        ]
        self._module = module

    def close(self) -> None:
        """Switch the cache off (before the first kept call, and when the chain ends)."""
        if self._module is None:
            return
        for h in self._hooks:
            h.remove()
        while self._open:
            self._open.pop().__exit__(None, None, None)
        self._module.disable_cache()
        self._module, self._hooks = None, []

    @contextlib.contextmanager
    def call(self, i: int, t: Any) -> Iterator[None]:
        """Around the no-gradient call ``i`` (at timestep ``t``) of the prefix."""
        if i >= self.first_kept:
            self.close()
            yield
            return
        if self.cache != "off" and self._module is None:
            self._enable()
        self._step, self._t, self._calls = i, t, 0
        with conditional_only(not self.guided(i)):
            yield
