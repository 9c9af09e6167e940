"""No file a user passes to vader runs code when read (issue 18): every path of the core that accepts a
file gets a planted pickle whose unpickling would create a marker file, and the marker never appears.
The plugins' own weight options have the same test in each plugin's ``tests/test_planted_pickles.py``."""

import json

import numpy as np
import pytest
import torch

from vader_core import checkpoint as ck
from vader_core.cli import main
from vader_core.testing import plant_pickle, planted_pickle_works

FAST = [
    "--set",
    "optim.grad_accum=1",
    "--set",
    "output.logger=none",
    "--set",
    "validation.every=0",
    "--set",
    "validation.save_videos=false",
    "--set",
    "validation.seeds=[0]",
    "--set",
    "backbone.steps=2",
    "--device",
    "cpu",
    "-q",
]


def _cli(capsys, *args):
    """Run the real entry point in-process; returns (exit code, stderr lines)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = e.code
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    return code, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A one-step run (its checkpoint is the template of the planted ones)."""
    d = tmp_path_factory.mktemp("run")
    main(["train", "--max-steps", "1", "--output-dir", str(d), *FAST])
    return d


def test_the_payload_really_runs_when_unpickled(tmp_path):
    assert planted_pickle_works(tmp_path)  # else the tests below could not fail


def test_checkpoints_hold_no_pickle(trained):
    step = trained / "checkpoints" / "step-1"
    names = sorted(p.name for p in step.iterdir())
    assert names == [
        "optimizer.safetensors",
        "pytorch_lora_weights.safetensors",
        "rng.safetensors",
        "scheduler.safetensors",
        "state.json",
    ]
    for p in step.glob("*.safetensors"):
        assert p.read_bytes()[8:9] == b"{", p  # a safetensors header, not a pickle (b"\x80") or zip (b"PK")


def test_state_round_trip_is_exact():
    import random

    state = ck.rng_state()
    back = ck._decode(json.loads(json.dumps(ck._encode(state, t := {}))), t)
    assert back["python"] == random.getstate()
    assert back["numpy"][0] == "MT19937" and np.array_equal(back["numpy"][1], np.random.get_state()[1])
    assert torch.equal(back["torch"], torch.get_rng_state())
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.ones(3))], lr=1e-3)
    opt.param_groups[0]["params"][0].grad = torch.ones(3)
    opt.step()
    sd = opt.state_dict()
    back = ck._decode(json.loads(json.dumps(ck._encode(sd, t := {}))), t)
    assert back["param_groups"] == sd["param_groups"] and torch.equal(
        back["state"][0]["exp_avg"], sd["state"][0]["exp_avg"]
    )


@pytest.mark.parametrize("part", ["optimizer", "scheduler", "rng"])
def test_resume_from_a_planted_checkpoint_runs_no_code(tmp_path, trained, capsys, part):
    """An old-format checkpoint folder (``*.pt`` pickles) with one planted part."""
    import shutil

    out = tmp_path / "run"
    shutil.copytree(trained, out)
    step = out / "checkpoints" / "step-1"
    for name in ck._PARTS:  # rewrite as the earlier version's pickles (plain tensors and dicts)
        obj = ck.load_state(step / f"{name}.safetensors")
        if name == "rng":
            obj = {"torch": obj["torch"]}
        torch.save(obj, step / f"{name}.pt")
        (step / f"{name}.safetensors").unlink()
    marker = tmp_path / "MARKER"
    plant_pickle(step / f"{part}.pt", marker)
    code, err = _cli(capsys, "train", "--max-steps", "2", "--output-dir", str(out), "--resume", "latest", *FAST)
    assert not marker.exists()
    assert code == 2 and len(err) == 1 and f"{part}.pt holds Python objects" in err[0], err
    assert "python -m vader_core.checkpoint convert" in err[0]


def test_an_earlier_versions_checkpoint_converts_and_resumes(tmp_path, trained, capsys):
    """The old format with numpy RNG state (needs the opt-in converter), then bit-exact resume."""
    import shutil

    from safetensors.torch import load_file

    out = tmp_path / "run"
    shutil.copytree(trained, out)
    step = out / "checkpoints" / "step-1"
    for name in ck._PARTS:
        torch.save(ck.load_state(step / f"{name}.safetensors"), step / f"{name}.pt")  # numpy arrays in rng.pt
        (step / f"{name}.safetensors").unlink()
    code, err = _cli(capsys, "train", "--max-steps", "2", "--output-dir", str(out), "--resume", "latest", *FAST)
    assert code == 2 and len(err) == 1 and f"python -m vader_core.checkpoint convert {step}" in err[0], err
    assert ck._main(["convert", str(step)]) == 0
    assert not list(step.glob("*.pt"))
    main(["train", "--max-steps", "2", "--output-dir", str(out), "--resume", "latest", *FAST])
    ref = tmp_path / "ref"
    main(["train", "--max-steps", "2", "--output-dir", str(ref), *FAST])
    a = load_file(out / "checkpoints" / "step-2" / "pytorch_lora_weights.safetensors")
    b = load_file(ref / "checkpoints" / "step-2" / "pytorch_lora_weights.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("where", ["file", "dir"])
def test_generate_lora_planted_runs_no_code(tmp_path, capsys, where):
    marker = tmp_path / "MARKER"
    target = tmp_path / "lora.safetensors" if where == "file" else tmp_path / "ck" / ck.WEIGHTS_NAME
    plant_pickle(target, marker)
    code, err = _cli(
        capsys,
        "generate",
        "--prompt",
        "a cat",
        "--set",
        "backbone.steps=1",
        "--device",
        "cpu",
        "--lora",
        str(target if where == "file" else target.parent),
        "--out",
        str(tmp_path / "v.npy"),
    )
    assert not marker.exists() and code == 2 and len(err) == 1 and "LoRA" in err[0], err
    assert not (tmp_path / "v.npy").exists()


def test_score_planted_npy_runs_no_code(tmp_path, capsys):
    from vader_core.testing import _CreatesFile

    marker = tmp_path / "MARKER"
    np.save(tmp_path / "v.npy", np.array([_CreatesFile(str(marker))], dtype=object), allow_pickle=True)
    code, err = _cli(capsys, "score", str(tmp_path / "v.npy"), "--reward", "brightness", "--device", "cpu")
    assert not marker.exists() and code == 2 and len(err) == 1 and "cannot read video" in err[0], err


def test_config_file_python_tags_run_no_code(tmp_path, capsys):
    marker = tmp_path / "MARKER"
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"train: !!python/object/apply:builtins.open [{str(marker)!r}, w]\n")
    code, err = _cli(capsys, "config", "--config", str(cfg))
    assert not marker.exists() and code == 2 and len(err) == 1 and "cannot parse" in err[0], err
