"""Guard metrics, best checkpoint and early stop."""

import json

import numpy as np
import pytest
import torch

from vader_core import hookimpl, plugins
from vader_core.config import build_config
from vader_core.errors import ConfigError, PluginNotFoundError
from vader_core.guard import BestTracker, EarlyStopper, ValidationGuard, selection_value
from vader_core.metric import MetricPlugin
from vader_core.resolve import resolve_config
from vader_core.testing import MetricContractTests
from vader_core.trainer import Trainer
from vader_plugins.toy.data import ToyVideoDataset, parse_caption, render
from vader_plugins.toy.metric import ToyColor, ToyDirection

TOY_PROMPTS = ["a red circle moving left on a gray background", "a blue square moving up on a black background"]


class TestToyColor(MetricContractTests):
    metric_cls = ToyColor
    prompts = TOY_PROMPTS
    invalid_options = [{"no_such_option_xyz": 1}, {"threshold": 0}]


class TestToyDirection(MetricContractTests):
    metric_cls = ToyDirection
    prompts = TOY_PROMPTS


def test_toy_metrics_judge_real_clips():
    videos, captions = ToyVideoDataset(seed=0).batch(0, 12)
    v = torch.from_numpy(videos)
    for cls in (ToyColor, ToyDirection):
        m = cls()
        m.load("cpu", torch.float32)
        assert m(v, captions).tolist() == [1.0] * 12
    # The same clip under a caption with another colour (or direction) scores 0 on that check only.
    spec = parse_caption("a green diamond moving up on a black background")
    clip = torch.from_numpy(render(spec, np.random.default_rng(0)))[None]
    color, direction = ToyColor(), ToyDirection()
    color.load("cpu", None)
    direction.load("cpu", None)
    wrong_colour = ["a red diamond moving up on a black background"]
    wrong_way = ["a green diamond moving down on a black background"]
    assert color(clip, wrong_colour).item() == 0.0 and direction(clip, wrong_colour).item() == 1.0
    assert color(clip, wrong_way).item() == 1.0 and direction(clip, wrong_way).item() == 0.0
    with pytest.raises(ValueError, match="toy captions"):
        color(clip, ["a cat playing chess"])


def test_metric_kind_registered():
    assert plugins.get_metric("toy_color") is ToyColor
    kinds = {(i.name, i.kind) for i in plugins.list_plugins()[0]}
    assert ("toy_color", "metric") in kinds and ("toy_direction", "metric") in kinds


# ------------------------------------------------------------------ selection and stopping
def _curve():
    """A synthetic run: the reward climbs while the guard metric holds, then falls."""
    rewards = [-0.5, -0.4, -0.3, -0.2, -0.15, -0.1, -0.08]
    colour = [1.0, 1.0, 0.95, 0.95, 0.85, 0.8, 0.75]
    return [
        {"step": 10 * i, "reward": r, "metrics": {"toy_color": c}}
        for i, (r, c) in enumerate(zip(rewards, colour, strict=True))
    ]


def test_best_by_reward_metric_or_combination():
    cases = [
        ({"reward": 1.0}, 60),
        ({"toy_color": 1.0}, 0),
        ({"reward": 1.0, "toy_color": 1.0}, 30),
        ({"reward": 1.0, "toy_color": 0.5}, 50),
        ({"reward": 1.0, "toy_color": 2.0}, 30),
    ]
    for weights, step in cases:
        t = BestTracker(weights)
        news = [t.update(r) for r in _curve()]
        assert t.step == step, weights
        assert news[0] is True
        want = max(selection_value(r, weights) for r in _curve())
        assert t.value == pytest.approx(want)
    assert np.isnan(selection_value({"step": 0, "reward": 1.0}, {"toy_color": 1.0}))


def test_early_stop_after_margin_from_start():
    s = EarlyStopper("toy_color", 0.1)
    stops = [s.update(r) for r in _curve()]
    # 1.0 -> 0.85 at step 40 is the first fall of more than 0.1; no second stop afterwards.
    assert stops == [False, False, False, False, True, False, False]
    assert (s.start, s.stopped_at) == (1.0, 40)
    never = EarlyStopper("toy_color", 0.3)
    assert not any(never.update(r) for r in _curve())
    by_reward = EarlyStopper("reward", 0.0)
    assert not any(by_reward.update(r) for r in _curve())  # the reward only climbs


def test_validation_guard_summary():
    from vader_core.config import ValidationSection

    g = ValidationGuard(
        ValidationSection(select={"reward": 1.0, "toy_color": 1.0}, early_stop={"metric": "toy_color", "margin": 0.1}),
        {},
    )
    out = [g.update(r) for r in _curve()]
    assert out[4] == (False, True)
    s = g.summary("runs/x/best")
    assert s["best"]["step"] == 30 and s["best"]["checkpoint"] == "runs/x/best"
    assert s["early_stop"] == {
        "metric": "toy_color",
        "margin": 0.1,
        "start": 1.0,
        "last": 0.75,
        "stopped": True,
        "step": 40,
    }


