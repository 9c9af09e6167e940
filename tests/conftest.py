import os

# Unit tests load built-in plugins only; tests of third-party loading set VADER_PLUGINS themselves.
os.environ.setdefault("VADER_PLUGINS", "")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_registry():
    from vader_core import plugins

    plugins.reset()
    yield
    plugins.reset()
