import os

# Unit tests load built-in plugins only; tests of third-party loading set VADER_PLUGINS themselves.
os.environ.setdefault("VADER_PLUGINS", "")
os.environ["HF_HUB_OFFLINE"] = "1"
# vader's own cache (the built-in conditioning images) in a folder of the test session, not the user's home.
os.environ.setdefault("VADER_CACHE", __import__("tempfile").mkdtemp(prefix="vader-cache-"))
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


@pytest.fixture
def install(tmp_path, monkeypatch):
    """``install(dist, source, **kw)``: a plugin package laid out as pip installs it (see
    :func:`vader_core.testing.plugin_package`), loaded by a fresh registry beside the built-ins."""
    from vader_core import plugins
    from vader_core.testing import plugin_package

    def go(dist: str, source: str, **kw) -> None:
        site = tmp_path / "site"
        plugin_package(site, dist, source, **kw)
        monkeypatch.syspath_prepend(str(site))
        loaded = {d.strip() for d in os.environ.get("VADER_PLUGINS", "").split(",") if d.strip()}
        monkeypatch.setenv("VADER_PLUGINS", ",".join(sorted(loaded | {dist})))
        plugins.reset()

    return go