def test_config_errors_name_what_to_do():
    base = ["backbone.name=tiny"]
    with pytest.raises(ConfigError, match="select"):
        resolve_config(build_config(None, base + ["validation.select={nope: 1}"]))
    with pytest.raises(ConfigError, match="early_stop"):
        resolve_config(build_config(None, base + ["validation.early_stop={metric: toy_color, margin: 0.1}"]))
    with pytest.raises(PluginNotFoundError, match="unknown metric or reward `nope`; metrics: toy_color"):
        resolve_config(build_config(None, base + ["validation.metrics=[{name: nope}]"]))
    with pytest.raises(ConfigError, match="threshold"):
        resolve_config(build_config(None, base + ["validation.metrics=[{name: toy_color, threshold: -1}]"]))
    cfg = resolve_config(build_config(None, base + ["validation.metrics=[{name: toy_color}, {name: brightness}]"]))
    assert [(m.name, m.kind) for m in cfg.validation.metrics] == [("toy_color", "metric"), ("brightness", "reward")]
    assert cfg.validation.metrics[0].options == {"threshold": 0.3, "min_travel": 2.0}


def test_kl_refused_by_a_method_without_it(tmp_path):
    cfg = build_config(None, _sets(tmp_path, 1, ["regularization.kl=1.0", "method.name=ddpo"]), {"device": "cpu"})
    with pytest.raises(ConfigError, match="KL guard"):
        Trainer(cfg, progress=False).run()


# ------------------------------------------------------------------ in a run
class _Counting(MetricPlugin):
    """A guard metric that records every call (and so where it is used)."""

    name = "counting"
    summary = "test"
    calls: list[int] = []

    def compute(self, video, prompts):  # noqa: ANN001, ANN201
        _Counting.calls.append(video.shape[0])
        return video.mean(dim=(1, 2, 3, 4))


class _Plugin:
    @staticmethod
    @hookimpl
    def register_metrics(register):  # noqa: ANN001, ANN205
        register(_Counting)


def _sets(out, steps, extra=()):
    return [
        f"output.dir={out}",
        f"train.max_steps={steps}",
        "optim.grad_accum=1",
        "output.logger=none",
        "validation.every=2",
        "validation.save_videos=false",
        "validation.seeds=[0]",
        "backbone.steps=3",
        "output.checkpoint_every=0",
        "optim.lr=3e-2",
        "truncation.k=2",
        *extra,
    ]


def test_guard_metrics_never_enter_the_loss(tmp_path):
    plugins.register_plugin(_Plugin, name="counting")
    try:
        runs = {}
        for name, extra in (("plain", []), ("guarded", ["validation.metrics=[{name: counting}, {name: contrast}]"])):
            _Counting.calls.clear()
            cfg = build_config(None, _sets(tmp_path / name, 4, extra), {"rewards": ["saturation"], "device": "cpu"})
            tr = Trainer(cfg, progress=False)
            summary = tr.run()
            runs[name] = (
                [json.loads(x) for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()],
                {k: v.clone() for k, v in tr._lora_sd().items()},
                summary,
                list(_Counting.calls),
            )
        (plain, plain_w, _, _), (guarded, guarded_w, summary, calls) = runs["plain"], runs["guarded"]
        # Same losses, rewards and weights with and without guard metrics: they are never trained on.
        assert [r["loss"] for r in plain] == [r["loss"] for r in guarded]
        assert all(torch.equal(plain_w[k], guarded_w[k]) for k in plain_w)
        # Called once per validation (steps 0, 2, 4) on the held-out batch only, never in a training step.
        assert len(calls) == 3
        val = [json.loads(x) for x in (tmp_path / "guarded" / "validation.jsonl").read_text().splitlines()]
        assert [sorted(v["metrics"]) for v in val] == [["contrast", "counting"]] * 3
        assert summary["heldout_metrics_after"]["counting"] == val[-1]["metrics"]["counting"]
        assert summary["best"]["step"] in (0, 2, 4) and (tmp_path / "guarded" / "best").is_dir()
    finally:
        plugins.unregister_plugin(_Plugin)


