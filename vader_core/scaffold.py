"""``vader new reward|metric|backbone NAME``: a separately installable plugin package that passes its own tests.

The package is shaped like every plugin distribution of vader's repository::

    vader-NAME/
      pyproject.toml          the entry point in the group ``vader``, ``test`` extra
      README.md               install, use, test
      src/vader_NAME/
        __init__.py           the hook (light: imports no torch)
        reward.py             the class (torch imported inside its methods only)
      tests/
        conftest.py           vader's shared fixtures, this plugin alone in the registry
        test_NAME.py          the contract mixins, a non-default option, the package contract

Everything generated works as it stands (a brightness-like reward, a contrast-like metric, a tiny random
UNet text-to-video backbone); the comments say what to replace.
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path

from .errors import ConfigError

KINDS = ("reward", "metric", "backbone")


def names(name: str) -> dict[str, str]:
    """The spellings of a plugin name: registry name, distribution, package, class."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or keyword.iskeyword(name):
        raise ConfigError(
            f"plugin name must be lower-case letters, digits and underscores, starting with a letter, got {name!r} "
            "(e.g. `sharpness_v2`)"
        )
    return {
        "name": name,
        "dist": "vader-" + name.replace("_", "-"),
        "pkg": "vader_" + name,
        "cls": "".join(p.capitalize() for p in name.split("_")),
    }


_PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.1.0"
description = "{summary}"
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["vader"]

[project.optional-dependencies]
# vader[test] brings pytest and the contract mixins' needs.
test = ["vader[test]"]

# How vader finds the plugin: `vader plugins` lists it once this package is installed.
[project.entry-points.vader]
{name} = "{pkg}"

[tool.setuptools.packages.find]
where = ["src"]

[tool.pytest.ini_options]
testpaths = ["tests"]
"""

_INIT = '''\
"""{dist}: the {kind} `{name}` for vader.

Keep this module light: `vader plugins` imports it to list the plugin, so it imports no torch (the class
imports torch inside its methods). The package's tests check it (`test_import_is_light`).
"""

from vader_core import hookimpl

from .{kind} import {cls}

__all__ = ["{cls}"]


@hookimpl
def {hook}(register):
    register({cls})
'''

_REWARD = '''\
"""The reward `{name}`: replace the score with yours."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from vader_core import RewardOptions, RewardPlugin

if TYPE_CHECKING:  # torch only for the annotations: importing the package stays light
    import torch


class {cls}Options(RewardOptions):
    gain: float = Field(1.0, gt=0, description="Multiplier of the score.")


