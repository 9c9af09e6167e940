from pathlib import Path

import pytest

from vader_core.testing import only_plugin

pytest_plugins = ["vader_core.testing.fixtures"]
vader_plugin_name = only_plugin("svd")


@pytest.fixture(scope="session")
def tiny_dir(saved_pipeline) -> Path:
    """Tiny random SVD components saved by the stock pipeline (diffusers layout, model_index.json)."""
    from diffusers import StableVideoDiffusionPipeline
    from vader_svd.tiny import tiny_components

    return saved_pipeline(StableVideoDiffusionPipeline, tiny_components(0), "tiny-svd")
