import os

# Nothing downloads in these tests; entry points load only this plugin (plus vader's built-ins).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["VADER_PLUGINS"] = "video_rewards"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import shutil  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

# The models are tiny: one thread is faster than fighting over a shared machine's cores.
torch.set_num_threads(1)

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def _fresh_registry(monkeypatch):
    from vader_core import plugins

    # Per test: the core suite, run in the same session, sets its own value.
    monkeypatch.setenv("VADER_PLUGINS", "video_rewards")
    plugins.reset()
    yield
    plugins.reset()


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty, offline Hugging Face cache; ``hub_cache.put(repo_id, directory)`` fills a snapshot of a repo
    exactly where ``from_pretrained`` looks for it."""
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


def moving_clip(batch: int, frames: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Smooth colour waves drifting a little each frame: ``(B, F, 3, H, W)`` in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    phase = torch.rand(batch, 3, 1, 1, generator=g) * 6
    return torch.stack([0.5 + 0.5 * torch.sin(6 * xx + 4 * yy + phase + 0.3 * t) for t in range(frames)], dim=1)


@pytest.fixture
def clip():
    """:func:`moving_clip`, for tests (conftest modules are not importable under --import-mode=importlib)."""
    return moving_clip
