from pathlib import Path

import pytest

from vader_core.testing import only_plugin

pytest_plugins = ["vader_core.testing.fixtures"]
vader_plugin_name = only_plugin("modelscope")


@pytest.fixture(scope="session")
def tiny_dir(saved_pipeline) -> Path:
    """Tiny random ModelScope components saved by the stock pipeline (diffusers layout, model_index.json),
    with a DDIM scheduler configuration, as in the hub repository."""
    from diffusers import DDIMScheduler, TextToVideoSDPipeline
    from vader_modelscope.backbone import scheduler_config
    from vader_modelscope.tiny import tiny_components

    scheduler = DDIMScheduler.from_config(scheduler_config())
    return saved_pipeline(TextToVideoSDPipeline, {**tiny_components(0), "scheduler": scheduler}, "tiny-modelscope")
