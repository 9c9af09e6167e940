import os

# Nothing downloads in these tests; entry points load only this plugin (plus vader's built-ins).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["VADER_PLUGINS"] = "detection_rewards"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import shutil  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

# The models are tiny: one thread is faster than fighting over a shared machine's cores.
torch.set_num_threads(1)

COMMIT = "0123456789abcdef0123456789abcdef01234567"
#: A small label set for the saved tiny YOLOS: random logits then give each class ~1/5 probability,
#: near the 0.2 threshold, so the target is detected in some slots and not in others.
SMALL_LABELS = {0: "person", 1: "book", 2: "dog", 3: "red umbrella"}


@pytest.fixture(autouse=True)
def _fresh_registry(monkeypatch):
    from vader_core import plugins

    # Per test: the core suite, run in the same session, sets its own value.
    monkeypatch.setenv("VADER_PLUGINS", "detection_rewards")
    plugins.reset()
    yield
    plugins.reset()


def save_yolos(path: Path, seed: int = 0, labels: dict | None = None) -> Path:
    """A tiny random ``YolosForObjectDetection`` saved with ``save_pretrained`` (config + safetensors)."""
    from transformers import YolosForObjectDetection

    from vader_detection_rewards import yolos
    from vader_core.modules import seeded
    from vader_detection_rewards._common import spread_init

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


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty, offline Hugging Face cache; ``hub_cache.put(repo_id, directory)`` fills a snapshot of a repo
    exactly where ``from_pretrained`` / ``hf_hub_download`` look for it."""
    from huggingface_hub import constants

    root = tmp_path / "hf-cache"
    root.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(root))

    def put(repo_id: str, src: Path) -> Path:
        repo = root / f"models--{repo_id.replace('/', '--')}"
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / "main").write_text(COMMIT)
        snap = repo / "snapshots" / COMMIT
        snap.mkdir(parents=True, exist_ok=True)
        for f in Path(src).iterdir():
            shutil.copy(f, snap / f.name)
        return snap

    return SimpleNamespace(put=put, root=root)


@pytest.fixture
def savers():
    """``savers.yolos(path, seed, labels)`` and ``savers.owlvit(path, seed)``: tiny models saved for ``load``."""
    return SimpleNamespace(yolos=save_yolos, owlvit=save_owlvit)
