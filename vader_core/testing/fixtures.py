"""A pytest plugin with the fixtures every vader plugin's tests share.

A plugin's ``tests/conftest.py``::

    from vader_core.testing import only_plugin

    pytest_plugins = ["vader_core.testing.fixtures"]
    vader_plugin_name = only_plugin("redness")  # the entry-point name in your pyproject.toml

What it gives:

- Nothing downloads: ``HF_HUB_OFFLINE=1`` before any test imports the hub client. Torch runs on one
  thread: on tiny models that beats threads fighting over a shared machine's cores.
- A fresh plugin registry for every test, loading vader's built-ins and the plugin named by the fixture
  ``vader_plugin_name`` only (default ``""``: the built-ins alone), so another installed plugin, broken or
  not, never changes a result.
- ``hub_cache``: an empty offline Hugging Face cache; ``hub_cache.put(repo_id, files)`` files a snapshot
  where ``from_pretrained`` / ``hf_hub_download`` look (see :class:`~vader_core.testing.helpers.HubCache`).
  ``empty_hub_cache`` is its root, for tests that only need nothing to be there.
- ``make_image(h, w, seed)``: a procedural PIL image; ``image_file``: one saved as ``a_red_kite.png``
  (40x56, so a backbone's resize runs).
- ``saved_pipeline(pipeline_cls, components, name)``: tiny components saved once per session by a
  diffusers pipeline's ``save_pretrained``, for tests of ``load`` from a local directory.

Why ``pytest_plugins`` and not a ``pytest11`` entry point: an entry point would load these fixtures, the
autouse registry fixture and the offline switch included, into every pytest session of any environment
where vader is installed, the user's own unrelated projects too. Listing the plugin is one explicit line.
pytest accepts ``pytest_plugins`` in a conftest it loads before collection: the rootdir's, or that of a
directory named on the command line (``pytest plugins/vader-svd/tests``), as vader's Makefile does.
"""

from __future__ import annotations

import os

# Before any test module imports huggingface_hub, which reads these once.
os.environ["HF_HUB_OFFLINE"] = "1"
# vader's own cache (the built-in conditioning images) in a folder of the test session, not the user's home.
os.environ.setdefault("VADER_CACHE", __import__("tempfile").mkdtemp(prefix="vader-cache-"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402

from .helpers import HubCache, draw_image, offline_hub_cache, registry_of  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    import torch

    torch.set_num_threads(1)


# Session-scoped so that fixtures wider than a test (a training run shared by a class) can read it too.
@pytest.fixture(scope="session")
def vader_plugin_name() -> str:
    """The external plugins a test loads (``VADER_PLUGINS`` syntax; ``""``: vader's built-ins only); a conftest
    overrides it with :func:`~vader_core.testing.helpers.only_plugin`."""
    return ""


@pytest.fixture(autouse=True)
def _vader_registry(vader_plugin_name: str) -> Iterator[None]:
    # Per test, not per session: other suites in the same run (the core's, another plugin's) load others.
    with registry_of(vader_plugin_name):
        yield


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HubCache:
    """An empty, offline Hugging Face cache; ``hub_cache.put(repo_id, files)`` fills a repository's snapshot."""
    return offline_hub_cache(tmp_path / "hf-cache", monkeypatch)


@pytest.fixture
def empty_hub_cache(hub_cache: HubCache) -> Path:
    """The root of an empty, offline Hugging Face cache: a hub id can only fail to load."""
    return hub_cache.root


@pytest.fixture
def make_image() -> Callable[..., Any]:
    """``make_image(h, w, seed=0)``: a PIL test image (:func:`~vader_core.testing.helpers.draw_image`)."""
    return draw_image


@pytest.fixture(scope="session")
def image_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A conditioning image whose size (40x56) differs from a tiny video's, so the backbone's resize runs."""
    p = tmp_path_factory.mktemp("images") / "a_red_kite.png"
    draw_image(40, 56, seed=1).save(p)
    return p


@pytest.fixture(scope="session")
def saved_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Callable[[type, dict[str, Any], str], Path]:
    """``saved_pipeline(pipeline_cls, components, name)``: ``pipeline_cls(**components).save_pretrained`` in a
    fresh session directory named after ``name`` (diffusers layout, ``model_index.json``); returns it."""

    def save(pipeline_cls: type, components: dict[str, Any], name: str) -> Path:
        d = tmp_path_factory.mktemp(name)
        pipeline_cls(**components).save_pretrained(d)
        return d

    return save
