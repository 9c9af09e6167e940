"""What a plugin's tests use: contract mixins, CLI contract mixins, helpers, and a pytest fixtures plugin.

A plugin's tests subclass the mixins (``class TestRedness(RewardContractTests): reward_cls = Redness``;
:mod:`vader_core.testing.contracts` shows each) and take the shared fixtures through ``tests/conftest.py``::

    from vader_core.testing import only_plugin

    pytest_plugins = ["vader_core.testing.fixtures"]
    vader_plugin_name = only_plugin("redness")

| module | holds |
| --- | --- |
| ``contracts`` | :class:`RewardContractTests`, :class:`MetricContractTests`, :class:`BackboneContractTests`, |
|  | :class:`PluginPackageContractTests` (light import, entry point) |
| ``cli_contracts`` | :class:`BackboneCLIContractTests`, :class:`RewardCLIContractTests`: the real commands |
| ``helpers`` | :func:`run_cli`, :func:`assert_one_line_error`, :func:`save_random_lora`, :func:`plant_pickle`, ... |
| ``parity`` | :func:`save_pipeline`, :func:`stock_frames`, :func:`vader_frames`, :func:`assert_frames_match`: |
|  | ``vader generate`` against a stock diffusers pipeline on the same saved tiny weights |
| ``fixtures`` | the pytest plugin (not imported here: pytest loads it from ``pytest_plugins``) |

Every test builds tiny components on the CPU (``load_tiny``) and runs in seconds.
"""

from .cli_contracts import BackboneCLIContractTests, RewardCLIContractTests
from .contracts import BackboneContractTests, MetricContractTests, PluginPackageContractTests, RewardContractTests
from .helpers import (
    QUIET_TRAINING,
    HubCache,
    assert_one_line_error,
    draw_image,
    lora_checkpoint,
    offline_hub_cache,
    only_plugin,
    plant_pickle,
    planted_pickle_works,
    plugin_package,
    randomize_lora_b,
    read_metrics,
    registry_of,
    run_cli,
    save_images,
    save_random_lora,
    save_video,
    set_options,
)
from .helpers import _CreatesFile as _CreatesFile
from .parity import (
    assert_frames_match,
    save_pipeline,
    stock_frames,
    vader_frames,
)  # the core's tests plant pickles of it in files of every kind

__all__ = [
    "BackboneCLIContractTests",
    "BackboneContractTests",
    "HubCache",
    "MetricContractTests",
    "PluginPackageContractTests",
    "QUIET_TRAINING",
    "RewardCLIContractTests",
    "RewardContractTests",
    "assert_frames_match",
    "assert_one_line_error",
    "draw_image",
    "lora_checkpoint",
    "offline_hub_cache",
    "only_plugin",
    "plant_pickle",
    "planted_pickle_works",
    "plugin_package",
    "randomize_lora_b",
    "read_metrics",
    "registry_of",
    "run_cli",
    "save_images",
    "save_pipeline",
    "save_random_lora",
    "save_video",
    "set_options",
    "stock_frames",
    "vader_frames",
]
