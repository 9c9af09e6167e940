import os

# Nothing downloads in these tests.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

# The models are tiny: one thread is faster than fighting over a shared machine's cores.
torch.set_num_threads(1)

#: A tiny size the official timestep transform accepts (17 frames: one temporal chunk of 5 latent frames).
TINY = {"height": 32, "width": 32, "frames": 17, "steps": 2}


@pytest.fixture(autouse=True)
def _only_this_plugin(monkeypatch):
    """Entry points load only this plugin (plus vader's built-ins), with a fresh registry per test."""
    from vader_core import plugins

    monkeypatch.setenv("VADER_PLUGINS", "opensora")
    plugins.reset()
    yield
    plugins.reset()


@pytest.fixture
def tiny_architecture(monkeypatch):
    """``load()`` reads weights into the tiny VAE configurations instead of the released ones (STDiT3 reads
    its own from config.json)."""
    from vader_opensora import OpenSoraBackbone
    from vader_opensora.tiny import TINY_SPATIAL_VAE, TINY_TEMPORAL_VAE

    monkeypatch.setattr(OpenSoraBackbone, "architecture",
                        {"spatial_vae": TINY_SPATIAL_VAE, "temporal_vae": TINY_TEMPORAL_VAE})


@pytest.fixture(scope="session")
def tiny_release(tmp_path_factory) -> dict[str, Path]:
    """The tiny components (seed 0) saved as the released repositories hold them."""
    from vader_opensora.tiny import save_official_layout, tiny_components

    return save_official_layout(tiny_components(0), tmp_path_factory.mktemp("tiny-opensora"))


@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    """An empty, offline Hugging Face cache."""
    from huggingface_hub import constants

    root = tmp_path / "hf-cache"
    root.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return root
