"""The mistakes plugin authors make by accident, each in a small plugin package laid out as pip installs it,
each through the real CLI: one line naming the plugin, a non-zero exit where the run cannot go on, no
traceback, and an earlier run's files unchanged."""

from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path

import pytest

from vader_core.testing import QUIET_TRAINING, run_cli, save_video, set_options

HEAD = """
from pydantic import Field
from vader_core import RewardOptions, RewardPlugin, MetricPlugin, hookimpl
"""


def reward_source(body: str, *, scores: str = "frames", extra: str = "", hook: str = "register_rewards") -> str:
    """A plugin module with one reward `bad` whose scoring method is ``body``."""
    method = "score_clip(self, video, prompts)" if scores == "clip" else "score_frames(self, frames, prompts)"
    return HEAD + textwrap.dedent(
        f"""
        class Bad(RewardPlugin):
            name = "bad"
            summary = "A reward with a mistake."
            scores = "{scores}"
            {extra}

            class Options(RewardOptions):
                gain: float = Field(1.0, description="Multiplier.")

            def {method}:
                return {body}


        @hookimpl
        def {hook}(register):
            register(Bad)
        """
    )


def _train(out: Path, reward: str = "bad", steps: int = 1, *extra: str) -> tuple[int, str, str]:
    opts = {**QUIET_TRAINING, "backbone.steps": 2, "backbone.frames": 2, "backbone.height": 16, "backbone.width": 16}
    return run_cli(
        ["train", "--backbone", "tiny", "--reward", reward, "--max-steps", steps, "--output-dir", out]
        + ["--device", "cpu", "-q", *set_options(opts), *extra]
    )


def assert_one_line_error(result: tuple[int, str, str], *needles: str) -> str:
    """Exit 2, no traceback, one ``error:`` line holding every needle (status lines of the run may precede it)."""
    rc, _, err = result
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert rc == 2, (rc, err)
    assert "Traceback" not in err, err
    assert len(errors) == 1, err
    for n in needles:
        assert n in errors[0], errors[0]
    return errors[0]


def _snapshot(d: Path) -> dict[str, str]:
    return {
        str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory):
    """A finished run of the built-in reward: what a broken plugin must never touch."""
    from vader_core.testing import registry_of

    out = tmp_path_factory.mktemp("earlier") / "run"
    with registry_of(""):
        rc, _, err = _train(out, "brightness")
    assert rc == 0, err
    return out, _snapshot(out)


def _unchanged(earlier_run) -> None:
    out, before = earlier_run
    assert _snapshot(out) == before


# ---------------------------------------------------------------------- run-time checks of outputs
def test_reward_of_wrong_shape(install, tmp_path, earlier_run):
    install("vader-bad-shape", reward_source("video.mean(dim=(2, 3, 4))[:, 1:]", scores="clip"))
    line = assert_one_line_error(_train(tmp_path / "run"), "reward `bad` (vader_bad_shape.Bad)", "shape (2, 1)")
    assert "shape (2,)" in line
    video = save_video(tmp_path / "v.npy", 2, 16, 16)
    assert_one_line_error(run_cli(["score", video, "--reward", "bad"]), "reward `bad`", "score_clip returned shape")
    ev = ["eval", "--backbone", "tiny", "--reward", "bad", "--prompt", "a cat", "--out", tmp_path / "eval"]
    assert_one_line_error(run_cli([*ev, "--device", "cpu", "--set", "backbone.steps=2"]), "reward `bad`")
    _unchanged(earlier_run)


def test_reward_of_zero_dims(install, tmp_path, earlier_run):
    install("vader-bad-zero", reward_source("frames.mean()"))
    assert_one_line_error(_train(tmp_path / "run"), "reward `bad` (vader_bad_zero.Bad)", "0-dim tensor")
    video = save_video(tmp_path / "v.npy", 2, 16, 16)
    assert_one_line_error(run_cli(["score", video, "--reward", "bad"]), "reward `bad`", "0-dim tensor")
    _unchanged(earlier_run)


def test_detached_reward(install, tmp_path, earlier_run):
    install("vader-bad-detach", reward_source("frames.mean(dim=(1, 2, 3)).detach()"))
    line = assert_one_line_error(_train(tmp_path / "run"), "reward `bad` (vader_bad_detach.Bad)")
    assert "returns a tensor that does not depend on the frames: did you detach or convert to numpy?" in line
    assert not (tmp_path / "run" / "checkpoints").exists()
    # scoring a file needs no gradient: the same reward works there
    rc, out, _ = run_cli(["score", save_video(tmp_path / "v.npy", 2, 16, 16), "--reward", "bad"])
    assert rc == 0 and out.startswith("bad: ")
    _unchanged(earlier_run)


def test_reward_of_numpy(install, tmp_path):
    install("vader-bad-numpy", reward_source("frames.mean(dim=(1, 2, 3)).detach().numpy()"))
    assert_one_line_error(_train(tmp_path / "run"), "reward `bad`", "returned ndarray", "torch tensor of shape")


def test_nan_reward_stops_before_training(install, tmp_path, earlier_run):
    install("vader-bad-nan", reward_source("frames.mean(dim=(1, 2, 3)) * float('nan')"))
    line = assert_one_line_error(_train(tmp_path / "run", steps=2), "reward `bad` (vader_bad_nan.Bad)", "nan")
    assert "before any training" in line and "finite" in line
    assert "returned [nan, nan]" in line  # the scores, not eaten as console markup
    assert not (tmp_path / "run" / "checkpoints").exists()
    _unchanged(earlier_run)


