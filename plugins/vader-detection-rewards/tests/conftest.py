from pathlib import Path
from types import SimpleNamespace

import pytest

from vader_core.testing import only_plugin

pytest_plugins = ["vader_core.testing.fixtures"]
vader_plugin_name = only_plugin("detection_rewards")

#: A small label set for the saved tiny YOLOS: random logits then give each class ~1/5 probability,
#: near the 0.2 threshold, so the target is detected in some slots and not in others.
SMALL_LABELS = {0: "person", 1: "book", 2: "dog", 3: "red umbrella"}


def save_yolos(path: Path, seed: int = 0, labels: dict | None = None) -> Path:
    """A tiny random ``YolosForObjectDetection`` saved with ``save_pretrained`` (config + safetensors)."""
    from transformers import YolosForObjectDetection
    from vader_detection_rewards import yolos
    from vader_detection_rewards._common import spread_init

    from vader_core.modules import seeded

    cfg = yolos.tiny_config()
    if labels is not None:
        cfg.id2label = dict(labels)
        cfg.label2id = {v: k for k, v in labels.items()}
    with seeded(seed):
        spread_init(YolosForObjectDetection(cfg)).save_pretrained(path)
    return path


def save_owlvit(path: Path, seed: int = 0) -> Path:
    """A tiny random ``OwlViTForObjectDetection`` and its CLIP tokenizer, saved with ``save_pretrained``."""
    from vader_detection_rewards import owlvit

    owlvit.tiny_model(seed).save_pretrained(path)
    owlvit.tiny_tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def saved(tmp_path_factory):
    """Tiny saved detectors shared by the tests: ``yolos_coco`` (COCO labels), ``yolos_small``
    (:data:`SMALL_LABELS`), ``owlvit``."""
    root = tmp_path_factory.mktemp("detectors")
    return SimpleNamespace(
        yolos_coco=save_yolos(root / "yolos-coco"),
        yolos_small=save_yolos(root / "yolos-small", seed=2, labels=SMALL_LABELS),
        owlvit=save_owlvit(root / "owlvit"),
    )
