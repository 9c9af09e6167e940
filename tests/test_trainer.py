import json
import types

import pytest
import torch
from safetensors.torch import load_file

from vader_core import hookimpl, plugins
from vader_core.config import build_config
from vader_core.errors import CheckpointError, InterruptedRun, NonFiniteLossError
from vader_core.reward import RewardPlugin
from vader_core.trainer import Trainer


def tiny_sets(out_dir, steps=3, extra=()):
    return [
        f"output.dir={out_dir}",
        f"train.max_steps={steps}",
        "optim.grad_accum=1",
        "output.logger=none",
        "validation.every=0",
        "validation.save_videos=false",
        "validation.seeds=[0]",
        "backbone.steps=3",
        "output.checkpoint_every=0",
        *extra,
    ]


def _train(out, steps, extra=(), rewards=("saturation",), resume=None):
    cfg = build_config(None, tiny_sets(out, steps, extra), {"rewards": list(rewards), "device": "cpu"})
    tr = Trainer(cfg, progress=False)
    return tr, tr.run(resume=resume)


def _metrics(out):
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def test_training_changes_lora_and_raises_reward(tmp_path):
    fast = ["optim.lr=3e-2", "truncation.k=3", "lora.target_modules=[to_q,to_k,to_v,to_out.0,conv_out]"]
    tr, summary = _train(tmp_path, 8, fast)
    lora = load_file(tmp_path / "checkpoints" / "step-8" / "pytorch_lora_weights.safetensors")
    assert all(k.startswith("unet.") and (".lora_A." in k or ".lora_B." in k) for k in lora)
    assert any(v.abs().sum() > 0 for k, v in lora.items() if ".lora_B." in k), "LoRA B never moved from zero"
    rows = _metrics(tmp_path)
    assert [r["step"] for r in rows] == list(range(1, 9))
    assert all(r["loss"] is not None and "saturation" in r["rewards"] for r in rows)
    assert summary["heldout_reward_after"] > summary["heldout_reward_before"]
    for f in ("config.yaml", "summary.json", "reward_curve.png", "validation.jsonl"):
        assert (tmp_path / f).is_file()


