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
        {
            "model": "modelscope",
            "setting": "384x384",
            "peak_gib": 6.2,
            "estimate_gib": 5.8,
            "step_s": 9.84,
            "step_s_levers": 4.92,
            "mfu": 0.4123,
        },
        {"model": "svd", "setting": "576x1024", "peak_gib": 13.0, "estimate_gib": None, "step_s": 30.0},
        {"model": "wan", "setting": "480x832", "error": "RuntimeError: out of memory"},
    ]
    md = gpu.table(rows)
    lines = md.splitlines()
    assert len(lines) == 5 and "| modelscope | 384x384 | 6.2 | 5.8 | 1.07 | 9.8 | 4.9 | 2.00x | 41.2% |" in lines
    assert (
        "| svd | 576x1024 | 13.0 | n/a | n/a | 30.0 | n/a | n/a | n/a |" in lines
        and "failed: RuntimeError" in lines[-1]
    )
    (tmp_path / "benchmarks.json").write_text(json.dumps({"overhead_ratio": 1.0, "details": {"b1": {}}}))
    gpu.write(tmp_path, {"device": "NVIDIA H200", "rows": rows})
    data = json.loads((tmp_path / "benchmarks.json").read_text())
    assert data["overhead_ratio"] == 1.0 and data["details"] == {"b1": {}}
    assert data["gpu"]["device"] == "NVIDIA H200" and data["gpu"]["rows"][0]["peak_gib"] == 6.2


def test_model_flops_utilisation():
    assert gpu.peak_tflops("NVIDIA H100 80GB HBM3") == 989.0 and gpu.peak_tflops("NVIDIA H200") == 989.0
    assert gpu.peak_tflops("Some GPU") is None and gpu.peak_tflops("Some GPU", 100.0) == 100.0
    assert gpu.mfu(494.5e12, 1.0, 989.0) == pytest.approx(0.5)
    assert gpu.mfu(None, 1.0, 989.0) is None and gpu.mfu(1e12, 1.0, None) is None
    assert gpu.parse(["--peak-tflops", "500"]).peak_tflops == 500.0
    # the levers each model is timed with are valid options of the configuration
    from vader_core.config import SamplingSection, SpeedSection

    for m in gpu.MODELS.values():
        if m.levers:
            SamplingSection(**m.levers.get("sampling", {}))
            SpeedSection(**m.levers.get("speed", {}))


def test_step_flops_of_modelscope_on_the_meta_device():
    flops = gpu.step_flops("modelscope", 2)
    # 384x384x16, guidance: one guided call is about 22.7 TFLOP; 2 steps, one kept with its backward
    assert 60e12 < flops < 90e12
    assert gpu.step_flops("svd", 2) is None
