import os

# Nothing downloads in these tests.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

# The models are tiny: one thread is faster than fighting over a shared machine's cores.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _only_this_plugin(monkeypatch):
    """Entry points load only this plugin (plus vader's built-ins), with a fresh registry per test."""
    from vader_core import plugins

    monkeypatch.setenv("VADER_PLUGINS", "videocrafter2")
    plugins.reset()
    yield
    plugins.reset()


@pytest.fixture
def tiny_architecture(monkeypatch):
    """``load()`` reads checkpoints into the tiny configurations instead of the official 512 ones."""
    from vader_videocrafter import VideoCrafterBackbone
    from vader_videocrafter.tiny import TINY_OPENCLIP, TINY_UNET, TINY_VAE

    monkeypatch.setattr(VideoCrafterBackbone, "architecture",
                        {"unet_config": TINY_UNET, "vae_config": TINY_VAE, "text_config": TINY_OPENCLIP})


@pytest.fixture(scope="session")
def official_sd() -> dict:
    """The tiny components (seed 0) as a state dict in the layout of VideoCrafter2's model.ckpt, with the
    schedule buffers the official LatentDiffusion saves."""
    from vader_videocrafter.backbone import lvdm_alphas_cumprod, lvdm_scale_arr
    from vader_videocrafter.tiny import official_state_dict, tiny_components

    sd = official_state_dict(tiny_components(0))
    ac = lvdm_alphas_cumprod()
    sd.update({"betas": 1 - ac / torch.cat([torch.ones(1), ac[:-1]]), "alphas_cumprod": ac, "scale_arr": lvdm_scale_arr()})
    return sd


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory, official_sd) -> Path:
    """A Lightning-style ``model.ckpt``: ``{"state_dict": ..., "global_step": ...}``."""
    d = tmp_path_factory.mktemp("tiny-videocrafter2")
    torch.save({"state_dict": official_sd, "global_step": 0}, d / "model.ckpt")
    return d / "model.ckpt"


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
