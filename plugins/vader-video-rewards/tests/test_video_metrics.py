"""Guard metrics ``motion``, ``dynamic_degree`` and ``diversity``: the metric contract on tiny random models,
VBench's rules on a synthetic translated pattern (with a deterministic flow estimate standing for RAFT, whose
random weights give no meaningful flow), loading torchvision's RAFT weights, and the metrics in validation,
early stopping and ``vader eval`` through the CLI."""

import json
import os

import pytest
import torch
from vader_video_rewards import Diversity, DynamicDegree, Motion
from vader_video_rewards.motion import required_pairs, top_mean

from vader_core.errors import CheckpointError, MissingWeightsError
from vader_core.testing import MetricContractTests, assert_one_line_error, draw_image, run_cli

FAST = {"flow_updates": 2}


class TestMotionContract(MetricContractTests):
    metric_cls = Motion
    invalid_options = [{"no_such_option_xyz": 1}, {"model": "raft_huge"}, {"top": 0}, {"fps": 0}]

    def make_metric(self):
        m = Motion(Motion.Options(**FAST))
        m.load_tiny("cpu", torch.float32, seed=0)
        return m


class TestDynamicDegreeContract(TestMotionContract):
    metric_cls = DynamicDegree
    invalid_options = [{"no_such_option_xyz": 1}, {"threshold": 0}]

    def make_metric(self):
        m = DynamicDegree(DynamicDegree.Options(**FAST))
        m.load_tiny("cpu", torch.float32, seed=0)
        return m


class TestDiversityContract(MetricContractTests):
    metric_cls = Diversity
    invalid_options = [{"no_such_option_xyz": 1}, {"resize_mode": "pad"}]


