"""The benchmark command in --quick mode produces well-formed output (never a timing assertion)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_benchmarks_write_report(tmp_path):
    env = {**os.environ, "VADER_PLUGINS": ""}
    res = subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=1500, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    data = json.loads((tmp_path / "benchmarks.json").read_text())
    for key in ("memory_reduction_ratio", "overhead_ratio", "ddpo_query_ratio", "machine"):
        assert key in data
    assert isinstance(data["memory_reduction_ratio"], float) and data["memory_reduction_ratio"] > 0
    assert isinstance(data["overhead_ratio"], float) and data["overhead_ratio"] > 0
    assert data["machine"]["cpus"] >= 1
    rows = data["details"]["b1"]["rows"]
    assert len(rows) == 6 and all("error" not in r for r in rows)
    md = (tmp_path / "benchmarks.md").read_text()
    for section in ("B1. Memory ablation", "B2. Framework overhead", "B3. Scaling", "B4. Sample efficiency"):
        assert section in md
    for png in ("bench-quick-b1-memory.png", "bench-quick-b3-scaling.png", "bench-quick-b4-sample-efficiency.png"):
        assert (tmp_path / "img" / png).stat().st_size > 1000


def test_quick_b6_guards_report(tmp_path):
    env = {**os.environ, "VADER_PLUGINS": ""}
    res = subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick", "--only", "b6", "--out", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    b = json.loads((tmp_path / "benchmarks.json").read_text())["details"]["b6"]
    assert [r["setting"] for r in b["rows"]] == ["unguarded", "KL weight 1", "unguarded, LoRA scale 0.5"]
    assert all(0 <= r["color"] <= 1 and r["gain"] == r["gain"] for r in b["rows"])
    assert b["runs"][1]["final_kl"] is not None and b["runs"][0]["final_kl"] is None
    assert any(r["pareto"] for r in b["rows"])
    assert "B6. Guarding against over-optimisation" in (tmp_path / "benchmarks.md").read_text()
    assert (tmp_path / "img" / "bench-quick-b6-guards.png").stat().st_size > 1000
