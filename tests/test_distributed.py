import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file


def test_two_cpu_processes_end_with_identical_lora(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    script = Path(__file__).parent / "fixtures" / "dist_train.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VADER_PLUGINS": ""}
    res = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node", "2", str(script), str(tmp_path)],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "rank0.txt").read_text() == "2" and (tmp_path / "rank1.txt").read_text() == "2"
    a, b = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    assert a.keys() == b.keys()
    assert any(v.abs().sum() > 0 for k, v in a.items() if "lora_B" in k)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the two processes drew different noise, so the reduced gradient differs from either alone
    metrics = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == 2