class {cls}(RewardPlugin):
    """Mean brightness of the frames times `gain`: a placeholder score to replace with yours."""

    name = "{name}"
    summary = "{summary}"
    Options: ClassVar = {cls}Options
    # "frames": score_frames gets decoded frames (N, 3, H, W) and the base class averages per video;
    # "clip": write score_clip(video (B, F, 3, H, W), prompts) instead, every frame is decoded for it.
    scores = "frames"
    # The scores' bounds: the contract tests check them, and a run warns once when a score leaves them.
    value_range = (0.0, 1.0)

    def load(self, device: torch.device | str, dtype: torch.dtype) -> None:
        # Load your model here (frozen, eval mode, on `device` in `dtype`); raise
        # vader_core.errors.MissingWeightsError saying what to download when the weights are missing.
        super().load(device, dtype)

    def score_frames(self, frames: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        # frames: (N, 3, H, W) in [0, 1] on the run's device, in the run's dtype (bf16/fp16 under
        # autocast); prompts: N strings. Return (N,) that stays differentiable in `frames`:
        # no .detach(), .item() or numpy on the way.
        return self.options.gain * frames.mean(dim=(1, 2, 3)).clamp(0, 1)
'''

_METRIC = '''\
"""The guard metric `{name}`: replace the score with yours."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from vader_core import MetricOptions, MetricPlugin

if TYPE_CHECKING:  # torch only for the annotations: importing the package stays light
    import torch


class {cls}Options(MetricOptions):
    per_frame: bool = Field(False, description="Average the contrast of each frame instead of the whole clip's.")


class {cls}(MetricPlugin):
    """Contrast (standard deviation of the pixels) of each video: a placeholder score to replace with yours."""

    name = "{name}"
    summary = "{summary}"
    Options: ClassVar = {cls}Options
    # One score per video; "seeds" would score each prompt from its videos of every seed (features +
    # compute_seeds).
    scores = "video"
    value_range = (0.0, 0.5)  # the standard deviation of values in [0, 1] is at most 0.5

    def compute(self, video: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        # video: (B, F, 3, H, W) in [0, 1]; runs without autograd. Return (B,), higher is better.
        if self.options.per_frame:
            return video.flatten(2).std(dim=2).mean(dim=1)
        return video.flatten(1).std(dim=1)
'''

_BACKBONE = '''\
"""The backbone `{name}`: a text-to-video model in diffusers' TextToVideoSDPipeline layout (UNet3D, VAE, CLIP).

`load` reads the pretrained components from `options.model` (a hub id or a local save_pretrained folder);
`load_tiny` builds the same architecture with tiny random weights for the tests. Another architecture:
subclass vader_core.BackbonePlugin and write its five steps (docs/plugins.md, "A backbone plugin").
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from vader_core.unet_t2v import UNetT2VBackbone, UNetT2VOptions


class {cls}Options(UNetT2VOptions):
    model: str | None = Field(
        None, description="Hub id or local directory of the pretrained weights (diffusers layout)."
    )
    height: int = Field(256, ge=8, description="Frame height in pixels (multiple of 8).")
    width: int = Field(256, ge=8, description="Frame width in pixels (multiple of 8).")
    frames: int = Field(16, ge=1, description="Number of frames.")


def tiny_components(seed: int = 0) -> dict[str, Any]:
    """The real classes with tiny random weights: every code path runs on a CPU in seconds."""
    import torch
    from diffusers import AutoencoderKL, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from vader_core.tokenizers import clip_tokenizer

    torch.manual_seed(seed)
    unet = UNet3DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        block_out_channels=(32, 64),
        layers_per_block=1,
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=32,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(32, 64),
        latent_channels=4,
        norm_num_groups=32,
        sample_size=32,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=32,
            intermediate_size=64,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=77,
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=49407,
            projection_dim=32,
        )
    )
    return {{"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": clip_tokenizer()}}


class {cls}(UNetT2VBackbone):
    """{summary}"""

    name = "{name}"
    summary = "{summary}"
    Options: ClassVar = {cls}Options
    # The hub id `load` reads when `backbone.model` is not set (None: the option is required).
    default_model: ClassVar[str | None] = None

    def load_tiny(self, device: Any, dtype: Any, seed: int = 0) -> None:
        comps = tiny_components(seed)
        comps["scheduler"] = self.make_scheduler()
        self.setup(comps, device, dtype)
'''

_CONFTEST = """\
from vader_core.testing import only_plugin

# vader's shared fixtures: offline hub, one torch thread, a fresh registry with this plugin alone.
pytest_plugins = ["vader_core.testing.fixtures"]
vader_plugin_name = only_plugin("{name}")
"""

_TEST_REWARD = '''\
"""The contract every vader reward keeps, on the defaults and on a non-default option."""

import torch

from vader_core.testing import PluginPackageContractTests, RewardContractTests
from {pkg} import {cls}


class Test{cls}(RewardContractTests):
    reward_cls = {cls}
    # Options that must be refused: out of bounds, a boolean for a number, an unknown name.
    invalid_options = [{{"gain": 0}}, {{"gain": True}}, {{"no_such_option": 1}}]


class Test{cls}Gain(RewardContractTests):
    """The same contract with a non-default option: override make_reward."""

    reward_cls = {cls}

    def make_reward(self):
        r = {cls}({cls}.Options(gain=0.5))
        r.load_tiny("cpu", torch.float32, seed=0)
        return r

    def test_gain_scales_the_score(self):
        video = self.make_video()
        base = Test{cls}.make_reward(self)
        torch.testing.assert_close(self.make_reward()(video, self._prompts()), 0.5 * base(video, self._prompts()))


class TestPackage(PluginPackageContractTests):
    package = "{pkg}"
    distribution = "{dist}"
    plugin_classes = [{cls}]
'''

_TEST_METRIC = '''\
"""The contract every vader guard metric keeps, on the defaults and on a non-default option."""

import torch

from vader_core.testing import MetricContractTests, PluginPackageContractTests
from {pkg} import {cls}


class Test{cls}(MetricContractTests):
    metric_cls = {cls}
    invalid_options = [{{"per_frame": "sometimes"}}, {{"no_such_option": 1}}]


