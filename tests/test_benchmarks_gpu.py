"""The CPU-side parts of `python -m benchmarks.gpu`: arguments, refusal without a GPU, the table, the JSON."""

import json

import pytest
import torch

from benchmarks import gpu


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible: the benchmark would run")
def test_refuses_on_cpu_with_one_line(capsys):
    assert gpu.main(["--only", "modelscope"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "CUDA GPU" in err


@pytest.mark.parametrize(
    "argv, words", [(["--only", "modelscope,nope"], "nope"), (["--only", ","], "none"), (["--steps", "1"], "--steps")]
)
def test_bad_arguments_are_one_line(argv, words):
    with pytest.raises(SystemExit) as e:
        gpu.parse(argv)
    msg = str(e.value)
    assert msg.startswith("error:") and words in msg and "\n" not in msg


def test_arguments_and_installed_models():
    args = gpu.parse(["--only", "svd,modelscope", "--steps", "10"])
    assert args.names == ["svd", "modelscope"] and args.steps == 10
    assert gpu.parse([]).names == list(gpu.MODELS) and "wan" in gpu.MODELS
    got = gpu.installed(list(gpu.MODELS))
    assert {"modelscope", "svd", "videocrafter2"} <= set(got)  # make install installs these plugins
    try:
        import vader_wan  # noqa: F401
    except ImportError:
        assert "wan" not in got


def test_table_and_json(tmp_path):
    rows = [
        {"model": "modelscope", "setting": "384x384", "peak_gib": 6.2, "estimate_gib": 5.8, "step_s": 9.84},
        {"model": "svd", "setting": "576x1024", "peak_gib": 13.0, "estimate_gib": None, "step_s": 30.0},
        {"model": "wan", "setting": "480x832", "error": "RuntimeError: out of memory"},
    ]
    md = gpu.table(rows)
    lines = md.splitlines()
    assert len(lines) == 5 and "| modelscope | 384x384 | 6.2 | 5.8 | 1.07 | 9.8 |" in lines
    assert "| svd | 576x1024 | 13.0 | n/a | n/a | 30.0 |" in lines and "failed: RuntimeError" in lines[-1]
    (tmp_path / "benchmarks.json").write_text(json.dumps({"overhead_ratio": 1.0, "details": {"b1": {}}}))
    gpu.write(tmp_path, {"device": "NVIDIA H200", "rows": rows})
    data = json.loads((tmp_path / "benchmarks.json").read_text())
    assert data["overhead_ratio"] == 1.0 and data["details"] == {"b1": {}}
    assert data["gpu"]["device"] == "NVIDIA H200" and data["gpu"]["rows"][0]["peak_gib"] == 6.2
