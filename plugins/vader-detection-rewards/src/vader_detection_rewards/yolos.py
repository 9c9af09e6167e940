"""Closed-vocabulary detectors: YOLOS (``hustvl/yolos-base``, ``hustvl/yolos-tiny``, ...) and DETR.

Their class head gives ``num_labels + 1`` logits per query slot, the last one "no object"; transformers'
``post_process_object_detection`` turns them into detections as ``softmax`` over all of them (the
no-object class included in the normaliser), then the most probable real class and its probability,
kept when above the threshold. :class:`LabelDetector` returns exactly those quantities, differentiably:
the target class's probability per query, and whether the target is the query's most probable class.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from vader_core.errors import ConfigError
from vader_core.lazy import torch
from vader_core.modules import seeded

from ._common import spread_init
from .labels import COCO_ID2LABEL, PLACEHOLDER
from .preprocess import IMAGENET_MEAN, IMAGENET_STD, normalize, resize_to_height

#: ``config.model_type`` of the closed-vocabulary detectors whose head has a no-object class.
CLOSED_SET_TYPES = ("yolos", "detr")


def tiny_config() -> Any:
    """A tiny ``YolosConfig`` with the COCO label set of the ``hustvl/yolos-*`` checkpoints."""
    from transformers import YolosConfig

    return YolosConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=[512, 864],
        patch_size=32,
        num_detection_tokens=8,
        use_mid_position_embeddings=True,
        id2label=dict(COCO_ID2LABEL),
        label2id={v: k for k, v in COCO_ID2LABEL.items()},
    )


def tiny_model(seed: int = 0) -> Any:
    """The seeded tiny random ``YolosForObjectDetection`` used by ``load_tiny``."""
    from transformers import YolosForObjectDetection

    with seeded(seed):
        return spread_init(YolosForObjectDetection(tiny_config()))


def resolve_label(id2label: Mapping[Any, str], target: str, *, model: str, reward: str) -> int:
    """The class id of ``target`` in ``id2label`` (exact name first, then case-insensitive).

    Raises:
        ConfigError: one line naming the closest class names, or suggesting OWL-ViT for free text.
    """
    names: dict[str, int] = {}
    for k, v in sorted(((int(k), str(v)) for k, v in id2label.items())):
        if v != PLACEHOLDER:
            names.setdefault(v, k)
    if target in names:
        return names[target]
    folded = {n.casefold(): i for n, i in names.items()}
    if target.strip().casefold() in folded:
        return folded[target.strip().casefold()]
    close = difflib.get_close_matches(target, list(names), n=3, cutoff=0.5)
    if not close:
        close = difflib.get_close_matches(target.casefold(), list(folded), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(f'`{c}`' for c in close)}?" if close else ""
    raise ConfigError(
        f"{reward}: `target` {target!r} is not a class of `{model}` ({len(names)} classes in its "
        f"config.id2label{', e.g. ' + ', '.join(list(names)[:4]) if not close else ''}){hint} "
        f"For free text use `detector: owlvit`."
    )


class LabelDetector:
    """Per-query target probability of a closed-vocabulary detector, differentiable in the frames.

    Args:
        model (`torch.nn.Module`): a YOLOS / DETR object-detection model, frozen.
        target_id (`int`): the target class id.
        height (`int`): frames are resized to this height keeping the aspect ratio.
        norm (`tuple | None`): ``(mean, std)`` of the processor, or ``None`` when it does not normalise.
    """

    def __init__(self, model: Any, target_id: int, height: int, norm: tuple | None = (IMAGENET_MEAN, IMAGENET_STD)):
        self.model, self.target_id, self.height, self.norm = model, int(target_id), int(height), norm

    def __call__(self, frames: torch.Tensor, device: Any, dtype: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(p, top)``, each ``(N, Q)``: the softmax probability of the target per query slot
        (float32), and whether the target is the query's most probable real class."""
        x = resize_to_height(frames, self.height)
        if self.norm is not None:
            x = normalize(x, *self.norm)
        logits = self.model(pixel_values=x.to(device=device, dtype=dtype)).logits.float()
        probs = logits.softmax(dim=-1)
        p = probs[..., self.target_id]
        top = probs[..., :-1].argmax(dim=-1) == self.target_id
        return p, top
