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
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VADER_PLUGINS": "wan", "HF_HUB_OFFLINE": "1"}
    args = [str(SCRIPT), str(out), *sets, *(["--resume", resume] if resume else [])]
    if processes > 1:
        torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
        cmd = [torchrun, "--standalone", "--nproc_per_node", str(processes), *args]
    else:
        cmd = [sys.executable, *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    if check:
        assert res.returncode == 0, res.stderr[-3000:]
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