# -------------------------------------------------------------------------------------- VBench's rules
class PhaseCorrelationMotion(Motion):
    """``motion`` with RAFT replaced by phase correlation: the exact flow of a circularly shifted frame."""

    def flow(self, first, second):
        cross = torch.fft.fft2(second.mean(1)) * torch.fft.fft2(first.mean(1)).conj()
        peak = torch.fft.ifft2(cross / cross.abs().clamp_min(1e-9)).real.flatten(1).argmax(1)
        h, w = first.shape[-2:]
        dy, dx = peak // w, peak % w
        dy, dx = torch.where(dy > h // 2, dy - h, dy), torch.where(dx > w // 2, dx - w, dx)
        return torch.stack([dx, dy], 1).float()[:, :, None, None].expand(-1, -1, h, w)


class PhaseCorrelationDynamic(PhaseCorrelationMotion, DynamicDegree):
    pass


def _moving(h, w, frames, step):
    """A real-looking image shifted by ``step`` pixels right per frame (circularly): ``(1, frames, 3, h, w)``."""
    import numpy as np

    x = torch.from_numpy(np.asarray(draw_image(h, w, seed=4), dtype=np.float32) / 255).permute(2, 0, 1)
    return torch.stack([torch.roll(x, shifts=step * i, dims=-1) for i in range(frames)])[None]


def _metric(cls, **opts):
    m = cls(cls.Options(**opts))
    m.load_tiny("cpu", torch.float32)
    return m


def test_a_frozen_video_scores_below_a_moving_one():
    """128 px short side: 1 px/frame is 2 px at 256, 4 px/frame is 8 (VBench's threshold is 6)."""
    motion, dynamic = _metric(PhaseCorrelationMotion), _metric(PhaseCorrelationDynamic)
    videos = torch.cat([_moving(128, 160, 8, s) for s in (0, 1, 4)])
    prompts = ["a cat"] * 3
    torch.testing.assert_close(motion(videos, prompts), torch.tensor([0.0, 2.0, 8.0]))
    torch.testing.assert_close(dynamic(videos, prompts), torch.tensor([0.0, 0.0, 1.0]))


def test_frames_are_sampled_at_8_fps_and_small_frames_upscaled():
    """``fps: 16`` takes every second frame (twice the motion per pair); a 64 px video is upscaled to 128 for RAFT
    and its score, in pixels at a 256 short side, is the same."""
    video = _moving(128, 160, 9, 1)
    assert _metric(PhaseCorrelationMotion, fps=16)(video, ["x"]).item() == pytest.approx(4.0)
    small = _moving(64, 80, 5, 2)
    assert _metric(PhaseCorrelationMotion)(small, ["x"]).item() == pytest.approx(8.0)


def test_dynamic_needs_vbench_share_of_moving_pairs():
    """A video is dynamic when at least round(4 * frames / 16) pairs move: 16 frames need 4, 41 frames 10."""
    assert [required_pairs(n) for n in (2, 8, 16, 41)] == [1, 2, 4, 10]
    base = _moving(128, 128, 17, 0)
    for moving, expected in ((3, 0.0), (4, 1.0)):
        frames = list(base[0].unbind(0))
        for i in range(moving):  # `moving` pairs shift by 8 px (16 at 256), the rest stand still
            frames[i + 1] = torch.roll(frames[i], 8, dims=-1)
        for i in range(moving + 1, 17):
            frames[i] = frames[moving]
        video = torch.stack(frames)[None]
        assert _metric(PhaseCorrelationDynamic)(video[:, :16], ["x"]).item() == expected


def test_top_share_mean():
    mag = torch.arange(100.0).view(1, 10, 10)
    assert top_mean(mag, 0.05).item() == pytest.approx((95 + 96 + 97 + 98 + 99) / 5)


@pytest.mark.weights
@pytest.mark.skipif(os.environ.get("VADER_TEST_WEIGHTS") != "1", reason="needs torchvision's RAFT weights")
def test_real_raft_sees_the_motion():
    m = Motion()
    m.load("cpu", torch.float32)
    out = m(torch.cat([_moving(128, 160, 4, s) for s in (0, 4)]), ["x", "x"])
    assert out[0] < 1.0 < 6.0 < out[1]


# ------------------------------------------------------------------------------------------- loading
def test_motion_loads_a_torchvision_state_dict_and_fails_in_one_line(tmp_path, monkeypatch):
    from torchvision.models.optical_flow import raft_small

    torch.manual_seed(0)
    model = raft_small(weights=None)
    path = tmp_path / "raft_small_C_T_V2-01064c6d.pth"
    torch.save(model.state_dict(), path)
    m = Motion(Motion.Options(model="raft_small", weights_path=str(path), **FAST))
    m.load("cpu", torch.float32)
    a, b = torch.rand(2, 1, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = model.eval()(a * 2 - 1, b * 2 - 1, num_flow_updates=2)[-1]
    torch.testing.assert_close(m.flow(a, b), ref)
    with pytest.raises(CheckpointError, match="do not fit torchvision's raft_large"):
        Motion(Motion.Options(weights_path=str(path))).load("cpu", torch.float32)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MissingWeightsError, match="raft_large_C_T_V1") as e:
        Motion().load("cpu", torch.float32)
    assert "\n" not in str(e.value) and "weights_path" in str(e.value) and "download.pytorch.org" in str(e.value)


def test_diversity_is_zero_for_identical_seeds_and_grows_with_spread():
    m = _metric(Diversity)
    v = torch.rand(2, 4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    f = m.video_features(v, ["a", "b"])
    same = m.score_seeds(torch.stack([f, f], 1), ["a", "b"])
    apart = m.score_seeds(torch.stack([f, f.flip(0)], 1), ["a", "b"])
    torch.testing.assert_close(same, torch.zeros(2))
    torch.testing.assert_close(apart, ((f[0] - f[1]) ** 2 / 2).mean().expand(2))


# ---------------------------------------------------------------------------------------------- CLI
def test_guard_metrics_in_vader_eval(tmp_path):
    out = tmp_path / "eval"
    metrics = [{"name": "motion", **FAST}, {"name": "dynamic_degree", **FAST}]
    fast = {"backbone": {"name": "tiny"}, "validation": {"metrics": metrics}}
    (tmp_path / "fast.yaml").write_text(json.dumps(fast))
    args = ["eval", "--config", tmp_path / "fast.yaml", "--random-weights", "--prompt", "a cat", "--prompt", "a dog"]
    args += ["--metric", "diversity", "--device", "cpu"]
    res = run_cli([*args, "--seed", "0", "--seed", "1", "--out", out])
    assert res[0] == 0, res[2][-2000:]
    data = json.loads((out / "eval.json").read_text())
    rows = data["models"][0]["videos"]
    assert len(rows) == 4 and all({"motion", "dynamic_degree", "diversity"} <= set(r["scores"]) for r in rows)
    by_prompt = {}
    for r in rows:
        by_prompt.setdefault(r["prompt"], set()).add(r["scores"]["diversity"])
    assert all(len(v) == 1 for v in by_prompt.values())  # one value per prompt, from both seeds
    assert all(r["scores"]["motion"] >= 0 and r["scores"]["dynamic_degree"] in (0.0, 1.0) for r in rows)
    res = run_cli([*args, "--seed", "0", "--out", tmp_path / "one-seed"])
    assert_one_line_error(res, "diversity", "at least two seeds")


def test_motion_guards_validation_and_early_stopping(tmp_path):
    config = {
        "backbone": {"name": "tiny"},
        "rewards": [{"name": "brightness"}],
        "train": {"max_steps": 1},
        "optim": {"grad_accum": 1},
        "validation": {
            "every": 1,
            "seeds": [0, 1],
            "save_videos": False,
            "metrics": [{"name": "motion", "flow_updates": 2}, {"name": "diversity"}],
            "early_stop": {"metric": "motion", "margin": 1000.0},
        },
        "output": {"checkpoint_every": 0, "logger": "none"},
    }
    (tmp_path / "run.yaml").write_text(json.dumps(config))
    out = tmp_path / "run"
    res = run_cli(
        ["train", "--config", tmp_path / "run.yaml", "--random-weights", "--output-dir", out, "--device", "cpu", "-q"]
    )
    assert res[0] == 0, res[2][-2000:]
    records = [json.loads(line) for line in (out / "validation.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 1]
    assert all(r["metrics"]["motion"] >= 0 and r["metrics"]["diversity"] >= 0 for r in records)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["early_stop"]["metric"] == "motion" and summary["early_stop"]["stopped"] is False
