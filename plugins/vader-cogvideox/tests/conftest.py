from pathlib import Path

import pytest

from vader_core.testing import only_plugin

pytest_plugins = ["vader_core.testing.fixtures"]
vader_plugin_name = only_plugin("cogvideox")


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    """CogVideoX 1.5 T2V layout (rotary, temporal patches of 2), tiny, CogVideoX DDIM."""
    from vader_cogvideox.tiny import save_tiny

    return save_tiny(tmp_path_factory.mktemp("tiny-cogvideox"), "1.5")


@pytest.fixture(scope="session")
def tiny_i2v_dir(tmp_path_factory) -> Path:
    """CogVideoX 1.5 I2V layout (ofs embedding, inverted latent scale), tiny, CogVideoX DDIM."""
    from vader_cogvideox.tiny import save_tiny

    return save_tiny(tmp_path_factory.mktemp("tiny-cogvideox-i2v"), "1.5-i2v")
