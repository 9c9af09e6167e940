from pathlib import Path

import pytest

from vader_core.testing import only_plugin

pytest_plugins = ["vader_core.testing.fixtures"]
vader_plugin_name = only_plugin("wan")


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    """Wan 2.1 T2V layout, tiny."""
    from vader_wan.tiny import save_tiny

    return save_tiny(tmp_path_factory.mktemp("tiny-wan"))


def pytest_configure(config):
    # Registered at the repository root too; here for runs from inside this plugin's folder.
    config.addinivalue_line("markers", "distributed: several CPU processes under torchrun (gloo)")