class Test{cls}PerFrame(MetricContractTests):
    """The same contract with a non-default option: override make_metric."""

    metric_cls = {cls}

    def make_metric(self):
        m = {cls}({cls}.Options(per_frame=True))
        m.load_tiny("cpu", torch.float32, seed=0)
        return m


class TestPackage(PluginPackageContractTests):
    package = "{pkg}"
    distribution = "{dist}"
    plugin_classes = [{cls}]
'''

_TEST_BACKBONE = '''\
"""The contract every vader backbone keeps: generation, determinism, LoRA gradients, checkpointing."""

from vader_core.testing import BackboneContractTests, PluginPackageContractTests
from {pkg} import {cls}


class Test{cls}(BackboneContractTests):
    backbone_cls = {cls}
    # Small sizes for the tiny model; the tests call load_tiny.
    options = {{"height": 32, "width": 32, "frames": 2, "steps": 2}}


class TestPackage(PluginPackageContractTests):
    package = "{pkg}"
    distribution = "{dist}"
    plugin_classes = [{cls}]
'''

_README = """\
# {dist}

{summary}

A plugin for [vader](https://github.com/), the reward-gradient alignment framework for video diffusion
models: the {kind} `{name}`.

```bash
pip install -e .            # then `vader plugins {name}` shows it and its options
{use}
```

## Tests

```bash
pip install -e ".[test]"
pytest
```

The tests are vader's contract mixins (`vader_core.testing`): {tests}. Each assertion says what is wrong.
To test a non-default option, subclass the mixin again and override `make_{kind}` (see the tests).

## Rules that keep vader fast and safe

- `src/{pkg}/__init__.py` imports no torch, diffusers or transformers: `vader plugins` imports it to
  list the plugin. Import heavy libraries inside methods (`test_import_is_light` checks it).
- Weights are loaded in `load(device, dtype)`, never at import; nothing downloads in tests
  (`load_tiny` builds a tiny random model of the real architecture).
"""

_USE = {
    "reward": "vader train --backbone tiny --reward {name} --set rewards.0.gain=2",
    "metric": "vader eval --backbone tiny --random-weights --reward brightness --metric {name} --prompt 'a cat'",
    "backbone": "vader train --backbone {name} --reward brightness --random-weights --max-steps 2",
}
_TESTS = {
    "reward": "shape, dtype, value range, determinism, batch independence, gradient reaching the pixels, "
    "frozen model, refused options, a light import and the entry point",
    "metric": "shape, value range, determinism, no autograd, refused options, a light import and the entry point",
    "backbone": "generation shape and range, determinism under a seed, decoding a subset of frames, LoRA targets, "
    "gradients reaching the LoRA only, checkpointing levels, a light import and the entry point",
}
_SUMMARY = {
    "reward": "Mean brightness of the frames (a template: replace with your score).",
    "metric": "Contrast of each video (a template: replace with your score).",
    "backbone": "Text-to-video UNet in diffusers' TextToVideoSDPipeline layout (a template).",
}


def files(kind: str, name: str) -> dict[str, str]:
    """Relative path -> text of every file of the package for a ``kind`` plugin called ``name``."""
    if kind not in KINDS:
        raise ConfigError(f"`vader new` makes a {', '.join(KINDS)}; got {kind!r}")
    n = names(name)
    fill = {**n, "kind": kind, "summary": _SUMMARY[kind], "hook": f"register_{kind}s"}
    body = {"reward": _REWARD, "metric": _METRIC, "backbone": _BACKBONE}[kind]
    test = {"reward": _TEST_REWARD, "metric": _TEST_METRIC, "backbone": _TEST_BACKBONE}[kind]
    readme = _README.format(**fill, use=_USE[kind].format(**n), tests=_TESTS[kind])
    return {
        "pyproject.toml": _PYPROJECT.format(**fill),
        "README.md": readme,
        f"src/{n['pkg']}/__init__.py": _INIT.format(**fill),
        f"src/{n['pkg']}/{kind}.py": body.format(**fill),
        "tests/conftest.py": _CONFTEST.format(**fill),
        f"tests/test_{name}.py": test.format(**fill),
    }


def write(kind: str, name: str, parent: str | Path) -> Path:
    """Write the package into ``parent/vader-NAME`` (which must not exist yet); returns that directory."""
    out = Path(parent) / names(name)["dist"]
    if out.exists():
        raise ConfigError(f"{out} already exists; pick another name or --dir, nothing was written")
    for rel, text in files(kind, name).items():
        p = out / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return out