def test_resume_is_bit_exact(tmp_path):
    extra = ["lora.dropout=0.1", "optim.lr=1e-2"]  # dropout exercises the restored RNG
    _train(tmp_path / "full", 4, extra)
    _train(tmp_path / "part", 2, extra + ["output.checkpoint_every=2"])
    _train(tmp_path / "part", 4, extra + ["output.checkpoint_every=2"], resume="latest")
    a = load_file(tmp_path / "full" / "checkpoints" / "step-4" / "pytorch_lora_weights.safetensors")
    b = load_file(tmp_path / "part" / "checkpoints" / "step-4" / "pytorch_lora_weights.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    la = [r["loss"] for r in _metrics(tmp_path / "full")]
    lb = [r["loss"] for r in _metrics(tmp_path / "part")]
    assert la == lb and len(la) == 4


class _Scripted(RewardPlugin):
    """Brightness, but NaN or Ctrl-C on chosen calls (to test failure handling)."""

    name = "scripted"
    summary = "test reward"
    plan: dict[int, str] = {}
    calls = 0

    def score_frames(self, frames, prompts):
        type(self).calls += 1
        action = self.plan.get(type(self).calls)
        if action == "interrupt":
            raise KeyboardInterrupt
        out = frames.mean(dim=(1, 2, 3))
        return out * float("nan") if action == "nan" else out


@pytest.fixture
def scripted():
    mod = types.ModuleType("scripted_plugin")

    @hookimpl
    def register_rewards(register):
        register(_Scripted)

    mod.register_rewards = register_rewards
    plugins.register_plugin(mod, name="scripted")
    _Scripted.calls = 0
    yield _Scripted
    _Scripted.plan = {}


def test_nonfinite_loss_skips_then_stops_keeping_checkpoint(tmp_path, scripted):
    # call 1 = validation at step 0; calls 2.. = training steps 1..; steps 3-5 give NaN
    scripted.plan = {4: "nan", 5: "nan", 6: "nan"}
    with pytest.raises(NonFiniteLossError, match="3 non-finite losses in a row"):
        _train(tmp_path, 10, ["output.checkpoint_every=2"], rewards=("scripted",))
    rows = _metrics(tmp_path)
    assert [r["skipped"] for r in rows] == [False, False, True, True, True]
    assert rows[2]["loss"] is None
    ck = tmp_path / "checkpoints"
    assert sorted(p.name for p in ck.iterdir()) == ["step-2", "step-4"]
    a = load_file(ck / "step-2" / "pytorch_lora_weights.safetensors")
    b = load_file(ck / "step-4" / "pytorch_lora_weights.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a), "a skipped update changed the weights"


def test_ctrl_c_saves_checkpoint_and_resumes(tmp_path, scripted):
    scripted.plan = {4: "interrupt"}  # during step 3
    with pytest.raises(InterruptedRun, match="resume latest"):
        _train(tmp_path, 5, rewards=("scripted",))
    assert (tmp_path / "checkpoints" / "step-2" / "state.json").is_file()
    scripted.plan = {}
    _, summary = _train(tmp_path, 5, rewards=("scripted",), resume="latest")
    assert summary["steps"] == 5 and [r["step"] for r in _metrics(tmp_path)] == [1, 2, 3, 4, 5]


def test_corrupt_checkpoint_is_reported_and_kept(tmp_path):
    _train(tmp_path, 2, ["output.checkpoint_every=1"])
    ck = tmp_path / "checkpoints" / "step-2"
    (ck / "optimizer.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        _train(tmp_path, 4, ["output.checkpoint_every=1"], resume="latest")
    assert (tmp_path / "checkpoints" / "step-1" / "optimizer.safetensors").stat().st_size > 100
    assert (ck / "pytorch_lora_weights.safetensors").is_file()


def test_bf16_keeps_frozen_weights_in_bf16_and_lora_in_fp32(tmp_path):
    sets = tiny_sets(tmp_path, 2, ["backbone.steps=1"])  # bf16 is slow on this CPU; one step shows the dtypes
    cfg = build_config(None, sets, {"rewards": ["saturation"], "device": "cpu", "precision": "bf16"})
    tr = Trainer(cfg, progress=False)
    summary = tr.run()
    assert summary["precision"] == "bf16"
    for n, p in tr.backbone.denoiser.named_parameters():
        assert p.dtype == (torch.float32 if "lora_" in n else torch.bfloat16), n
    assert all(p.dtype == torch.bfloat16 for p in tr.backbone.components["vae"].parameters())
    assert all(r["loss"] is not None for r in _metrics(tmp_path))


def test_fresh_run_refuses_to_overwrite_checkpoints(tmp_path):
    _train(tmp_path, 1)
    before = (tmp_path / "checkpoints" / "step-1" / "pytorch_lora_weights.safetensors").read_bytes()
    with pytest.raises(CheckpointError, match="already holds checkpoints"):
        _train(tmp_path, 1)
    assert (tmp_path / "checkpoints" / "step-1" / "pytorch_lora_weights.safetensors").read_bytes() == before


def test_reward_queries_of_methods_that_do_not_report_them(tmp_path):
    """A method written before `StepOutput.reward_queries` (it sets neither, or still adds to the deprecated
    `ctx.num_reward_queries`) is counted by `reward_queries_per_step`, once per micro-step."""
    from vader_core.method import MethodPlugin, StepOutput
    from vader_core.sampling import sample_with_grad

    class Plain(MethodPlugin):
        name = "plain"
        adds_to_context = False

        def step(self, ctx, batch, generator, rng):
            with torch.no_grad():
                cond = ctx.backbone.encode_condition(batch.prompts, batch.images)
            video, _, _ = sample_with_grad(
                ctx.backbone, cond, len(batch.prompts), generator, rng, ctx.config.truncation, ctx.config.memory
            )
            total, scores = ctx.objective(video, batch.prompts)
            loss = -total.mean()
            ctx.backward(loss)
            if self.adds_to_context:
                ctx.num_reward_queries += len(batch.prompts)
            return StepOutput(
                loss=float(loss.detach()), reward=total.detach(), rewards={k: v.detach() for k, v in scores.items()}
            )

    class Counting(Plain):
        name = "counting-old"
        adds_to_context = True

        def reward_queries_per_step(self, batch_size):
            return 3 * batch_size  # e.g. a method scoring three candidates per prompt

    mod = types.SimpleNamespace(register_methods=hookimpl(lambda register: [register(Plain), register(Counting)]))
    plugins.register_plugin(mod, name="old-methods")
    try:
        for name, per_step in (("plain", 2 * 2), ("counting-old", 3 * 2 * 2)):
            out = tmp_path / name
            _train(out, 2, ["optim.grad_accum=2", "train.batch_size=2", f"method.name={name}", "backbone.steps=1"])
            assert [r["reward_queries"] for r in _metrics(out)] == [per_step, 2 * per_step], name
            assert json.loads((out / "summary.json").read_text())["reward_queries"] == 2 * per_step
    finally:
        plugins.unregister_plugin(mod)