def test_value_outside_range_is_one_warning(install, tmp_path):
    install("vader-bad-range", reward_source("frames.mean(dim=(1, 2, 3)) + 5", extra="value_range = (0.0, 1.0)"))
    rc, _, err = _train(tmp_path / "run", steps=2)
    assert rc == 0, err
    warnings = [ln for ln in err.splitlines() if "outside its value_range" in ln]
    assert len(warnings) == 1 and "reward `bad` (vader_bad_range.Bad)" in warnings[0], err
    assert "(0, 1)" in warnings[0]


def test_metric_of_wrong_shape(install, tmp_path):
    source = HEAD + textwrap.dedent(
        """
        class BadMetric(MetricPlugin):
            name = "bad_metric"

            def compute(self, video, prompts):
                return video.mean(dim=(2, 3, 4))


        @hookimpl
        def register_metrics(register):
            register(BadMetric)
        """
    )
    install("vader-bad-metric", source)
    ev = ["eval", "--backbone", "tiny", "--reward", "brightness", "--metric", "bad_metric", "--prompt", "a cat"]
    res = run_cli([*ev, "--out", tmp_path / "eval", "--device", "cpu", "--set", "backbone.steps=2"])
    assert_one_line_error(res, "metric `bad_metric` (vader_bad_metric.BadMetric)", "compute returned shape")


# ---------------------------------------------------------------------- registration
def _listing() -> dict[tuple[str, str], dict]:
    rc, out, err = run_cli(["plugins", "--json"])
    assert rc == 0, err
    return {(r["name"], r["kind"]): r for r in json.loads(out)}


def test_clip_reward_without_score_clip_is_broken_at_registration(install, tmp_path):
    install(
        "vader-bad-clip",
        reward_source("frames.mean(dim=(1, 2, 3))", scores="clip").replace(
            "score_clip(self, video, prompts)", "score_frames(self, frames, prompts)"
        ),
    )
    row = _listing()[("vader_bad_clip", "plugin")]
    assert row["status"] == "broken"
    assert 'says scores = "clip" but only score_frames is written; implement score_clip' in row["summary"]
    line = assert_one_line_error(
        _train(tmp_path / "run"), "unknown reward `bad`", "installed but broken: vader-bad-clip"
    )
    assert "score_clip" in line


def test_module_without_hookimpl_is_listed_broken(install, tmp_path):
    install("vader-no-hookimpl", reward_source("frames.mean(dim=(1, 2, 3))").replace("@hookimpl\n", ""))
    row = _listing()[("vader_no_hookimpl", "plugin")]
    assert row["status"] == "broken" and "no hook implementations: forgot @hookimpl?" in row["summary"]
    assert_one_line_error(_train(tmp_path / "run"), "unknown reward `bad`", "vader-no-hookimpl", "forgot @hookimpl")


def test_hook_typo_gets_did_you_mean(install, tmp_path):
    install("vader-typo", reward_source("frames.mean(dim=(1, 2, 3))", hook="register_reward"))
    row = _listing()[("vader_typo", "plugin")]
    assert row["status"] == "broken" and "did you mean `register_rewards`" in row["summary"]
    assert_one_line_error(_train(tmp_path / "run"), "unknown reward `bad`", "did you mean `register_rewards`")


def test_builtin_name_stays_with_the_builtin(install, tmp_path):
    install("vader-aaa", reward_source("frames.mean(dim=(1, 2, 3))").replace('name = "bad"', 'name = "brightness"'))
    rows = _listing()
    assert rows[("brightness", "reward")]["package"] == "vader" and rows[("brightness", "reward")]["status"] == "ok"
    broken = rows[("vader_aaa", "plugin")]
    assert broken["status"] == "broken" and "the built-in keeps it: rename yours" in broken["summary"]
    rc, out, err = run_cli(["config", "--backbone", "tiny"])
    assert rc == 0 and "brightness" in out, err


def test_unknown_name_mentions_broken_plugin_of_another_name(install, tmp_path):
    install("vader-fancy", "import vader_no_such_dependency\n", entry_point="fancy_rewards")
    line = assert_one_line_error(_train(tmp_path / "run", "fancy"), "unknown reward `fancy`")
    assert "installed but broken: vader-fancy (import failed: ModuleNotFoundError" in line


# ---------------------------------------------------------------------- options
def test_bool_into_float_option_is_refused(install, tmp_path):
    install("vader-good", reward_source("self.options.gain * frames.mean(dim=(1, 2, 3))"))
    res = _train(tmp_path / "run", "bad", 1, "--set", "rewards.0.gain=true")
    assert_one_line_error(res, "`rewards.0.gain`", "expected a number, not a boolean", "True")
    res = _train(tmp_path / "run", "bad", 1, "--set", "backbone.steps=2.0")
    assert_one_line_error(res, "`backbone.steps`", "expected an integer")
    rc, out, err = run_cli(["config", "--backbone", "tiny", "--reward", "bad", "--set", "rewards.0.gain=2"])
    assert rc == 0 and "gain: 2.0" in out, err


def test_hooks_that_register_nothing_are_listed_broken(install):
    install("vader-empty", HEAD + "\n@hookimpl\ndef register_rewards(register):\n    pass\n")
    row = _listing()[("vader_empty", "plugin")]
    assert row["status"] == "broken" and "registered nothing: call register(YourClass)" in row["summary"]
    rc, out, err = run_cli(["plugins"])
    assert rc == 0 and "broken: vader-empty 0.1.0 (entry point vader_empty): its hooks registered nothing" in out
