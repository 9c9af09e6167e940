import os

# Nothing downloads in these tests.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

# The models are tiny: one thread is faster than fighting over a shared machine's cores.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _only_this_plugin(monkeypatch):
    """Entry points load only this plugin (plus vader's built-ins), with a fresh registry per test."""
    from vader_core import plugins

    monkeypatch.setenv("VADER_PLUGINS", "modelscope")
    plugins.reset()
    yield
    plugins.reset()


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    """Tiny random ModelScope components saved by the stock pipeline (diffusers layout, model_index.json),
    with a DDIM scheduler configuration, as in the hub repository."""
    from diffusers import DDIMScheduler, TextToVideoSDPipeline

    from vader_modelscope.backbone import scheduler_config
    from vader_modelscope.tiny import tiny_components

    d = tmp_path_factory.mktemp("tiny-modelscope")
    pipe = TextToVideoSDPipeline(**tiny_components(0), scheduler=DDIMScheduler.from_config(scheduler_config()))
    pipe.save_pretrained(d)
    return d


@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    """An empty, offline Hugging Face cache."""
    from huggingface_hub import constants

    root = tmp_path / "hf-cache"
    root.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return root
