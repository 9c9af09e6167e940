from pathlib import Path

import pytest

from vader_core.testing import only_plugin

pytest_plugins = ["vader_core.testing.fixtures"]
vader_plugin_name = only_plugin("hunyuanvideo")


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    """HunyuanVideo 1.5 text-to-video layout, tiny."""
    from vader_hunyuanvideo.tiny import save_tiny

    return save_tiny(tmp_path_factory.mktemp("tiny-hunyuan"))


@pytest.fixture(scope="session")
def tiny_i2v_dir(tmp_path_factory) -> Path:
    """HunyuanVideo 1.5 image-to-video layout, tiny."""
    from vader_hunyuanvideo.tiny import save_tiny

    return save_tiny(tmp_path_factory.mktemp("tiny-hunyuan-i2v"), pipeline="HunyuanVideo15ImageToVideoPipeline")
