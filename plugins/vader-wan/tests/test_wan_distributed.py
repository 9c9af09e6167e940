"""Two CPU processes (gloo) training the tiny Wan 2.1 with `distributed.strategy: fsdp` (torch's FSDP2):
the same LoRA as one process with the same global batch and seeds, the one-process file layout, resume.

Each run is a real `torchrun --nproc_per_node 2` (or one plain process) of fixtures/wan_train.py."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.distributed

SCRIPT = Path(__file__).parent / "fixtures" / "wan_train.py"
#: Deterministic sampling so that a step's samples do not depend on how they are spread over processes:
#: no LoRA dropout (its masks come from each process's own generator) and every frame decoded (no draw).
SAME_DRAWS = ["lora.dropout=0", "memory.decoded_frames=null"]
#: LoRA after 2 AdamW steps at lr 1e-2, FSDP on 2 processes against one process: equal up to the order of
#: float32 sums in the gradient reduction (measured: 0.0, i.e. bit-equal, on this CPU).
ATOL = 1e-6


def run(out: Path, *sets: str, processes: int = 2, resume: str | None = None, check: bool = True):
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "VADER_PLUGINS": "wan",
        "HF_HUB_OFFLINE": "1",
        "PYTHONFAULTHANDLER": "1",
    }
    args = [str(SCRIPT), str(out), *sets, *(["--resume", resume] if resume else [])]
    if processes > 1:
        torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
        cmd = [torchrun, "--standalone", "--nproc_per_node", str(processes), *args]
    else:
        cmd = [sys.executable, *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    if check:
        assert res.returncode == 0, res.stderr[-6000:]
    return res


def losses(out: Path) -> list[float]:
    return [json.loads(x)["loss"] for x in (out / "metrics.jsonl").read_text().splitlines()]


def test_fsdp_lora_equals_one_process_with_the_same_global_batch(tmp_path):
    """2 processes x grad_accum 1 against 1 process x grad_accum 2: the same 2 samples per step."""
    one, fsdp = tmp_path / "one", tmp_path / "fsdp"
    run(one, "train.max_steps=2", "optim.grad_accum=2", *SAME_DRAWS, processes=1)
    run(fsdp, "train.max_steps=2", "optim.grad_accum=1", "distributed.strategy=fsdp", *SAME_DRAWS)
    a, b = load_file(one / "final.safetensors"), load_file(fsdp / "final.safetensors")
    assert a.keys() == b.keys() and all(a[k].shape == b[k].shape and a[k].dtype == b[k].dtype for k in a)
    assert any(v.abs().sum() > 0 for k, v in a.items() if "lora_B" in k)  # it trained
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=ATOL, rtol=0, msg=k)
    assert losses(fsdp) == pytest.approx(losses(one), abs=1e-6)
    # the checkpoint's LoRA file: the same keys, shapes, dtypes and metadata as the one-process run's
    ca = load_file(one / "checkpoints" / "step-2" / "pytorch_lora_weights.safetensors")
    cb = load_file(fsdp / "checkpoints" / "step-2" / "pytorch_lora_weights.safetensors")
    assert {k: (v.shape, v.dtype) for k, v in ca.items()} == {k: (v.shape, v.dtype) for k, v in cb.items()}
    from safetensors import safe_open

    metas = []
    for d in (one, fsdp):
        with safe_open(str(d / "checkpoints" / "step-2" / "pytorch_lora_weights.safetensors"), "pt") as f:
            metas.append(f.metadata())
    assert metas[0] == metas[1]
    # each process held half of the transformer's weights (a few bytes more where a shape is odd)
    held = json.loads((fsdp / "run.json").read_text())["param_bytes"]
    whole = json.loads((one / "run.json").read_text())["param_bytes"][0]
    assert len(held) == 2 and all(abs(h - whole / 2) <= 0.01 * whole for h in held), (held, whole)


# ---------------------------------------------------------------------- resume
#: Four steps with a checkpoint after each; LoRA dropout and random frame choice left on, so that a resumed
#: run must continue every process's own random stream to match.
RESUME = ["train.max_steps=4", "optim.grad_accum=1", "output.checkpoint_every=1", "distributed.strategy=fsdp"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole")
    run(out, *RESUME)
    return load_file(out / "final.safetensors")


def start(out: Path, *sets: str) -> subprocess.Popen:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "VADER_PLUGINS": "wan",
        "HF_HUB_OFFLINE": "1",
        "PYTHONFAULTHANDLER": "1",
    }
    cmd = [torchrun, "--standalone", "--nproc_per_node", "2", str(SCRIPT), str(out), *sets]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_step(proc: subprocess.Popen, out: Path, step: int) -> None:
    import time

    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "metrics.jsonl").is_file() and len((out / "metrics.jsonl").read_text().splitlines()) >= step:
            return
        time.sleep(0.2)
    raise AssertionError(f"no step {step} (exit {proc.poll()}): {proc.communicate()[1][-2000:]}")


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_sigterm_mid_run_then_resume_equals_an_uninterrupted_run(tmp_path, uninterrupted):
    """SIGTERM to torchrun, which passes it on: both processes stop together at a step boundary, save it,
    exit 143; resuming at the same world size gives the uninterrupted run's LoRA bit for bit."""
    out = tmp_path / "parts"
    proc = start(out, *RESUME)
    wait_for_step(proc, out, 1)
    proc.send_signal(15)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "stopped by SIGTERM at step" in err and "--resume latest" in err, err[-2000:]
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps and steps[-1] < 4 and (out / "checkpoints" / f"step-{steps[-1]}").is_dir()
    run(out, *RESUME, resume="latest")
    assert_same(load_file(out / "final.safetensors"), uninterrupted)


