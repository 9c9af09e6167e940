"""``object_removal``: train an object out of the video, 1 - a detector's confidence in it.

VADER's object-removal reward: a detector looks at each decoded frame, the confidence of its
detections of the target is averaged, and the reward is ``1 - that``. The official code
(``objectDetection_loss_fn`` of the VADER repository) runs ``hustvl/yolos-base`` on frames resized to
height 512 (aspect kept, bilinear, no antialiasing) with ImageNet normalisation, keeps the detections
of transformers' ``post_process_object_detection(threshold=0.2)`` whose label is the target, and uses
their mean score (0 when there is none) as the loss.

Per frame, with ``p_q`` the detector's probability of the target in query slot ``q`` and
``g_q`` the slot's detection weight (treated as a constant: no gradient flows through which slots
count, so the generator cannot lower the mean by adding weak detections)::

    g_q = [target is q's best class] * sigmoid((p_q - threshold) / temperature)    (temperature > 0)
    g_q = [target is q's best class] * [p_q > threshold]                           (temperature = 0)
    confidence = sum_q g_q p_q / max(1, sum_q g_q)
    reward = 1 - confidence

With ``temperature: 0`` this is the official number exactly: the mean over the detections, 0 when
nothing is detected. The default ``temperature`` (0.02) softens the threshold: slots just below it
still count a little, so a frame where the object is barely missed still pushes it further down
instead of giving no gradient at all; far below the threshold the weights vanish. When the soft
weights sum to less than one detection, the confidence is their weighted sum rather than a mean, so
it goes to 0 (reward 1) smoothly as the object disappears.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator

from vader_core.errors import ConfigError, MissingWeightsError
from vader_core.hub import first_line, looks_local, missing_model, resolve_model, unavailable_reason
from vader_core.modules import freeze
from vader_core.reward import RewardOptions, RewardPlugin

from ._common import flag_for_checkpointing, mean_std, processor_config

if TYPE_CHECKING:  # pragma: no cover
    import torch

DEFAULT_MODELS = {"yolos": "hustvl/yolos-base", "owlvit": "google/owlvit-base-patch32"}
_FILES = "config.json + model.safetensors or pytorch_model.bin"


class ObjectRemovalOptions(RewardOptions):
    target: str = Field(
        "book",
        description="What to remove. YOLOS / DETR: a class name of the model's `config.id2label` (COCO for the "
        "hustvl checkpoints: `book`, `dog`, `person`, ...). OWL-ViT: any text, e.g. `a red umbrella`.",
    )
    threshold: float = Field(
        0.2, ge=0.0, lt=1.0, description="Detection threshold on the target's confidence (VADER: 0.2)."
    )
    detector: Literal["auto", "yolos", "owlvit"] = Field(
        "auto",
        description="`yolos`: closed-vocabulary YOLOS / DETR checkpoints; `owlvit`: OWL-ViT, free-text targets; "
        "`auto`: from the model's `config.model_type` (YOLOS when `model` is not given).",
    )
    model: str | None = Field(
        None,
        description="Hub id or local `save_pretrained` directory of the detector; null: `hustvl/yolos-base` "
        "(`hustvl/yolos-tiny` is smaller), or `google/owlvit-base-patch32` with `detector: owlvit`.",
    )
    image_height: int = Field(
        512,
        ge=32,
        le=2048,
        description="YOLOS / DETR input height; the width keeps the frame's aspect ratio (VADER: 512). OWL-ViT "
        "always takes its square input size.",
    )
    temperature: float = Field(
        0.02,
        ge=0.0,
        le=1.0,
        description="Softness of the threshold: slots weigh sigmoid((p - threshold) / temperature); 0 is the hard "
        "threshold of the official code (no detection: reward 1, no gradient).",
    )
    top_class_only: bool = Field(
        True,
        description="YOLOS / DETR: a slot detects the target only if the target is its most probable class, as in "
        "transformers' post-processing (the official code); false: any slot whose target probability is high.",
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute the detector's vision encoder layers in backward instead of storing them."
    )

    @field_validator("target")
    @classmethod
    def _target_not_empty(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("`target` must name an object, e.g. `book` (or `a red umbrella` for OWL-ViT)")
        return v


def _kind(model_type: str) -> str | None:
    from .owlvit import OWLVIT_TYPES
    from .yolos import CLOSED_SET_TYPES

    if model_type in OWLVIT_TYPES:
        return "owlvit"
    if model_type in CLOSED_SET_TYPES:
        return "yolos"
    return None


class ObjectRemoval(RewardPlugin):
    """1 - the mean confidence of a detector's detections of ``target`` in each frame."""

    name = "object_removal"
    summary = "1 - detector confidence in a target object (YOLOS classes, or OWL-ViT free text): removes it."
    Options: ClassVar = ObjectRemovalOptions
    scores = "frames"
    value_range = (0.0, 1.0)

    def __init__(self, options: ObjectRemovalOptions | None = None) -> None:
        super().__init__(options)
        self.model: torch.nn.Module | None = None
        self.detector: Any = None
        self.kind: str = ""

    # ------------------------------------------------------------------------------------ loading
    def load(self, device: torch.device | str, dtype: torch.dtype) -> None:
        """Load the detector (hub id or local directory, honouring ``HF_HUB_OFFLINE``), frozen, in ``dtype``.

        The target is checked against the model's configuration before any weights are read.
        """
        o = self.options
        wanted = None if o.detector == "auto" else o.detector
        ref = o.model or DEFAULT_MODELS[wanted or "yolos"]
        ref, local = resolve_model(ref, reward=self.name, repo=self._repo(ref), what="detector", files=_FILES)
        config = self._pretrained(ref, local, "config")
        kind = _kind(str(getattr(config, "model_type", "")))
        if kind is None:
            raise ConfigError(
                f"{self.name}: `{ref}` is a `{getattr(config, 'model_type', '?')}` model; supported detectors are "
                f"YOLOS / DETR (closed vocabulary, e.g. hustvl/yolos-base) and OWL-ViT (free text, e.g. "
                f"google/owlvit-base-patch32)"
            )
        if wanted is not None and wanted != kind:
            raise ConfigError(
                f"{self.name}: `detector: {wanted}` but `{ref}` is a `{config.model_type}` model; set "
                f"`detector: auto` or `detector: {kind}`"
            )
        proc = processor_config(ref)
        if kind == "yolos":
            from .yolos import resolve_label

            target_id = resolve_label(config.id2label, o.target, model=ref, reward=self.name)
            model = self._pretrained(ref, local, "model")
            self._setup_yolos(model, target_id, proc, device, dtype)
        else:
            tokenizer = self._pretrained(ref, local, "tokenizer")
            vocab = int(config.text_config.vocab_size)
            if len(tokenizer) < vocab // 2:
                # transformers builds an empty tokenizer when the files are missing; its ids would be garbage
                raise self._missing(
                    ref,
                    f"its tokenizer files (tokenizer.json, or vocab.json + merges.txt) are "
                    f"missing: the tokenizer found has {len(tokenizer)} tokens, the model {vocab}",
                )
            model = self._pretrained(ref, local, "owlvit")
            self._setup_owlvit(model, tokenizer, proc, device, dtype)

    def _pretrained(self, ref: str, local: bool, what: str) -> Any:
        from transformers import AutoConfig, AutoModelForObjectDetection, AutoTokenizer, OwlViTForObjectDetection

        loader = {
            "config": AutoConfig,
            "model": AutoModelForObjectDetection,
            "owlvit": OwlViTForObjectDetection,
            "tokenizer": AutoTokenizer,
        }[what]
        try:
            return loader.from_pretrained(ref)
        except (OSError, ValueError) as e:
            if what == "tokenizer":
                reason = (
                    f"its tokenizer files (tokenizer.json, or vocab.json + merges.txt) are missing: {first_line(e)}"
                )
            else:
                reason = unavailable_reason(e, local)
            raise self._missing(ref, reason) from None

    def _repo(self, ref: str) -> str:
        """The hub repo an error tells to download: ``ref`` itself when it is a hub id."""
        return DEFAULT_MODELS["owlvit" if self.options.detector == "owlvit" else "yolos"] if looks_local(ref) else ref

    def _missing(self, ref: str, reason: str) -> MissingWeightsError:
        return missing_model(self.name, ref, reason, repo=self._repo(ref), what="detector", files=_FILES)

    def load_tiny(self, device: torch.device | str, dtype: torch.dtype, seed: int = 0) -> None:
        """Tiny random model of the same classes, for tests: YOLOS with the COCO label set, or OWL-ViT with
        the CLIP tokenizer when ``detector: owlvit``. The option ``model`` is ignored."""
        if self.options.detector == "owlvit":
            from . import owlvit

            self._setup_owlvit(owlvit.tiny_model(seed), owlvit.tiny_tokenizer(), {}, device, dtype)
        else:
            from . import yolos

            model = yolos.tiny_model(seed)
            target_id = yolos.resolve_label(
                model.config.id2label, self.options.target, model="the tiny YOLOS", reward=self.name
            )
            self._setup_yolos(model, target_id, {}, device, dtype)

    def _setup_yolos(self, model: Any, target_id: int, proc: dict, device: Any, dtype: Any) -> None:
        from .preprocess import IMAGENET_MEAN, IMAGENET_STD
        from .yolos import LabelDetector

        self.model = freeze(model, device, dtype)
        self.kind = "yolos"
        self.detector = LabelDetector(
            self.model, target_id, self.options.image_height, mean_std(proc, IMAGENET_MEAN, IMAGENET_STD)
        )
        if self.options.gradient_checkpointing:
            self._checkpoint(self.model.base_model.encoder)
        super().load(device, dtype)

    def _setup_owlvit(self, model: Any, tokenizer: Any, proc: dict, device: Any, dtype: Any) -> None:
        from .owlvit import TextDetector
        from .preprocess import CLIP_MEAN, CLIP_STD

        self.model = freeze(model, device, dtype)
        self.kind = "owlvit"
        size = int(model.config.vision_config.image_size)
        self.detector = TextDetector(
            self.model, tokenizer, self.options.target, size, mean_std(proc, CLIP_MEAN, CLIP_STD)
        )
        if self.options.gradient_checkpointing:
            self._checkpoint(self.model.owlvit.vision_model.encoder)
        super().load(device, dtype)

    def _checkpoint(self, encoder: Any) -> None:
        self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        # YOLOS names its encoder layers `layer`, DETR and OWL-ViT `layers`
        flag_for_checkpointing(encoder, getattr(encoder, "layer", None) or encoder.layers)

    # ------------------------------------------------------------------------------------ scoring
    def confidence(self, frames: torch.Tensor) -> torch.Tensor:
        """The detector's mean confidence in the target per frame ``(N, 3, H, W)`` in [0, 1]. Returns ``(N,)``."""
        import torch

        o = self.options
        p, top = self.detector(frames, self.device, self.dtype)
        with torch.no_grad():
            if o.temperature > 0:
                gate = torch.sigmoid((p - o.threshold) / o.temperature)
            else:
                gate = (p > o.threshold).float()
            if o.top_class_only:
                gate = gate * top.float()
        return (gate * p).sum(dim=-1) / gate.sum(dim=-1).clamp(min=1.0)

    def score_frames(self, frames: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        """``1 - confidence`` of each frame; the prompts are not used (the target is an option)."""
        return 1.0 - self.confidence(frames)
