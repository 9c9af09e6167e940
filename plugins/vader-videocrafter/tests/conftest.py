from pathlib import Path

import pytest

from vader_core.testing import only_plugin

pytest_plugins = ["vader_core.testing.fixtures"]
vader_plugin_name = only_plugin("videocrafter2")


@pytest.fixture
def tiny_architecture(monkeypatch):
    """``load()`` reads checkpoints into the tiny configurations instead of the official 512 ones."""
    from vader_videocrafter import VideoCrafterBackbone
    from vader_videocrafter.tiny import TINY_OPENCLIP, TINY_UNET, TINY_VAE

    monkeypatch.setattr(
        VideoCrafterBackbone,
        "architecture",
        {"unet_config": TINY_UNET, "vae_config": TINY_VAE, "text_config": TINY_OPENCLIP},
    )


@pytest.fixture(scope="session")
def official_sd() -> dict:
    """The tiny components (seed 0) as a state dict in the layout of VideoCrafter2's model.ckpt, with the
    schedule buffers the official LatentDiffusion saves."""
    import torch
    from vader_videocrafter.backbone import lvdm_alphas_cumprod, lvdm_scale_arr
    from vader_videocrafter.tiny import official_state_dict, tiny_components

    sd = official_state_dict(tiny_components(0))
    ac = lvdm_alphas_cumprod()
    sd.update(
        {"betas": 1 - ac / torch.cat([torch.ones(1), ac[:-1]]), "alphas_cumprod": ac, "scale_arr": lvdm_scale_arr()}
    )
    return sd


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory, official_sd) -> Path:
    """A Lightning-style ``model.ckpt``: ``{"state_dict": ..., "global_step": ...}``."""
    import torch

    d = tmp_path_factory.mktemp("tiny-videocrafter2")
    torch.save({"state_dict": official_sd, "global_step": 0}, d / "model.ckpt")
    return d / "model.ckpt"
