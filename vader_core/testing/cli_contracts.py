"""Contract mixins that run the real ``vader`` commands with a plugin, in-process, on tiny random weights.

The unit contracts (:mod:`vader_core.testing.contracts`) call a plugin's methods; these check that a user
typing the commands gets a working run::

    from vader_core.testing import BackboneCLIContractTests, RewardCLIContractTests

    class TestSVDCommands(BackboneCLIContractTests):
        backbone_cls = SVDBackbone
        options = {"height": 32, "width": 32, "frames": 3, "steps": 2}

        @pytest.fixture
        def saved_weights(self, tiny_dir):  # `vader generate` has no --random-weights: saved tiny weights
            return {"model": tiny_dir}

    class TestRednessCommands(RewardCLIContractTests):
        rewards = ["redness"]

A smoke training run is shared by the tests of a class (fixture ``training_run``): a subclass adds its own
checks of the same run as tests taking ``training_run``.
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from ..backbone import BackbonePlugin
from ..resolve import instantiate
from .helpers import (
    QUIET_TRAINING,
    assert_one_line_error,
    lora_checkpoint,
    offline_hub_cache,
    read_metrics,
    registry_of,
    run_cli,
    save_images,
    save_random_lora,
    save_video,
    set_options,
)


def _registry(request: pytest.FixtureRequest) -> contextlib.AbstractContextManager[None]:
    # A class-wide run starts before the per-test registry fixture of vader_core.testing.fixtures: it sets
    # the registry itself, from the same `vader_plugin_name` (without the fixtures plugin, as it is).
    try:
        return registry_of(request.getfixturevalue("vader_plugin_name"))
    except pytest.FixtureLookupError:
        return contextlib.nullcontext()


def _run(args: list[Any]) -> tuple[int, str, str]:
    res = run_cli(args)
    assert res[0] == 0, f"`vader {' '.join(map(str, args))}` exited {res[0]}: {res[2][-2000:]}"
    return res


class BackboneCLIContractTests:
    """``vader train --random-weights`` (two steps: finite losses, a gradient, a saved LoRA that moved),
    ``vader generate`` from saved tiny weights with and without a LoRA (the LoRA changes the frames, the
    seed fixes them), and missing weights offline failing in one line (``load`` raising
    :class:`~vader_core.errors.MissingWeightsError`, the CLI printing it) that names the hub id, the option
    and the ``hf download`` command.

    Set ``backbone_cls`` and ``options`` (a tiny size, as for
    :class:`~vader_core.testing.BackboneContractTests`), and provide the fixture ``saved_weights``: the
    backbone options (``{"model": directory}``, ...) that point ``load`` at tiny weights saved on disk.
    Image-to-video backbones get drawn conditioning images.
    """

    backbone_cls: ClassVar[type[BackbonePlugin]]
    #: Backbone options every command gets (``--set backbone.KEY=VALUE``): a tiny size.
    options: ClassVar[dict[str, Any]] = {}
    #: Keys the saved LoRA must hold, besides all starting with the denoiser's name.
    lora_keys: ClassVar[tuple[str, ...]] = ()
    #: The reward of the smoke training run.
    reward: ClassVar[str] = "brightness"
    #: More ``--set`` options of the smoke training run.
    train_options: ClassVar[dict[str, Any]] = {}
    #: The hub id named by the missing-weights error; default: the ``model`` option's default.
    hub_id: ClassVar[str | None] = None

    def _images(self) -> bool:
        return "image" in self.backbone_cls.conditioning

    def _condition(self, directory: Path) -> list[Any]:
        """``--prompt`` and, for an image-to-video backbone, ``--image`` of one generated video."""
        args: list[Any] = [] if self.backbone_cls.conditioning == "image" else ["--prompt", "a cat"]
        if self._images():
            args += ["--image", save_images(directory, ["a_red_kite"])[0]]
        return args

    @pytest.fixture(scope="class")
    def training_run(self, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
        """Two steps of ``vader train --random-weights``: ``dir``, ``rows`` (metrics.jsonl), ``lora`` (step 2)."""
        root = tmp_path_factory.mktemp(f"cli-{self.backbone_cls.name}")
        extra = dict(self.train_options)
        if self._images():
            save_images(root / "images", ["a_red_kite", "a_boat_at_sea"])
            extra.setdefault("train.images", root / "images")
        out = root / "run"
        with _registry(request):
            _run(
                [
                    "train",
                    "--backbone",
                    self.backbone_cls.name,
                    "--random-weights",
                    "--reward",
                    self.reward,
                    "--max-steps",
                    "2",
                    *set_options(QUIET_TRAINING),
                    *set_options(self.options, "backbone."),
                    "--set",
                    "lora.rank=4",
                    *set_options(extra),
                    "--output-dir",
                    out,
                    "--device",
                    "cpu",
                    "-q",
                ]
            )
        return SimpleNamespace(dir=out, rows=read_metrics(out), lora=lora_checkpoint(out, 2))

    def test_cli_train_random_weights(self, training_run: SimpleNamespace) -> None:
        rows = training_run.rows
        assert [r["step"] for r in rows] == [1, 2]
        assert all(math.isfinite(r["loss"]) and not r["skipped"] for r in rows), rows
        assert all(r["grad_norm"] > 0 for r in rows), "no gradient reached the LoRA"
        keys = list(training_run.lora)
        prefix = self.backbone_cls.denoiser_name + "."
        assert keys and all(k.startswith(prefix) for k in keys), f"LoRA keys not under `{prefix}`: {keys[:3]}"
        assert any(v.abs().sum() > 0 for k, v in training_run.lora.items() if "lora_B" in k), (
            "the LoRA did not change (lora_B starts at zero)"
        )
        for k in self.lora_keys:
            assert k in keys, f"{k} not in the saved LoRA"
        summary = json.loads((training_run.dir / "summary.json").read_text())
        assert summary["steps"] == 2 and summary["heldout_reward_before"] is not None

    def test_cli_generate_with_lora(self, tmp_path: Path, saved_weights: dict[str, Any]) -> None:
        import numpy as np
        import torch

        o = self.backbone_cls.Options.model_validate(self.options)
        bb = self.backbone_cls(o)
        bb.load_tiny("cpu", torch.float32, seed=0)
        lora = save_random_lora(
            bb.denoiser, tmp_path / "lora", prefix=bb.denoiser_name, targets=bb.default_lora_targets, std=0.5
        )
        condition = self._condition(tmp_path)

        def generate(name: str, *extra: Any) -> Any:
            out = tmp_path / f"{name}.npy"
            _run(
                [
                    "generate",
                    "--backbone",
                    self.backbone_cls.name,
                    *set_options(saved_weights, "backbone."),
                    *set_options(self.options, "backbone."),
                    *condition,
                    "--seed",
                    "3",
                    "--out",
                    out,
                    "--device",
                    "cpu",
                    "--precision",
                    "fp32",
                    *extra,
                ]
            )
            return np.load(out)

        plain, with_lora, again = generate("plain"), generate("lora", "--lora", lora), generate("again", "--lora", lora)
        assert plain.shape == (o.frames, o.height, o.width, 3)
        assert np.abs(with_lora - plain).max() > 1e-3, "the LoRA did not change the frames"
        np.testing.assert_array_equal(with_lora, again)

    def test_cli_missing_weights_is_one_line(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        import torch

        from ..errors import MissingWeightsError

        offline_hub_cache(tmp_path / "hf-cache", monkeypatch)
        hub_id = self.hub_id or self.backbone_cls.Options().model
        assert hub_id, f"{self.backbone_cls.__name__} has no default model: set `hub_id` on the test class"
        needles = (hub_id, "--set backbone.model=", "hf download", "HF_HUB_OFFLINE")
        with pytest.raises(MissingWeightsError) as e:
            instantiate(self.backbone_cls, self.options, "backbone").load("cpu", torch.float32)
        assert "\n" not in str(e.value) and all(n in str(e.value) for n in needles), str(e.value)
        res = run_cli(
            [
                "generate",
                "--backbone",
                self.backbone_cls.name,
                *set_options(self.options, "backbone."),
                *self._condition(tmp_path),
                "--out",
                str(tmp_path / "x.npy"),
                "--device",
                "cpu",
            ]
        )
        assert_one_line_error(res, *needles)


class RewardCLIContractTests:
    """``vader score --random-weights`` prints a finite score of each reward (inside its value range when it
    declares one), and ``vader train --random-weights`` on the built-in ``tiny`` backbone, with the rewards
    together in a configuration file, logs each of them (finite, in range) and saves LoRA weights that move
    at every step.

    Set ``rewards`` (registered names); ``prompt`` is the prompt of the scored video and ``train_prompts``
    those of the training run (a reward that reads something from the prompt needs its own).
    """

    rewards: ClassVar[list[str]]
    prompt: ClassVar[str] = "a cat playing chess"
    #: Frames, height and width of the video ``vader score`` reads.
    video_size: ClassVar[tuple[int, int, int]] = (3, 40, 64)
    #: Options of each reward, by name: the configuration file's, and ``--set`` of ``vader score``.
    reward_options: ClassVar[dict[str, dict[str, Any]]] = {}
    #: Prompts of the training run; default: the configuration's.
    train_prompts: ClassVar[list[str] | None] = None
    #: More ``--set`` options of the training run.
    train_options: ClassVar[dict[str, Any]] = {}

    def cli_score(self, video: Path, reward: str, *args: Any) -> float:
        """``vader score VIDEO --reward REWARD --random-weights ARGS``: the printed value."""
        _, out, _ = _run(["score", video, "--reward", reward, "--device", "cpu", "--random-weights", *args])
        name, value = out.strip().rsplit(":", 1)
        assert name.strip() == reward, out
        return float(value)

    def _value_range(self, reward: str) -> tuple[float, float] | None:
        from ..resolve import build_reward

        return build_reward(reward, self.reward_options.get(reward, {})).value_range

    @pytest.fixture(scope="class")
    def training_run(self, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
        """Two steps of ``vader train --config run.yaml --random-weights`` on the ``tiny`` backbone with every
        reward, a checkpoint a step: ``dir``, ``rows`` (metrics.jsonl)."""
        root = tmp_path_factory.mktemp("cli-" + "-".join(self.rewards))
        config: dict[str, Any] = {
            "backbone": {"name": "tiny"},
            "rewards": [{"name": r, "weight": 1.0, **self.reward_options.get(r, {})} for r in self.rewards],
        }
        if self.train_prompts is not None:
            config["train"] = {"prompts": list(self.train_prompts)}
        (root / "run.yaml").write_text(json.dumps(config))  # JSON is YAML
        out = root / "run"
        with _registry(request):
            _run(
                [
                    "train",
                    "--config",
                    root / "run.yaml",
                    "--random-weights",
                    "--max-steps",
                    "2",
                    *set_options({**QUIET_TRAINING, "output.checkpoint_every": 1, **self.train_options}),
                    "--output-dir",
                    out,
                    "--device",
                    "cpu",
                    "-q",
                ]
            )
        return SimpleNamespace(dir=out, rows=read_metrics(out))

    def test_cli_score_random_weights(self, tmp_path: Path) -> None:
        video = save_video(tmp_path / "video.npy", *self.video_size)
        for reward in self.rewards:
            value = self.cli_score(
                video, reward, "--prompt", self.prompt, *set_options(self.reward_options.get(reward, {}))
            )
            assert math.isfinite(value), f"{reward}: {value}"
            bounds = self._value_range(reward)
            if bounds is not None:
                assert bounds[0] - 1e-5 <= value <= bounds[1] + 1e-5, f"{reward}: {value} outside {bounds}"

    def test_cli_train_random_weights(self, training_run: SimpleNamespace) -> None:
        import torch

        rows = training_run.rows
        assert len(rows) == 2
        for row in rows:
            assert set(row["rewards"]) == set(self.rewards), row["rewards"]
            assert all(math.isfinite(v) for v in row["rewards"].values()) and math.isfinite(row["loss"]), row
            for reward, value in row["rewards"].items():
                bounds = self._value_range(reward)
                if bounds is not None:
                    assert bounds[0] - 1e-5 <= value <= bounds[1] + 1e-5, f"{reward}: {value} outside {bounds}"
        first, last = lora_checkpoint(training_run.dir, 1), lora_checkpoint(training_run.dir, 2)
        assert any(not torch.equal(first[k], last[k]) for k in first), "LoRA weights did not change"
