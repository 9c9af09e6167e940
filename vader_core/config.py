"""The run configuration: nested pydantic sections, and how a file, ``--set`` and flags merge into one.

Precedence: defaults < ``--config file.yaml|toml`` < ``--set a.b=value`` < dedicated CLI flags.
Plugin options live under their plugin (``backbone.options``, ``rewards[i].options``,
``method.options``) and are validated by that plugin's ``Options`` model when the configuration is
resolved (:func:`vader_core.resolve.resolve_config`): this module knows no plugin.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any, Literal

import tomllib
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError
from .options import StrictNumbers


class _Section(StrictNumbers):
    model_config = ConfigDict(extra="forbid", protected_namespaces=(), validate_assignment=True)


class _PluginSection(_Section):
    """A plugin choice; the plugin's own options sit beside ``name`` (validated when the configuration is
    resolved)."""

    model_config = ConfigDict(extra="allow", protected_namespaces=(), validate_assignment=True)

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class BackboneSection(_PluginSection):
    name: str = Field("tiny", description="Backbone plugin name (see `vader plugins`); its options sit beside it.")


class TargetObjective(_Section):
    target: float = Field(..., description="Score to reach; the term is -weight * |score - target|.")


class RewardSection(_PluginSection):
    name: str = Field(..., description="Reward plugin name; its options sit beside it.")
    weight: float = Field(1.0, description="Weight of this reward in the total.")
    objective: Literal["maximize"] | TargetObjective = Field(
        "maximize", description="`maximize` the score, or `{target: x}`: bring it to x (|score - x| as loss)."
    )

    @property
    def target(self) -> float | None:
        return None if self.objective == "maximize" else self.objective.target


class MethodSection(_PluginSection):
    name: str = Field("vader", description="Training method: `vader` (reward backpropagation) or another plugin.")


class LoraSection(_Section):
    rank: int = Field(16, ge=1, description="LoRA rank.")
    alpha: float | None = Field(None, gt=0, description="LoRA alpha; defaults to the rank (scale 1).")
    dropout: float = Field(0.01, ge=0.0, lt=1.0, description="LoRA dropout.")
    target_modules: list[str] | None = Field(
        None, description="Module name suffixes that receive LoRA; default: the backbone's."
    )


class OptimSection(_Section):
    lr: float = Field(2e-4, gt=0, description="AdamW learning rate.")
    betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW betas.")
    weight_decay: float = Field(1e-2, ge=0, description="AdamW weight decay.")
    eps: float = Field(1e-8, gt=0, description="AdamW epsilon.")
    grad_clip: float | None = Field(1.0, gt=0, description="Max gradient norm; null disables clipping.")
    grad_accum: int = Field(8, ge=1, description="Micro-batches accumulated per optimiser step.")
    schedule: Literal["constant", "constant_with_warmup", "linear", "cosine"] = Field(
        "constant", description="Learning-rate schedule."
    )
    warmup_steps: int = Field(0, ge=0, description="Warm-up steps of the schedule.")


class SamplingSection(_Section):
    steps: int | None = Field(None, ge=1, description="Denoising steps; null: the backbone's default.")
    guidance: float | None = Field(None, ge=0, description="Guidance scale; null: the backbone's default.")
    eta: float | None = Field(
        None,
        ge=0,
        description="Sampler stochasticity (DDIM eta, or the noise level of a flow-matching SDE "
        "step); null: the backbone's default.",
    )
    train_steps: int | None = Field(
        None,
        ge=1,
        description="Denoising steps of the training chains only (validation and `vader eval` keep `steps`); "
        "null: `steps`. Fewer steps make a step cheaper (docs/training.md).",
    )
    guidance_interval: tuple[float, float] | None = Field(
        None,
        description="Training chains: the part of the chain, as fractions [start, end) of the steps, whose "
        "no-gradient calls keep classifier-free guidance; the other no-gradient calls before the first kept "
        "step skip the unconditional call. Kept calls are always guided; null: every call guided.",
    )

    @field_validator("guidance_interval")
    @classmethod
    def _interval(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and not 0.0 <= v[0] <= v[1] <= 1.0:
            raise ValueError(
                f"`sampling.guidance_interval` must be [start, end] with 0 <= start <= end <= 1, got {list(v)}"
            )
        return v


class TruncationSection(_Section):
    mode: Literal["last", "rand", "specific"] = Field(
        "last",
        description="Which denoiser calls keep autograd: the `last` K, K consecutive from a random start "
        "(`rand`), or the `specific` step indices listed in `steps`.",
    )
    k: int = Field(1, ge=1, description="Number of denoising steps kept in the graph.")
    steps: list[int] | None = Field(None, description="Step indices kept in `specific` mode (0 = first step).")

    @model_validator(mode="after")
    def _specific(self) -> TruncationSection:
        if self.mode == "specific":
            if not self.steps:
                raise ValueError("truncation mode `specific` needs `truncation.steps`, e.g. [20, 24]")
            if len(set(self.steps)) != len(self.steps):
                raise ValueError(f"`truncation.steps` has duplicates: {self.steps}")
        return self


class MemorySection(_Section):
    gradient_checkpointing: bool | Literal["call"] = Field(
        True,
        description="Recompute kept denoiser calls during backward instead of storing activations: "
        "`true` (or `block`, least memory): each kept call block by block, and the VAE decoder's blocks; "
        "`call`: each kept call whole; `false` (or `off`): store everything.",
    )
    split_guidance: bool = Field(
        True,
        description="Under gradient checkpointing, run the unconditional and conditional halves of a "
        "guided kept call one after the other (half the recomputed activations, same result).",
    )
    offload_encoders: bool | None = Field(
        None,
        description="Keep the frozen text/image encoders off the accelerator between encodings; "
        "null: on for GPU runs, off on CPU.",
    )
    decoded_frames: int | None = Field(
        1, ge=1, description="Latent frames decoded with gradient for frame rewards; null decodes all."
    )
    frame_selection: Literal["random", "uniform"] = Field(
        "random", description="How decoded frames are chosen: at `random` or evenly spaced (`uniform`)."
    )
    frame_window: int | None = Field(
        None,
        ge=1,
        description="Choose the decoded frames among the first N frames only (a causal VAE decodes a late "
        "frame through every earlier one: this bounds the decoding memory); null: among all frames. Clip "
        "rewards still decode every frame.",
    )
    decode_chunk_size: int | None = Field(
        None, ge=1, description="Frames the VAE decodes at once (VAE slicing); null: all at once."
    )

    @field_validator("gradient_checkpointing", mode="before")
    @classmethod
    def _level(cls, v: Any) -> Any:
        # `block` and `off` are the names of the levels `true` and `false` (see vader_core.checkpointing).
        return {"block": True, "on": True, "off": False}.get(v, v) if isinstance(v, str) else v


class DistributedSection(_Section):
    strategy: Literal["ddp", "fsdp"] = Field(
        "ddp",
        description="How a multi-process run holds the denoiser: `ddp` (every process holds all of it, LoRA "
        "gradients all-reduced) or `fsdp` (torch's FSDP2 `fully_shard` on the backbone's checkpoint blocks: "
        "frozen weights and LoRA sharded over the processes). One process ignores it.",
    )
    sequence_parallel: int = Field(
        1,
        ge=1,
        description="Processes that split one video's tokens (Ulysses attention through diffusers' "
        "`ContextParallelConfig`); must divide the world size and the attention heads. 1: off.",
    )


class SpeedSection(_Section):
    cache: Literal["off", "first_block", "taylorseer", "pab"] = Field(
        "off",
        description="Cache across the no-gradient calls before the first kept step, with the denoiser's own "
        "diffusers cache hooks (`enable_cache`): first-block cache, TaylorSeer or pyramid attention broadcast "
        "(FasterCache needs both guidance halves in one batch); never on a kept call. `off`: every call in full.",
    )
    cache_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments of the diffusers cache configuration (e.g. `threshold` of "
        "`FirstBlockCacheConfig`, `cache_interval` of `TaylorSeerCacheConfig`).",
    )
    compile: bool = Field(
        False,
        description="`torch.compile` the denoiser's repeated blocks (diffusers' regional compilation, "
        "`compile_repeated_blocks`), after LoRA; for denoisers that declare repeated blocks (DiTs such as Wan).",
    )
    attention_backend: str | None = Field(
        None,
        description="diffusers attention backend of the denoiser (`set_attention_backend`), e.g. `native`, "
        "`flash`, `_native_cudnn`, `sage`; null: the library's default.",
    )


class TrainSection(_Section):
    max_steps: int = Field(500, ge=0, description="Optimiser steps.")
    batch_size: int = Field(1, ge=1, description="Videos per micro-batch and process.")
    seed: int = Field(42, description="Seed of everything random in the run.")
    prompts: list[str] | None = Field(None, description="Training prompts; overrides `prompt_set`.")
    prompt_file: str | None = Field(None, description="Text file with one training prompt per line.")
    prompt_set: str | None = Field(
        None,
        description="Built-in prompt set when no prompts are given; null: the backbone's own "
        "prompts if it has some, else `animals`.",
    )
    images: str | None = Field(
        None,
        description="Image-to-video: a folder of images, or a text file listing image paths "
        "(optional caption after a tab); null: vader's eight built-in images, drawn by code, for first runs.",
    )
    non_finite_patience: int = Field(
        3, ge=1, description="Stop after this many consecutive non-finite losses (each update is skipped)."
    )


class ValidationSection(_Section):
    every: int = Field(10, ge=0, description="Validate every N optimiser steps (0 disables).")
    prompts: list[str] | None = Field(None, description="Held-out prompts; default: the prompt set's held-out list.")
    seeds: list[int] = Field([0, 1], description="Seeds; every prompt is sampled once per seed.")
    max_prompts: int = Field(2, ge=1, description="At most this many held-out prompts (from the prompt set).")
    save_videos: bool = Field(True, description="Write mp4 and gif samples under `samples/`.")
    metrics: list[MetricSection] = Field(
        default_factory=list,
        description="Guard metrics: metric or reward plugins scored on the validation "
        "videos (held-out prompts, fixed seeds), never trained on.",
    )
    select: dict[str, float] = Field(
        default_factory=lambda: {"reward": 1.0},
        description="The quantity the best checkpoint (`best/`) maximises: weights of `reward` (the held-out "
        "objective) and of `validation.metrics` names, summed; e.g. {reward: 1.0, toy_color: 0.5}.",
    )
    early_stop: EarlyStopSection | None = Field(
        None,
        description="Stop when a guard metric falls by more than `margin` from its step-0 value; null: never.",
    )


class RegularizationSection(_Section):
    kl: float = Field(
        0.0,
        ge=0.0,
        description="Weight of the KL guard to the base model: at each kept step, the squared distance "
        "between the step's mean under the LoRA model and under the base model (LoRA off) on the same "
        "input, per latent element, summed over kept steps (the per-step KL of Gaussian steps up to a "
        "factor); added to the loss and logged as `extras.kl`. 0 disables it (no extra denoiser call).",
    )


class MetricSection(_PluginSection):
    name: str = Field(
        ...,
        description="A metric plugin (e.g. `toy_color`) or any reward plugin, evaluated on the held-out "
        "prompts and seeds, logged and plotted, never trained on; its options sit beside it.",
    )
    kind: Literal["auto", "metric", "reward"] = Field(
        "auto", description="Which registry `name` is looked up in; `auto`: metric if one has that name, else reward."
    )


class EarlyStopSection(_Section):
    metric: str = Field(..., description="A `validation.metrics` name, or `reward` (the held-out objective).")
    margin: float = Field(
        ...,
        ge=0.0,
        description="Stop when the value falls more than this below its value at step 0 "
        "(absolute, in the metric's units; 0.05 = five points of a share).",
    )


class OutputSection(_Section):
    dir: str = Field("runs/vader", description="Output directory of the run.")
    checkpoint_every: int = Field(50, ge=0, description="Save a checkpoint every N steps (0: only at the end).")
    keep_checkpoints: int | None = Field(None, ge=1, description="Keep only the newest N checkpoints.")
    logger: Literal["tensorboard", "wandb", "none"] = Field("tensorboard", description="Metrics logger.")
    wandb_project: str = Field("vader", description="wandb project when logger is `wandb`.")


class VaderConfig(_Section):
    """The whole configuration of a run."""

    backbone: BackboneSection = Field(default_factory=BackboneSection)
    rewards: list[RewardSection] = Field(default_factory=lambda: [RewardSection(name="brightness")])
    method: MethodSection = Field(default_factory=MethodSection)
    lora: LoraSection = Field(default_factory=LoraSection)
    optim: OptimSection = Field(default_factory=OptimSection)
    sampling: SamplingSection = Field(default_factory=SamplingSection)
    truncation: TruncationSection = Field(default_factory=TruncationSection)
    memory: MemorySection = Field(default_factory=MemorySection)
    speed: SpeedSection = Field(default_factory=SpeedSection)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="Weights and autocast precision; `auto`: bf16 on CUDA, fp32 elsewhere."
    )
    device: str | None = Field(None, description="`cpu`, `cuda`, `cuda:1`, `mps` ...; null: accelerate's choice.")
    train: TrainSection = Field(default_factory=TrainSection)
    distributed: DistributedSection = Field(default_factory=DistributedSection)
    validation: ValidationSection = Field(default_factory=ValidationSection)
    regularization: RegularizationSection = Field(default_factory=RegularizationSection)
    output: OutputSection = Field(default_factory=OutputSection)

    @field_validator("rewards")
    @classmethod
    def _some_reward(cls, v: list[RewardSection]) -> list[RewardSection]:
        if not v:
            raise ValueError("at least one reward is needed, e.g. --reward brightness")
        return v

    def to_yaml(self) -> str:
        return yaml.safe_dump(json.loads(self.model_dump_json()), sort_keys=False)


# ---------------------------------------------------------------------- building
def _known_keys(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> list[str]:
    """Field names of the (nested) model where ``loc`` ends, for did-you-mean suggestions."""
    import typing

    for part in loc[:-1]:
        if model is None or isinstance(part, int):
            continue
        f = model.model_fields.get(str(part))
        if f is None:
            return []
        ann = f.annotation
        candidates = [ann, *typing.get_args(ann)]
        candidates += [a for c in list(candidates) for a in typing.get_args(c)]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return list(model.model_fields) if model is not None else []


def format_validation_error(err: ValidationError, prefix: str = "", model: type[BaseModel] | None = None) -> str:
    """One line naming each bad field and the value it got (did-you-mean for unknown keys of ``model``)."""
    import difflib

    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in (prefix, *e["loc"]) if x != "")
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            known = _known_keys(model, tuple(e["loc"]))
            close = difflib.get_close_matches(str(e["loc"][-1]), known, n=1, cutoff=0.6)
            where = loc.rsplit(".", 1)[0] + "." if "." in loc else ""
            hint = (
                f"; did you mean `{where}{close[0]}`?"
                if close
                else (
                    f" (valid: {', '.join(known)})"
                    if known and len(known) <= 12
                    else "; `vader config` prints every valid key"
                )
            )
            parts.append(f"unknown option `{loc}`{hint}")
            continue
        if "input" in e and e["type"] != "missing":
            parts.append(f"`{loc}`: {msg}, got {e['input']!r}")
        else:
            parts.append(f"`{loc}`: {msg}")
    return "invalid configuration: " + "; ".join(parts)


def load_config_file(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        what = " (that is a directory)" if p.is_dir() else ""
        raise ConfigError(
            f"config file not found: {p}{what}; check the path, or write one with `vader config > run.yaml` and edit it"
        )
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(
            f"cannot parse {p}: not a text file; give a YAML (.yaml) or TOML (.toml) "
            "configuration, e.g. from `vader config > run.yaml`"
        ) from None
    except OSError as e:
        raise ConfigError(f"cannot read config file {p}: {e.strerror or type(e).__name__}") from None
    try:
        if p.suffix == ".toml":
            data = tomllib.loads(text)
        else:
            data = yaml.safe_load(text) or {}
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot parse {p}: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p} must hold a mapping of sections, got {type(data).__name__}")
    return data


def apply_set(data: dict[str, Any], assignment: str) -> None:
    """Apply one ``a.b.c=value`` override (value parsed as YAML) to a nested dict in place.

    List items are addressed by index: ``rewards.0.weight=2``.
    """
    if "=" not in assignment:
        raise ConfigError(f"--set expects key=value, got {assignment!r}")
    key, raw = assignment.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    if value is None and raw.strip().startswith("#"):
        value = raw.strip()  # `color=#ff8000`: a hex colour, not a YAML comment
    parts = key.strip().split(".")
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        nxt = parts[i + 1]
        if isinstance(node, list):
            try:
                node = node[int(part)]
            except (ValueError, IndexError):
                raise ConfigError(f"--set {key}: `{part}` is not an index of that list") from None
            continue
        if part not in node or node[part] is None:
            node[part] = [] if nxt.isdigit() else {}
        node = node[part]
    last = parts[-1]
    if isinstance(node, list):
        try:
            node[int(last)] = value
        except (ValueError, IndexError):
            raise ConfigError(f"--set {key}: `{last}` is not an index of that list") from None
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(f"--set {key}: cannot set a field inside a value")


def parse_reward_flag(flag: str) -> dict[str, Any]:
    """``NAME`` or ``NAME=WEIGHT`` to a reward section dict."""
    if "=" in flag:
        name, w = flag.split("=", 1)
        try:
            weight = float(w)
        except ValueError:
            raise ConfigError(f"--reward {flag}: weight must be a number, got {w!r}") from None
        return {"name": name.strip(), "weight": weight}
    return {"name": flag.strip()}


def build_config(
    config_file: str | Path | None = None,
    sets: list[str] | None = None,
    flags: dict[str, Any] | None = None,
) -> VaderConfig:
    """Merge defaults < file < ``--set`` < flags and validate (plugin options are checked when the
    configuration is resolved: :func:`vader_core.resolve.resolve_config`).

    ``flags`` maps dotted keys to values (``{"train.max_steps": 3}``); ``rewards`` takes a list of
    ``NAME[=WEIGHT]`` strings that replaces the reward list, keeping options of rewards of the same name.
    That list is applied before the ``--set``s, so ``rewards.N.option`` sets address the flag's rewards.
    ``metrics`` takes a list of names added to ``validation.metrics`` (those not already there), also before
    the ``--set``s.
    """
    data: dict[str, Any] = json.loads(VaderConfig().model_dump_json())
    if config_file:
        _deep_update(data, load_config_file(config_file))
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    # The reward list a flag names is chosen before the ``--set``s, so that ``--reward target_color
    # --set rewards.0.color=red`` sets an option of the flag's reward instead of being replaced by it.
    if "rewards" in flags:
        old = {r.get("name"): r for r in data.get("rewards", []) if isinstance(r, dict)}
        new = []
        for spec in flags.pop("rewards"):
            r = parse_reward_flag(spec)
            merged = dict(old.get(r["name"], {}))
            merged.update(r)
            new.append(merged)
        data["rewards"] = new
    # `--metric NAME` adds to validation.metrics, also before the ``--set``s (``--metric flicker --set
    # validation.metrics.0.stride=2``); a metric the configuration already names stays once, with its options.
    if "metrics" in flags:
        section = data.setdefault("validation", {})
        listed = section.get("metrics") or []
        section["metrics"] = listed
        have = {m.get("name") for m in listed if isinstance(m, dict)}
        for name in flags.pop("metrics"):
            if name.strip() not in have:
                listed.append({"name": name.strip()})
                have.add(name.strip())
    for s in sets or []:
        apply_set(data, s)
    for key, value in flags.items():
        apply_set(data, f"{key}={json.dumps(value)}")
    check_finite(data)
    try:
        return VaderConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, model=VaderConfig)) from None


def _deep_update(base: dict[str, Any], new: dict[str, Any]) -> None:
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _deep_update(base[k], v)
        else:
            base[k] = v


def check_finite(data: Any, where: str = "") -> None:
    """Refuse infinite and NaN numbers anywhere in a configuration tree (``optim.lr=.inf``)."""
    if isinstance(data, float) and not math.isfinite(data):
        raise ConfigError(f"`{where or 'value'}` must be a finite number, got {data}")
    if isinstance(data, dict):
        for k, v in data.items():
            check_finite(v, f"{where}.{k}" if where else str(k))
    elif isinstance(data, (list, tuple)):
        for i, v in enumerate(data):
            check_finite(v, f"{where}.{i}" if where else str(i))


def resolve(config: VaderConfig) -> VaderConfig:
    """Deprecated alias of :func:`vader_core.resolve.resolve_config` (kept for one release)."""
    warnings.warn(
        "`vader_core.config.resolve` is deprecated; use `vader_core.resolve.resolve_config`",
        DeprecationWarning,
        stacklevel=2,
    )
    from .resolve import resolve_config

    return resolve_config(config)
