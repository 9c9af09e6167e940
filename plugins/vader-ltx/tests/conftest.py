from pathlib import Path

import pytest

from vader_core.testing import only_plugin

pytest_plugins = ["vader_core.testing.fixtures"]
vader_plugin_name = only_plugin("ltx")


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    """LTX-Video 0.9.0 text-to-video layout, tiny (dynamically shifted Euler)."""
    from vader_ltx.tiny import save_tiny

    return save_tiny(tmp_path_factory.mktemp("tiny-ltx"))


@pytest.fixture(scope="session")
def tiny_i2v_dir(tmp_path_factory) -> Path:
    """The same components saved by LTXImageToVideoPipeline."""
    from vader_ltx.tiny import save_tiny

    return save_tiny(tmp_path_factory.mktemp("tiny-ltx-i2v"), pipeline="LTXImageToVideoPipeline")