def test_early_stop_and_best_checkpoint_in_a_run(tmp_path):
    """A guard that the training objective pushes down stops the run; the best step is kept in `best/`."""
    plugins.register_plugin(_Plugin, name="counting")
    try:
        # Saturation is trained down (weight -1); as a guard with margin 0 it stops the run as soon as it
        # dips at all, and the best checkpoint by `counting` (mean pixel value, lowest wins) is kept.
        extra = [
            "validation.metrics=[{name: counting}, {name: saturation}]",
            "validation.every=1",
            "validation.early_stop={metric: saturation, margin: 0.0}",
            "validation.select={counting: -1.0}",
        ]
        cfg = build_config(None, _sets(tmp_path, 6, extra), {"rewards": ["saturation=-1"], "device": "cpu"})
        summary = Trainer(cfg, progress=False).run()
        es = summary["early_stop"]
        assert es["stopped"] and es["step"] < 6 and summary["steps"] == es["step"]
        assert es["last"] < es["start"]
        val = [json.loads(x) for x in (tmp_path / "validation.jsonl").read_text().splitlines()]
        assert val[-1]["step"] == es["step"]
        best = min(val, key=lambda v: v["metrics"]["counting"])
        assert summary["best"]["step"] == best["step"]
        saved = json.loads((tmp_path / "best" / "best.json").read_text())
        assert saved["step"] == best["step"]
        assert (tmp_path / "best" / "pytorch_lora_weights.safetensors").is_file()
        assert json.loads((tmp_path / "summary.json").read_text())["early_stop"]["stopped"] is True
        assert (tmp_path / "checkpoints" / f"step-{es['step']}").is_dir()
        # Resuming a run that stopped early does not train past its own stop (a requeued job resumes).
        rows = (tmp_path / "metrics.jsonl").read_text()
        again = Trainer(
            build_config(None, _sets(tmp_path, 6, extra), {"rewards": ["saturation=-1"], "device": "cpu"}),
            progress=False,
        )
        resumed = again.run(resume="latest")
        assert resumed["steps"] == es["step"] and (tmp_path / "metrics.jsonl").read_text() == rows
        assert resumed["early_stop"]["stopped"] is True
    finally:
        plugins.unregister_plugin(_Plugin)


# ------------------------------------------------------------------ metrics across seeds
class _Spread(MetricPlugin):
    """A weight-free metric of ``scores = "seeds"``: the variance across seeds of each video's mean colour."""

    name = "spread"
    summary = "test"
    scores = "seeds"
    value_range = (0.0, float("inf"))

    def features(self, video, prompts):  # noqa: ANN001, ANN201
        return video.mean(dim=(1, 3, 4))

    def compute_seeds(self, features, prompts):  # noqa: ANN001, ANN201
        return features.var(dim=1).mean(dim=-1)


class _SpreadPlugin:
    @staticmethod
    @hookimpl
    def register_metrics(register):  # noqa: ANN001, ANN205
        register(_Spread)


class TestSpreadContract(MetricContractTests):
    metric_cls = _Spread


def test_a_seeds_metric_scores_each_prompt_from_every_seed():
    m = _Spread()
    m.load("cpu", torch.float32)
    g = torch.Generator().manual_seed(0)
    seed0, seed1 = torch.rand(2, 2, 3, 8, 8, generator=g), torch.rand(2, 2, 3, 8, 8, generator=g)
    guard = ValidationGuard(build_config(None, ["backbone.name=tiny"]).validation, {"spread": m})
    f0, f1 = seed0.mean(dim=(1, 3, 4)), seed1.mean(dim=(1, 3, 4))
    per_prompt = torch.stack([f0, f1], 1).var(dim=1).mean(dim=-1)  # prompt i: its video of seed 0 and of seed 1
    assert guard.score([seed0, seed1], ["a", "b"])["spread"] == pytest.approx(per_prompt.mean().item(), rel=1e-6)


def test_a_seeds_metric_needs_two_seeds_in_one_line():
    plugins.register_plugin(_SpreadPlugin, name="spread")
    try:
        base = ["backbone.name=tiny", "validation.metrics=[{name: spread}]"]
        with pytest.raises(ConfigError, match=r"across seeds: give at least two seeds .*got \[0\]"):
            resolve_config(build_config(None, [*base, "validation.seeds=[0]"]))
        assert (
            resolve_config(build_config(None, [*base, "validation.seeds=[0, 1]"])).validation.metrics[0].name
            == "spread"
        )
    finally:
        plugins.unregister_plugin(_SpreadPlugin)


def test_every_process_takes_the_main_process_validation_decisions(tmp_path):
    """Best and early stop follow the record the validator shares (in a run of several processes: the main
    process's, broadcast), not this process's own numbers: a process that decided alone on floating-point noise
    could enter the collective gather of `best/` while the others skip it."""
    plugins.register_plugin(_Plugin, name="counting")
    try:
        shared = []

        def from_main(rec):  # the main process saw `counting` lowest at step 2, whatever this process measured
            rec = {**rec, "metrics": {**rec["metrics"], "counting": 1.0 if rec["step"] == 2 else 2.0}}
            shared.append(rec)
            return rec

        class AsAnotherProcess(Trainer):
            def _setup(self):
                super()._setup()
                self.validator.share = from_main

        extra = ["validation.metrics=[{name: counting}]", "validation.every=1", "validation.select={counting: -1.0}"]
        cfg = build_config(None, _sets(tmp_path, 3, extra), {"rewards": ["saturation"], "device": "cpu"})
        summary = AsAnotherProcess(cfg, progress=False).run()
        assert [r["step"] for r in shared] == [0, 1, 2, 3]
        assert summary["best"]["step"] == 2
        assert json.loads((tmp_path / "best" / "best.json").read_text())["step"] == 2
        val = [json.loads(x) for x in (tmp_path / "validation.jsonl").read_text().splitlines()]
        assert [v["metrics"]["counting"] for v in val] == [2.0, 2.0, 1.0, 2.0]
    finally:
        plugins.unregister_plugin(_Plugin)
