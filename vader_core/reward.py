"""The reward contract: videos in, one score per video out, higher is better, differentiable."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import ConfigDict

from .errors import PluginContractError, warn
from .options import StrictNumbers

if TYPE_CHECKING:  # pragma: no cover
    import torch


class RewardOptions(StrictNumbers):
    """Base of reward options; subclasses add fields with ``Field(description=...)``."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class RewardPlugin:
    """Base class of reward plugins.

    Class attributes:
        name (`str`): registry name, e.g. ``"aesthetic"``.
        summary (`str`): one line shown by ``vader plugins``.
        Options (`type[RewardOptions]`): the pydantic options model.
        scores (`str`): ``"frames"`` for image rewards (the core picks which frames are decoded and the
            reward averages over them) or ``"clip"`` for rewards of whole clips.
        value_range (`tuple[float, float] | None`): the possible range of the score if bounded.

    Subclasses implement :meth:`score_frames` (when ``scores == "frames"``) or :meth:`score_clip`,
    and override :meth:`load` when they need a model.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    Options: ClassVar[type[RewardOptions]] = RewardOptions
    scores: ClassVar[Literal["frames", "clip"]] = "frames"
    value_range: ClassVar[tuple[float, float] | None] = None
    #: How run-time contract errors name this kind of plugin.
    contract_kind: ClassVar[str] = "reward"

    def __init__(self, options: RewardOptions | None = None) -> None:
        self.options = options if options is not None else self.Options()
        self.device: torch.device | str = "cpu"
        self.dtype: torch.dtype | None = None
        self.loaded = False

    def load(self, device: torch.device | str, dtype: torch.dtype) -> None:
        """Load the reward model (if any) onto ``device`` in ``dtype``; frozen, eval mode."""
        self.device, self.dtype, self.loaded = device, dtype, True

    def load_tiny(self, device: torch.device | str, dtype: torch.dtype, seed: int = 0) -> None:
        """Tiny random model of the real architecture, for tests. Weight-free rewards just load."""
        self.load(device, dtype)

    def score_frames(self, frames: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """Score ``frames`` ``(N, 3, H, W)`` in [0, 1] with one prompt each; returns ``(N,)``."""
        raise NotImplementedError

    def score_clip(self, video: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """Score videos ``(B, F, 3, H, W)`` in [0, 1]; returns ``(B,)``."""
        raise NotImplementedError

    def __call__(self, video: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """Reward of each video ``(B, F, 3, H, W)`` in [0, 1]; returns float32 ``(B,)``.

        The output is checked on every call (cheap: shapes, one flag, one comparison): a tensor of one score
        per video (per frame for ``score_frames``), attached to the frames' graph when they carry one, and
        inside :attr:`value_range` (a warning, once). A broken contract is a one-line
        :class:`~vader_core.errors.PluginContractError` naming the plugin."""
        import torch

        if video.ndim != 5 or video.shape[2] != 3:
            raise ValueError(f"reward `{self.name}` expects video of shape (B, F, 3, H, W), got {tuple(video.shape)}")
        if len(prompts) != video.shape[0]:
            raise ValueError(f"reward `{self.name}` got {len(prompts)} prompts for {video.shape[0]} videos")
        if not self.loaded:
            raise RuntimeError(f"reward `{self.name}` used before load(); call load(device, dtype) first")
        b, f = video.shape[:2]
        if self.scores == "clip":
            out = check_scores(self, self.score_clip(video, list(prompts)), b, "score_clip", f"{b} video(s)")
        else:
            flat_prompts = [p for p in prompts for _ in range(f)]
            what = f"{b * f} frame(s) ({b} video(s) of {f} frames)"
            out = check_scores(self, self.score_frames(video.flatten(0, 1), flat_prompts), b * f, "score_frames", what)
            out = out.view(b, f).mean(dim=1)
        if video.requires_grad and torch.is_grad_enabled() and not out.requires_grad:
            raise PluginContractError(
                f"{plugin_label(self)} returns a tensor that does not depend on the frames: did you detach or "
                "convert to numpy? Training needs the gradient of the score with respect to the pixels; keep the "
                "computation in torch from the frames to the score"
            )
        check_range(self, out)
        return out.float()


def plugin_label(plugin: Any) -> str:
    """``reward `name` (module.Class)``: how run-time contract errors name a plugin."""
    cls = plugin if isinstance(plugin, type) else type(plugin)
    kind = getattr(cls, "contract_kind", "plugin")
    return f"{kind} `{getattr(cls, 'name', '?')}` ({cls.__module__}.{cls.__qualname__})"


def check_scores(plugin: Any, out: Any, n: int, method: str, what: str) -> torch.Tensor:
    """``out`` when it is a tensor of shape ``(n,)``; otherwise a :class:`PluginContractError` naming the plugin,
    ``method`` and what it got."""
    import torch

    label = plugin_label(plugin)
    if not isinstance(out, torch.Tensor):
        raise PluginContractError(
            f"{label}: {method} returned {type(out).__name__} for {what}; return a torch tensor of shape ({n},)"
        )
    if out.ndim == 0:
        raise PluginContractError(
            f"{label}: {method} returned a 0-dim tensor (one number) for {what}; return one score each, shape "
            f"({n},): reduce over every dimension but the first"
        )
    if tuple(out.shape) != (n,):
        raise PluginContractError(
            f"{label}: {method} returned shape {tuple(out.shape)} for {what}; return one score each, shape ({n},)"
        )
    return out


def check_range(plugin: Any, out: torch.Tensor) -> None:
    """Warn once per plugin instance when a score falls outside its declared ``value_range``."""
    rng = getattr(plugin, "value_range", None)
    if rng is None or getattr(plugin, "_range_warned", False):
        return
    lo, hi = rng
    slack = 1e-3 * (hi - lo)  # bf16 rounding of a score at the bound is not a broken contract
    d = out.detach()
    outside = (d < lo - slack) | (d > hi + slack)
    if bool(outside.any()):
        plugin._range_warned = True
        first = float(d[outside][0])
        warn(
            f"{plugin_label(plugin)} returned {first:.4g}, outside its value_range ({lo:g}, {hi:g}); fix the score "
            "or the declared value_range (the contract tests check it)"
        )


def contract_problem(cls: type[RewardPlugin]) -> str | None:
    """What is wrong with a reward class before any use (``scores`` and the method written), or None."""
    if cls.scores not in ("frames", "clip"):
        return f'reward `{cls.name}`: scores must be "frames" or "clip", got {cls.scores!r}'
    need = "score_clip" if cls.scores == "clip" else "score_frames"
    other = "score_frames" if need == "score_clip" else "score_clip"
    if getattr(cls, need) is getattr(RewardPlugin, need):
        if getattr(cls, other) is not getattr(RewardPlugin, other):
            flip = "frames" if need == "score_clip" else "clip"
            return (
                f'reward `{cls.name}` ({cls.__module__}.{cls.__qualname__}) says scores = "{cls.scores}" but '
                f'only {other} is written; implement {need} or set scores = "{flip}"'
            )
        return (
            f"reward `{cls.name}` ({cls.__module__}.{cls.__qualname__}) implements neither score_frames nor "
            f"score_clip; write {need}(...) returning one score each"
        )
    return None
