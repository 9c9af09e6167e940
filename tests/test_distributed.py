import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file


def _torchrun(*args) -> None:
    """The fixture script under ``torchrun`` with two CPU processes (gloo)."""
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    script = Path(__file__).parent / "fixtures" / "dist_train.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VADER_PLUGINS": "", "PYTHONFAULTHANDLER": "1"}
    res = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node", "2", str(script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert res.returncode == 0, res.stderr[-6000:]


@pytest.mark.distributed
def test_two_cpu_processes_end_with_identical_lora(tmp_path):
    _torchrun(tmp_path)
    assert (tmp_path / "rank0.txt").read_text() == "2" and (tmp_path / "rank1.txt").read_text() == "2"
    a, b = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    assert a.keys() == b.keys()
    assert any(v.abs().sum() > 0 for k, v in a.items() if "lora_B" in k)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the two processes drew different noise, so the reduced gradient differs from either alone
    metrics = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == 2


@pytest.mark.distributed
def test_resumed_two_process_run_counts_reward_queries_like_an_uninterrupted_one(tmp_path):
    """1 step, stop, resume to 2: the same reward queries, step by step, as 2 steps in one go: every step
    scores grad_accum x batch videos on each of the 2 processes (a resumed run used to multiply its
    restored total by the process count)."""
    steps, grad_accum, batch, processes = 2, 2, 1, 2
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    _torchrun(whole, steps, grad_accum)
    _torchrun(parts, 1, grad_accum)
    _torchrun(parts, steps, grad_accum, "latest")
    per_step = grad_accum * batch * processes
    for d in (whole, parts):
        rows = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in rows] == list(range(1, steps + 1))
        assert [r["reward_queries"] for r in rows] == [per_step * s for s in range(1, steps + 1)], d.name
        assert json.loads((d / "summary.json").read_text())["reward_queries"] == steps * per_step, d.name


@pytest.mark.distributed
def test_vader_train_under_accelerate_launch(tmp_path):
    """The documented command line, `accelerate launch ... vader train`, on two CPU processes: accelerate's
    multi-GPU launcher (torchrun inside) with `--device cpu` gives two gloo processes. The run ends with exit
    code 0: the process group is destroyed before the interpreter (gloo aborted at exit now and then)."""
    import socket

    with socket.socket() as s:  # a free rendezvous port: accelerate's default 29500 is shared by every run
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or "accelerate"
    vader = shutil.which("vader", path=str(Path(sys.executable).parent)) or "vader"
    out = tmp_path / "run"
    launch = [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1"]
    launch += ["--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port), "--no_python"]
    train = [vader, "train", "--backbone", "tiny", "--reward", "saturation", "--max-steps", "2", "--device", "cpu"]
    train += ["--output-dir", str(out), "--quiet", "--set", "validation.every=0", "--set", "validation.seeds=[0]"]
    train += ["--set", "optim.grad_accum=1"]  # the default 8 micro-batches make a 2-step run take minutes here
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VADER_PLUGINS": ""}
    res = subprocess.run([*launch, *train], capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stderr[-6000:]
    assert "terminate called" not in res.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["steps"] == 2
    import yaml

    cfg = yaml.safe_load((out / "config.yaml").read_text())
    per_step = cfg["train"]["batch_size"] * cfg["optim"]["grad_accum"] * 2
    assert summary["reward_queries"] == 2 * per_step
    assert (out / "checkpoints" / "step-2" / "pytorch_lora_weights.safetensors").is_file()
    assert res.stdout.count("vader run") == 1  # the summary is printed by the main process only


def test_sequence_parallel_degree_must_divide_the_processes():
    import pytest

    from vader_core.config import DistributedSection
    from vader_core.errors import ConfigError
    from vader_core.run.sharding import check_layout

    check_layout(DistributedSection(sequence_parallel=2), 4)
    with pytest.raises(ConfigError, match=r"must divide the number of processes \(4\), got 3; valid: 1, 2, 4"):
        check_layout(DistributedSection(sequence_parallel=3), 4)


def test_fsdp_of_a_backbone_that_names_no_blocks_fails_in_one_line():
    import pytest

    from vader_core.errors import ConfigError
    from vader_core.run.sharding import shard_units

    class NoBlocks:
        name = "plain"
        denoiser = torch.nn.Linear(2, 2)

        def checkpoint_blocks(self):
            return []

    with pytest.raises(ConfigError, match="names no blocks.*use `distributed.strategy: ddp`"):
        shard_units(NoBlocks())


def test_per_gpu_peak_shares_out_weights_and_tokens():
    from vader_core.estimate import per_gpu_peak

    parts = dict(denoiser_weights=26.0, largest_unit=0.5, root_weights=0.4, other_weights=0.2, kept=40.0, recompute=8.0)
    one = per_gpu_peak(**parts, decode=10.0)
    assert one == pytest.approx(26.0 + 0.2 + 48.0)  # one process: everything whole
    assert per_gpu_peak(**parts, decode=10.0, world=8, strategy="ddp") == one  # DDP shares nothing out
    fsdp = per_gpu_peak(**parts, decode=10.0, world=8)
    assert fsdp == pytest.approx(26.0 / 8 + 0.4 + 2 * 0.5 + 0.2 + 48.0)
    sp = per_gpu_peak(**parts, decode=10.0, world=8, sequence_parallel=8)
    assert sp == pytest.approx(26.0 / 8 + 0.4 + 1.0 + 0.2 + 10.0)  # the decoded frame now sets the peak


def test_ending_a_run_waits_for_every_process_only_when_it_ended_well():
    """After a run that ended well every process passes a barrier before the group goes; a process leaving
    on an error of its own does not wait (its peers are in another collective, or in none)."""
    from types import SimpleNamespace

    from vader_core.run import distributed

    calls = []
    acc = SimpleNamespace(
        num_processes=2,
        wait_for_everyone=lambda: calls.append("barrier"),
        end_training=lambda: calls.append("end"),
    )
    distributed.end(acc)
    assert calls == ["barrier", "end"]
    calls.clear()
    with pytest.raises(RuntimeError):
        try:
            raise RuntimeError("this process's own failure")
        finally:
            distributed.end(acc)
    assert calls == ["end"]
    calls.clear()
    distributed.end(SimpleNamespace(num_processes=1))  # one process: nothing to end
    assert calls == []
