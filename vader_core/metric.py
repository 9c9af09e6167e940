"""The metric contract: videos in, one score per video out, higher is better, *not* differentiable.

A metric is a guard: ``validation.metrics`` scores the held-out validation videos with it (beside the
trained reward, which it never enters), ``validation.early_stop`` can stop a run when it falls, and
``vader eval`` reports it. Any reward can serve as a metric too; a metric plugin is for checks that
have no gradient (counting, classification by rules, detectors' decisions), e.g. the bundled toy
model's ``toy_color`` and ``toy_direction``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import ConfigDict

from .errors import PluginContractError
from .options import StrictNumbers
from .reward import check_range, check_scores, plugin_label

if TYPE_CHECKING:  # pragma: no cover
    import torch


class MetricOptions(StrictNumbers):
    """Base of metric options; subclasses add fields with ``Field(description=...)``."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class MetricPlugin:
    """Base class of metric plugins.

    Class attributes:
        name (`str`): registry name, e.g. ``"toy_color"``.
        summary (`str`): one line shown by ``vader plugins``.
        Options (`type[MetricOptions]`): the pydantic options model.
        value_range (`tuple[float, float] | None`): the possible range of the score if bounded.
        scores (`str`): ``"video"`` (the default): one score per video, from :meth:`compute`. ``"seeds"``:
            one score per prompt from its videos of every seed together (e.g. their diversity): the
            metric implements :meth:`features` (per video) and :meth:`compute_seeds` (per prompt, from
            the features of its videos); validation and ``vader eval`` call them through
            :meth:`video_features` and :meth:`score_seeds`, and need at least two seeds.

    Subclasses implement :meth:`compute` (or, for ``scores = "seeds"``, :meth:`features` and
    :meth:`compute_seeds`) and override :meth:`load` when they need a model.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    Options: ClassVar[type[MetricOptions]] = MetricOptions
    value_range: ClassVar[tuple[float, float] | None] = None
    scores: ClassVar[Literal["video", "seeds"]] = "video"
    #: How run-time contract errors name this kind of plugin.
    contract_kind: ClassVar[str] = "metric"

    def __init__(self, options: MetricOptions | None = None) -> None:
        self.options = options if options is not None else self.Options()
        self.device: torch.device | str = "cpu"
        self.loaded = False

    def load(self, device: torch.device | str, dtype: torch.dtype) -> None:
        """Load whatever the metric needs onto ``device``; frozen, eval mode."""
        self.device, self.loaded = device, True

    def load_tiny(self, device: torch.device | str, dtype: torch.dtype, seed: int = 0) -> None:
        """Tiny random model of the real architecture, for tests. Model-free metrics just load."""
        self.load(device, dtype)

    def compute(self, video: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """Score videos ``(B, F, 3, H, W)`` in [0, 1] with one prompt each; returns ``(B,)``."""
        raise NotImplementedError

    def features(self, video: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """``scores = "seeds"``: features ``(B, D)`` of videos ``(B, F, 3, H, W)`` in [0, 1], one prompt each."""
        raise NotImplementedError

    def compute_seeds(self, features: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """``scores = "seeds"``: one score ``(P,)`` per prompt from the features ``(P, S, D)`` of its videos
        from ``S`` seeds."""
        raise NotImplementedError

    def _check(self, video: torch.Tensor, prompts: Sequence[str]) -> None:
        if video.ndim != 5 or video.shape[2] != 3:
            raise ValueError(f"metric `{self.name}` expects video of shape (B, F, 3, H, W), got {tuple(video.shape)}")
        if len(prompts) != video.shape[0]:
            raise ValueError(f"metric `{self.name}` got {len(prompts)} prompts for {video.shape[0]} videos")
        if not self.loaded:
            raise RuntimeError(f"metric `{self.name}` used before load(); call load(device, dtype) first")

    def __call__(self, video: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """Score of each video ``(B, F, 3, H, W)`` in [0, 1]; float32 ``(B,)`` on the CPU, no autograd."""
        import torch

        if self.scores == "seeds":
            raise TypeError(
                f"metric `{self.name}` scores the videos of a prompt across seeds: use video_features() and "
                "score_seeds()"
            )
        self._check(video, prompts)
        with torch.no_grad():
            out = check_scores(self, self.compute(video.detach(), list(prompts)), len(prompts), "compute", _what(video))
        check_range(self, out)
        return out.detach().float().cpu()

    def video_features(self, video: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """``scores = "seeds"``: features of each video ``(B, F, 3, H, W)``; float32 ``(B, D)`` on the CPU."""
        import torch

        self._check(video, prompts)
        with torch.no_grad():
            out = self.features(video.detach(), list(prompts))
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != len(prompts):
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise PluginContractError(
                f"{plugin_label(self)}: features returned {got} for {_what(video)}; return one feature vector "
                f"each, shape ({len(prompts)}, D)"
            )
        return out.detach().float().cpu()

    def score_seeds(self, features: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """``scores = "seeds"``: the score of each prompt from its videos' features ``(P, S, D)`` (``S >= 2``
        seeds, from :meth:`video_features`); float32 ``(P,)`` on the CPU."""
        import torch

        if features.ndim != 3 or features.shape[0] != len(prompts):
            raise ValueError(
                f"metric `{self.name}` expects features (P, S, D) of {len(prompts)} prompts, got {tuple(features.shape)}"
            )
        if features.shape[1] < 2:
            raise ValueError(f"metric `{self.name}` compares the videos of several seeds, got {features.shape[1]}")
        with torch.no_grad():
            out = self.compute_seeds(features.float(), list(prompts))
        n = len(prompts)
        out = check_scores(self, out, n, "compute_seeds", f"{n} prompt(s) of {features.shape[1]} seeds")
        check_range(self, out)
        return out.detach().float().cpu()


def _what(video: torch.Tensor) -> str:
    return f"{video.shape[0]} video(s)"


def contract_problem(cls: type[MetricPlugin]) -> str | None:
    """What is wrong with a metric class before any use (``scores`` and the methods written), or None."""
    where = f"metric `{cls.name}` ({cls.__module__}.{cls.__qualname__})"
    if cls.scores not in ("video", "seeds"):
        return f'{where}: scores must be "video" or "seeds", got {cls.scores!r}'
    need = ["compute"] if cls.scores == "video" else ["features", "compute_seeds"]
    missing = [m for m in need if getattr(cls, m) is getattr(MetricPlugin, m)]
    if missing:
        return f'{where} says scores = "{cls.scores}" but does not implement {" and ".join(missing)}'
    return None
