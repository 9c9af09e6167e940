"""Resolution: the one place where a name becomes a plugin class or instance.

Everything above the registry that needs a plugin asks here. :func:`resolve_config` turns a
configuration of names into the configuration that runs: every plugin's options validated by its
``Options`` model and written in, ``sampling`` nulls filled from the backbone, and the checks that only
make sense for the configuration as a whole (one-line errors and ``warning:`` lines, before any weights
load). The ``build_*`` functions make plugin instances from sections of a resolved configuration, and
:func:`resolve_device`, :func:`resolve_precision` and :func:`torch_dtype` choose where and in what
precision a run computes.

torch is imported on first use only (:mod:`vader_core.lazy`): ``vader config`` resolves without it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from . import plugins
from .config import VaderConfig, format_validation_error
from .errors import ConfigError, PluginNotFoundError, warn
from .lazy import torch
from .objective import Objective, Term

if TYPE_CHECKING:  # pragma: no cover
    from .backbone import BackbonePlugin
    from .config import BackboneSection, MethodSection, MetricSection, RewardSection, ValidationSection
    from .method import MethodPlugin
    from .metric import MetricPlugin
    from .reward import RewardPlugin


# ---------------------------------------------------------------------- options
M = TypeVar("M", bound=BaseModel)


def validate_options(model: type[M], data: dict[str, Any] | None, prefix: str) -> M:
    """``model`` validated from ``data``; a :class:`ConfigError` naming ``prefix.field`` and the value if not."""
    try:
        return model.model_validate(data or {})
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, prefix, model=model)) from None


def backbone_class(name: str) -> type[BackbonePlugin]:
    """The backbone class registered as ``name`` (class attributes only, nothing built)."""
    return plugins.get_backbone(name)


def metric_kind(section: MetricSection) -> str:
    """``metric`` or ``reward``: which registry ``section.name`` comes from."""
    if section.kind != "auto":
        return section.kind
    return "metric" if plugins.has("metric", section.name) else "reward"


def metric_class(section: MetricSection) -> type[MetricPlugin] | type[RewardPlugin]:
    """The metric (or reward) class a ``validation.metrics`` entry names."""
    kind = metric_kind(section)
    if section.kind == "auto" and not plugins.has("reward", section.name) and not plugins.has("metric", section.name):
        reg = plugins.registry().entries
        raise PluginNotFoundError(
            f"`validation.metrics`: unknown metric or reward `{section.name}`; metrics: "
            f"{', '.join(sorted(reg['metric'])) or 'none'}; rewards: {', '.join(sorted(reg['reward'])) or 'none'}"
            + plugins.broken_note(section.name)
        )
    return plugins.get_metric(section.name) if kind == "metric" else plugins.get_reward(section.name)


# ---------------------------------------------------------------------- the configuration
def resolve_config(config: VaderConfig) -> VaderConfig:
    """Validate every plugin's options with its ``Options`` model and write the defaults in.

    Also resolves ``sampling`` nulls from the backbone's options, so the written configuration is
    the one that ran. Returns a new, fully resolved configuration.
    """
    data = json.loads(config.model_dump_json())
    backbone_cls = backbone_class(config.backbone.name)
    bopts = validate_options(backbone_cls.Options, config.backbone.options, "backbone")
    for field in ("steps", "guidance", "eta"):
        override = getattr(config.sampling, field)
        if override is not None:
            setattr(bopts, field, override)
        data["sampling"][field] = getattr(bopts, field)
    data["backbone"] = {"name": config.backbone.name, **bopts.model_dump(mode="json")}
    for i, r in enumerate(config.rewards):
        rcls = reward_class(r.name)
        ropts = validate_options(rcls.Options, r.options, f"rewards.{i}")
        data["rewards"][i] = {
            "name": r.name,
            "weight": r.weight,
            "objective": data["rewards"][i]["objective"],
            **ropts.model_dump(mode="json"),
        }
    mcls = plugins.get_method(config.method.name)
    mopts = validate_options(mcls.Options, config.method.options, "method")
    data["method"] = {"name": config.method.name, **mopts.model_dump(mode="json")}
    if config.regularization.kl > 0 and not getattr(mcls, "supports_kl_guard", False):
        raise ConfigError(
            f"method `{config.method.name}` does not apply the KL guard; set regularization.kl=0 or use --method vader"
        )
    # The training chains run `sampling.train_steps` when it is set (validation keeps `steps`).
    steps, which = (
        (config.sampling.train_steps, "sampling.train_steps")
        if config.sampling.train_steps is not None
        else (bopts.steps, "steps")
    )
    if config.truncation.mode == "specific":
        bad = [s for s in config.truncation.steps or [] if not 0 <= s < steps]
        if bad:
            raise ConfigError(f"`truncation.steps` must be in [0, {steps - 1}] ({which}={steps}), got {bad}")
    elif config.truncation.k > steps:
        raise ConfigError(f"`truncation.k` must be <= {which} ({steps}), got {config.truncation.k}")
    names = [r.name for r in config.rewards]
    if len(set(names)) != len(names):
        raise ConfigError(f"each reward may appear once, got {names}")
    check_resolved(config, backbone_cls, bopts)
    data["validation"] = resolve_validation(config.validation)
    return VaderConfig.model_validate(data)


def resolve_validation(v: ValidationSection) -> dict[str, Any]:
    """The ``validation`` section with every metric's options validated and written in; checks that
    ``select`` and ``early_stop`` name ``reward`` or a configured metric."""
    data = json.loads(v.model_dump_json())
    names = []
    for i, m in enumerate(v.metrics):
        cls = metric_class(m)
        opts = validate_options(cls.Options, m.options, f"validation.metrics.{i}")
        data["metrics"][i] = {"name": m.name, "kind": metric_kind(m), **opts.model_dump(mode="json")}
        names.append(m.name)
    if len(set(names)) != len(names):
        raise ConfigError(f"`validation.metrics`: each metric may appear once, got {names}")
    across = [m.name for m in v.metrics if getattr(metric_class(m), "scores", "video") == "seeds"]
    if across and len(set(v.seeds)) < 2:
        raise ConfigError(
            f"`validation.metrics` {across} compare the videos of each prompt across seeds: give at least two "
            f"seeds (`validation.seeds`, e.g. [0, 1]; `--seed 0 --seed 1` in `vader eval`), got {v.seeds}"
        )
    known = {"reward", *names}
    bad = [k for k in v.select if k not in known]
    if bad:
        raise ConfigError(
            f"`validation.select` names {bad}; use `reward` or a `validation.metrics` name ({sorted(known)})"
        )
    if not v.select:
        raise ConfigError("`validation.select` needs at least one weight, e.g. {reward: 1.0}")
    if v.early_stop is not None and v.early_stop.metric not in known:
        raise ConfigError(
            f"`validation.early_stop.metric` is {v.early_stop.metric!r}; use `reward` or a "
            f"`validation.metrics` name ({sorted(known)})"
        )
    return data


def check_resolved(config: Any, backbone_cls: type, bopts: Any) -> None:
    """Errors and warnings about a configuration whose every field is valid on its own."""
    m = int(getattr(backbone_cls, "size_multiple", 1) or 1)
    for side in ("height", "width"):
        v = getattr(bopts, side, None)
        if isinstance(v, int) and v % m:
            lo, hi = (v // m) * m, (v // m + 1) * m
            near = f"{lo} or {hi}" if lo >= m else f"{hi}"
            raise ConfigError(
                f"`backbone.{side}` must be a multiple of {m} for backbone `{config.backbone.name}` (its VAE and "
                f"denoiser halve the size), got {v}; use {near}"
            )
    weights = [r.weight for r in config.rewards]
    if sum(weights) == 0:
        shown = ", ".join(f"{r.name}={r.weight:g}" for r in config.rewards)
        raise ConfigError(
            f"the reward weights sum to 0 ({shown}): the objective means nothing; give the rewards positive "
            "weights, e.g. --reward NAME=1"
        )
    for r in config.rewards:
        if r.weight == 0:
            warn(
                f"reward `{r.name}` has weight 0: it is computed and logged but does not train; remove it or "
                "give it a weight"
            )
    if config.train.prompts is not None and not [p for p in config.train.prompts if str(p).strip()]:
        raise ConfigError(
            "`train.prompts` is an empty list; give prompts, or remove the key to use "
            "`train.prompt_file` or the built-in prompt set"
        )
    if config.validation.prompts is not None and not [p for p in config.validation.prompts if str(p).strip()]:
        raise ConfigError(
            "`validation.prompts` is an empty list; give held-out prompts, or remove the key to use "
            "the prompt set's held-out prompts"
        )
    if not config.validation.seeds:
        raise ConfigError("`validation.seeds` is an empty list; give at least one seed, e.g. [0]")
    frames = getattr(bopts, "frames", None)
    d = config.memory.decoded_frames
    if isinstance(frames, int) and d is not None and d > frames:
        warn(
            f"`memory.decoded_frames` is {d}, above the {frames} frames of `backbone.frames`: every frame is "
            "decoded (the same as `memory.decoded_frames: null`)"
        )


# ---------------------------------------------------------------------- plugins
def build_backbone(section: BackboneSection) -> BackbonePlugin:
    """The backbone a ``backbone`` section names, with its options; nothing loaded yet."""
    return instantiate(backbone_class(section.name), section.options, "backbone")


def load_backbone(
    backbone: BackbonePlugin, device: Any, dtype: Any, *, tiny: bool = False, seed: int = 0
) -> BackbonePlugin:
    """Load ``backbone`` (tiny random components when ``tiny``) and freeze every module: eval mode, no
    gradient. LoRA added later is what trains."""
    if tiny:
        backbone.load_tiny(device, dtype, seed=seed)
    else:
        backbone.load(device, dtype)
    for m in backbone.modules().values():
        m.requires_grad_(False).eval()
    return backbone


def reward_class(name: str) -> type[RewardPlugin]:
    """The reward class registered as ``name`` (class attributes only, nothing built)."""
    return plugins.get_reward(name)


def instantiate(cls: Any, options: dict[str, Any] | None, where: str) -> Any:
    """A plugin of class ``cls`` with ``options`` validated by its ``Options`` (errors name ``where``)."""
    return cls(validate_options(cls.Options, options, where))


def build_reward(name: str, options: dict[str, Any] | None = None, where: str | None = None) -> RewardPlugin:
    """The reward registered as ``name`` with ``options`` (errors name ``where``, default ``name``)."""
    return instantiate(reward_class(name), options, where if where is not None else name)


def build_rewards(sections: Sequence[RewardSection]) -> list[Term]:
    """One objective term per ``rewards`` section: the reward with its options, weight and target."""
    return [
        Term(s.name, build_reward(s.name, s.options, f"rewards.{i}"), s.weight, s.target)
        for i, s in enumerate(sections)
    ]


def build_objective(sections: Sequence[RewardSection]) -> Objective:
    """The weighted objective of the ``rewards`` sections; its rewards are not loaded yet."""
    return Objective(build_rewards(sections))


def build_method(section: MethodSection) -> MethodPlugin:
    """The training method a ``method`` section names, with its options."""
    return instantiate(plugins.get_method(section.name), section.options, "method")


class _RewardAsMetric:
    """A reward used as a guard metric: its raw score, without autograd."""

    def __init__(self, reward: Any) -> None:
        self.reward = reward

    def __call__(self, video: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        with torch.no_grad():
            return self.reward(video, list(prompts)).detach().float().cpu()


def build_metrics(
    sections: Sequence[MetricSection], device: Any, dtype: Any, tiny: bool = False, seed: int = 0
) -> dict[str, Callable[[torch.Tensor, Sequence[str]], torch.Tensor]]:
    """Load every guard metric; name -> callable ``(video (B, F, 3, H, W), prompts) -> (B,)`` on the CPU."""
    out: dict[str, Callable[..., Any]] = {}
    for i, s in enumerate(sections):
        inst = instantiate(metric_class(s), s.options, f"validation.metrics.{i}")
        if tiny:
            inst.load_tiny(device, dtype, seed=seed)
        else:
            inst.load(device, dtype)
        out[s.name] = inst if metric_kind(s) == "metric" else _RewardAsMetric(inst)
    return out


# ---------------------------------------------------------------------- device and precision
def resolve_device(device: str | None) -> torch.device:
    """The torch device ``device`` names (``cpu``, ``cuda:1``, ``mps`` ...); without one, CUDA if a GPU is
    visible, else the CPU. One line when the name is not a device or names a GPU that is not there."""
    if device:
        try:
            probe = torch.device(device)
        except RuntimeError:
            raise ConfigError(f"`device`: not a torch device, got {device!r} (use cpu, cuda, cuda:1, mps)") from None
    else:
        probe = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if probe.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"`device` is {device!r} but no CUDA GPU is visible; use --device cpu")
    return probe


def resolve_precision(precision: str, device: torch.device) -> str:
    """``fp32``, ``bf16`` or ``fp16`` for the configured ``precision`` on ``device`` (``auto``: bf16 where CUDA
    supports it, fp16 on other GPUs, fp32 elsewhere)."""
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "fp32"
    if precision == "fp16" and device.type == "cpu":
        raise ConfigError("`precision`: fp16 needs a GPU; use bf16 or fp32 on CPU")
    return precision


def torch_dtype(precision: str) -> torch.dtype:
    """The torch dtype of a resolved ``precision`` (``fp32``, ``bf16`` or ``fp16``)."""
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
