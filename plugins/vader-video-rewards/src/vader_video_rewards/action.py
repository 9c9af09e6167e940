"""``action``: the log-probability a VideoMAE Kinetics classifier gives the prompt's action, differentiable.

``VideoMAEForVideoClassification`` (default ``MCG-NJU/videomae-base-finetuned-kinetics``, the 400
Kinetics-400 classes) scores the whole clip, resampled to ``config.num_frames`` (16) frames of
``config.image_size`` (224x224) and ImageNet-normalised. The reward is ``log_softmax(logits)[label]``,
minus the cross-entropy to the target class: in ``(-inf, 0]``, 0 when the classifier is certain of
the label (about ``-log(400) = -6.0`` for a uniform guess). VADER's action loss is that
cross-entropy, so ``weight: 1`` (maximize) reproduces it.

The target class is the reward option ``label`` when set, otherwise read from each prompt: the
longest class name of ``config.id2label`` that occurs in the prompt as whole words, ignoring case
(ties: the lower class index).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from vader_core.errors import ConfigError
from vader_core.modules import freeze, seeded
from vader_core.reward import RewardOptions, RewardPlugin

from ._common import ResizeMode, as_size, checkpoint_layers, load_pretrained, normalize, resample_clip

if TYPE_CHECKING:  # pragma: no cover
    import torch

VIDEOMAE_REPO = "MCG-NJU/videomae-base-finetuned-kinetics"

#: A few Kinetics-400 class names, the labels of the tiny test model.
TINY_LABELS = (
    "playing guitar",
    "playing piano",
    "riding a bike",
    "surfing water",
    "dancing ballet",
    "juggling balls",
    "playing chess",
    "skateboarding",
)


class ActionOptions(RewardOptions):
    model: str = Field(
        VIDEOMAE_REPO,
        description="Video classifier (transformers `VideoMAEForVideoClassification`): a Hugging Face hub id, or a "
        "local directory in `save_pretrained` layout.",
    )
    label: str | None = Field(
        None,
        description="Target class, a name of the model's `config.id2label` (case-insensitive), e.g. "
        "'playing guitar'; null: the longest class name found in each prompt.",
    )
    resize_mode: ResizeMode = Field(
        "squash",
        description="Frame to the model's image_size: `squash` (whole frame, as the VADER code does) or `crop` "
        "(VideoMAE's processor: short side to image_size, centre crop).",
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute the encoder layers in backward instead of storing their activations."
    )


def tiny_config() -> Any:
    """A tiny ``VideoMAEConfig``: 4 frames of 32x32, patch 8, tubelet 2, width 32, and :data:`TINY_LABELS`."""
    from transformers import VideoMAEConfig

    return VideoMAEConfig(
        image_size=32,
        patch_size=8,
        num_frames=4,
        tubelet_size=2,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        use_mean_pooling=True,
        id2label=dict(enumerate(TINY_LABELS)),
        label2id={n: i for i, n in enumerate(TINY_LABELS)},
    )


def tiny_model(seed: int = 0) -> Any:
    """The seeded tiny random ``VideoMAEForVideoClassification`` used by ``load_tiny``."""
    from transformers import VideoMAEForVideoClassification

    with seeded(seed):
        return VideoMAEForVideoClassification(tiny_config())


class Labels:
    """The classes of a classifier and how prompts and the ``label`` option name them.

    Args:
        id2label (`dict[int, str]`): the model's ``config.id2label``.
        reward (`str`, *optional*, defaults to `"action"`): reward name, for errors.
    """

    def __init__(self, id2label: dict[Any, str], reward: str = "action") -> None:
        self.reward = reward
        self.names = {int(i): str(n) for i, n in id2label.items()}
        self._by_lower: dict[str, int] = {}
        for i in sorted(self.names):
            self._by_lower.setdefault(self._norm(self.names[i]), i)
        # longest first, then the lower index: the first hit is the rule's answer
        order = sorted(self._by_lower.items(), key=lambda kv: (-len(kv[0]), kv[1]))
        self._patterns = [(re.compile(rf"(?<!\w){re.escape(n)}(?!\w)"), i) for n, i in order]
        self._cache: dict[str, int] = {}

    @staticmethod
    def _norm(text: str) -> str:
        return " ".join(text.lower().split())

    def index(self, label: str) -> int:
        """The class index of ``label`` (case-insensitive), or a one-line error with the closest names."""
        key = self._norm(label)
        if key in self._by_lower:
            return self._by_lower[key]
        close = difflib.get_close_matches(key, list(self._by_lower), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(f'`{self.names[self._by_lower[c]]}`' for c in close)}?" if close else ""
        raise ConfigError(
            f"{self.reward}: `label` {label!r} is not a class of the model ({len(self.names)} classes "
            f"in config.id2label){hint}"
        )

    def from_prompt(self, prompt: str) -> int:
        """The class whose name is the longest one occurring in ``prompt`` as whole words (case-insensitive)."""
        if prompt in self._cache:
            return self._cache[prompt]
        text = self._norm(prompt)
        for pattern, i in self._patterns:
            if pattern.search(text):
                self._cache[prompt] = i
                return i
        words = {w for w in re.findall(r"\w+", text) if len(w) > 3}
        sharing = [n for n in self._by_lower if words & set(n.split())]
        close = sorted(sharing, key=lambda n: -difflib.SequenceMatcher(None, n, text).ratio())[:3]
        hint = f"; did you mean {', '.join(f'`{self.names[self._by_lower[c]]}`' for c in close)}?" if close else ""
        raise ConfigError(
            f"{self.reward}: no class name of the model occurs in the prompt {prompt!r}{hint}; put one of the "
            f"{len(self.names)} names of config.id2label in the prompt, or set the reward option `label` "
            f"(`--set rewards.N.label=NAME` in `vader train`, `--set label=NAME` in `vader score`)"
        )


class Action(RewardPlugin):
    """Log-probability of the target action class under a VideoMAE Kinetics classifier (minus the cross-entropy)."""

    name = "action"
    summary = "Log-probability of the prompt's Kinetics action under VideoMAE (minus cross-entropy), <= 0."
    Options: ClassVar = ActionOptions
    scores = "clip"
    value_range = (float("-inf"), 0.0)

    def __init__(self, options: ActionOptions | None = None) -> None:
        super().__init__(options)
        self.model: torch.nn.Module | None = None
        self.labels: Labels | None = None
        self.fixed: int | None = None
        self.frames = 0
        self.size = (0, 0)

    def load(self, device: torch.device | str, dtype: torch.dtype) -> None:
        """Load ``options.model`` (hub id or local directory, honouring ``HF_HUB_OFFLINE``), frozen, in ``dtype``."""
        from transformers import VideoMAEForVideoClassification

        model = load_pretrained(
            VideoMAEForVideoClassification,
            self.options.model,
            reward=self.name,
            model_type="videomae",
            default_repo=VIDEOMAE_REPO,
            kind="VideoMAE classifier",
        )
        self._setup(model, device, dtype)

    def load_tiny(self, device: torch.device | str, dtype: torch.dtype, seed: int = 0) -> None:
        """Tiny random ``VideoMAEForVideoClassification`` labelled with a few Kinetics classes, for tests."""
        self._setup(tiny_model(seed), device, dtype)

    def _setup(self, model: Any, device: Any, dtype: Any) -> None:
        cfg = model.config
        self.labels = Labels(cfg.id2label, self.name)
        self.fixed = self.labels.index(self.options.label) if self.options.label is not None else None
        self.frames, self.size = int(cfg.num_frames), as_size(cfg.image_size)
        self.model = freeze(model, device, dtype)
        if self.options.gradient_checkpointing:
            checkpoint_layers(self.model, self.model.videomae.encoder.layer)
        super().load(device, dtype)

    def targets(self, prompts: Sequence[str]) -> list[int]:
        """The target class index of each prompt (the ``label`` option's when set)."""
        if self.fixed is not None:
            return [self.fixed] * len(prompts)
        return [self.labels.from_prompt(p) for p in prompts]

    def score_clip(self, video: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """``log p(target | clip)`` of each video ``(B, F, 3, H, W)`` in [0, 1]. Returns ``(B,)``."""
        import torch

        target = torch.tensor(self.targets(prompts), device=self.device)
        x = resample_clip(video.float(), self.frames, self.size, self.options.resize_mode)
        x = normalize(x).to(device=self.device, dtype=self.dtype)
        logits = self.model(pixel_values=x).logits.float()
        return logits.log_softmax(dim=-1).gather(1, target[:, None]).squeeze(1)
