from pathlib import Path

import pytest

from vader_core.testing import only_plugin

pytest_plugins = ["vader_core.testing.fixtures"]
vader_plugin_name = only_plugin("opensora")


@pytest.fixture
def tiny_architecture(monkeypatch):
    """``load()`` reads weights into the tiny VAE configurations instead of the released ones (STDiT3 reads
    its own from config.json)."""
    from vader_opensora import OpenSoraBackbone
    from vader_opensora.tiny import TINY_SPATIAL_VAE, TINY_TEMPORAL_VAE

    monkeypatch.setattr(
        OpenSoraBackbone, "architecture", {"spatial_vae": TINY_SPATIAL_VAE, "temporal_vae": TINY_TEMPORAL_VAE}
    )


@pytest.fixture(scope="session")
def tiny_release(tmp_path_factory) -> dict[str, Path]:
    """The tiny components (seed 0) saved as the released repositories hold them."""
    from vader_opensora.tiny import save_official_layout, tiny_components

    return save_official_layout(tiny_components(0), tmp_path_factory.mktemp("tiny-opensora"))
