import os

# Unit tests load built-in plugins only; tests of third-party loading set VADER_PLUGINS themselves.
os.environ.setdefault("VADER_PLUGINS", "")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_registry(monkeypatch):
    from vader_core import plugins

    # Per test, not per session: plugin test suites in the same run set their own value.
    monkeypatch.setenv("VADER_PLUGINS", "")
    plugins.reset()
    yield
    plugins.reset()