def test_kill_9_mid_run_then_resume_equals_an_uninterrupted_run(tmp_path, uninterrupted):
    """kill -9 of one process (torchrun ends the other): the newest complete checkpoint resumes exactly."""
    import psutil

    out = tmp_path / "parts"
    proc = start(out, *RESUME)
    wait_for_step(proc, out, 2)
    workers = psutil.Process(proc.pid).children(recursive=True)
    assert workers
    workers[-1].kill()
    proc.communicate(timeout=120)
    assert proc.returncode != 0
    run(out, *RESUME, resume="latest")
    assert_same(load_file(out / "final.safetensors"), uninterrupted)


def test_another_world_size_resumes_a_sharded_checkpoint(tmp_path):
    """2 FSDP processes for 2 steps, then 1 process with grad_accum 2 (the same global batch) to 4: the
    LoRA of one process throughout, which equals that of 2 FSDP processes (the first test); the optimiser
    state is saved whole, keyed by parameter name."""
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    sets = [*SAME_DRAWS, "distributed.strategy=fsdp", "output.checkpoint_every=2"]
    run(whole, "train.max_steps=4", "optim.grad_accum=2", *sets, processes=1)
    run(parts, "train.max_steps=2", "optim.grad_accum=1", *sets)
    run(parts, "train.max_steps=4", "optim.grad_accum=2", *sets, processes=1, resume="latest")
    a, b = load_file(whole / "final.safetensors"), load_file(parts / "final.safetensors")
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=ATOL, rtol=0, msg=k)


def test_bf16_fsdp_keeps_lora_and_its_gradients_in_float32(tmp_path):
    """`precision: bf16` under FSDP2: the frozen weights held in bf16, the LoRA and its reduced gradients in
    float32, and the LoRA after 2 steps as one bf16 process with the same global batch trains it (each sample's
    bf16 forward is the same computation in both; the gradients meet in float32. Measured: bit-equal)."""
    one, fsdp = tmp_path / "one", tmp_path / "fsdp"
    sets = ["train.max_steps=2", "precision=bf16", "optim.eps=1e-4", *SAME_DRAWS]
    run(one, *sets, "optim.grad_accum=2", processes=1)
    run(fsdp, *sets, "optim.grad_accum=1", "distributed.strategy=fsdp")
    info = json.loads((fsdp / "run.json").read_text())
    assert info["dtypes"] == {"frozen": ["torch.bfloat16"], "lora": ["torch.float32"]}
    assert {v.dtype for v in load_file(fsdp / "grads.safetensors").values()} == {torch.float32}
    a, b = load_file(one / "final.safetensors"), load_file(fsdp / "final.safetensors")
    assert a.keys() == b.keys() and {v.dtype for v in b.values()} == {torch.float32}
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=ATOL, rtol=0, msg=lambda m, k=k: f"{k}: {m}")


# ---------------------------------------------------------------------- sequence parallelism
#: Ulysses of degree 2 against one process, one video per step: the split attention sums in another order.
#: The first step's loss is equal and the LoRA gradients agree within 8e-9 (of 7e-4). AdamW divides each update by
#: the gradient's own size, so with its default eps (1e-8) a gradient entry near zero turns a 1e-9 difference into
#: a 1e-5 one in the LoRA (1.2e-5 on one CPU, 2.2e-6 on another); the comparison of the LoRA after 2 steps at lr 1e-2
#: runs with eps 1e-4, which keeps AdamW's step for these gradients and bounds that amplification (measured:
#: within 2e-7, while an AdamW step at lr 1e-2 moves a LoRA entry by up to 1e-2).
SP_GRAD_RTOL, SP_LORA_ATOL = 1e-4, 1e-6


@pytest.mark.parametrize("strategy", ["fsdp"])
def test_sequence_parallel_2_equals_one_process(tmp_path, strategy):
    one, sp = tmp_path / "one", tmp_path / "sp"
    sets = ["train.max_steps=2", "optim.grad_accum=1", "optim.eps=1e-4", *SAME_DRAWS]
    run(one, *sets, processes=1)
    run(sp, *sets, "distributed.sequence_parallel=2", f"distributed.strategy={strategy}")
    # forward: the same frames give the same reward (the loss of a step is minus the reward of its frames)
    assert losses(sp)[0] == pytest.approx(losses(one)[0], rel=1e-6, abs=0)
    ga, gb = load_file(one / "grads.safetensors"), load_file(sp / "grads.safetensors")
    assert ga.keys() == gb.keys() and any(v.abs().sum() > 0 for v in ga.values())
    scale = max(v.abs().max() for v in ga.values())
    for k in ga:
        torch.testing.assert_close(gb[k], ga[k], atol=SP_GRAD_RTOL * scale, rtol=0, msg=k)
    a, b = load_file(one / "final.safetensors"), load_file(sp / "final.safetensors")
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=SP_LORA_ATOL, rtol=0, msg=lambda m, k=k: f"{k}: {m}")


def test_sequence_parallel_degree_must_divide_the_heads():
    """The tiny Wan has 2 heads: a degree of 3 on 3 processes divides the world but not the heads."""
    from vader_wan import WanBackbone
    from vader_wan.tiny import tiny_transformer

    from vader_core.errors import ConfigError
    from vader_core.run.sharding import Layout, check_sequence_parallel

    bb = WanBackbone()
    bb.components = {"transformer": tiny_transformer(heads=2)}
    assert check_sequence_parallel(bb, Layout(world=4, sp=2))
    with pytest.raises(ConfigError, match=r"heads \(2\) and the number of processes \(6\), got 3; valid: 1, 2$"):
        check_sequence_parallel(bb, Layout(world=6, sp=3))
