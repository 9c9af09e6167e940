"""The rough edges a newcomer hits first: a library warning above a missing-weights error, `--metric` against
`--set` and the config, smoke runs' accumulation, and starting over in a crashed run's folder."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from vader_core.config import build_config
from vader_core.resolve import resolve_config
from vader_core.testing import QUIET_TRAINING, run_cli, set_options

SMALL = {**QUIET_TRAINING, "backbone.steps": 2, "backbone.frames": 2, "backbone.height": 16, "backbone.width": 16}


def _train(out, *extra):
    args = ["train", "--backbone", "tiny", "--reward", "brightness", "--max-steps", 1, "--output-dir", out]
    return run_cli([*args, "--device", "cpu", "-q", *set_options(SMALL), *extra])


def test_missing_weights_is_one_line_without_the_hub_clients_symlink_warning(install, tmp_path):
    # A backbone loading as diffusers' loaders do: hf_hub_download with the argument huggingface_hub deprecated.
    source = textwrap.dedent(
        """
        from vader_core import BackbonePlugin, hookimpl
        from vader_core.hub import missing_weights


        class Hubbed(BackbonePlugin):
            name = "hubbed"
            summary = "Loads from the hub."

            def load(self, device, dtype):
                from huggingface_hub import hf_hub_download

                try:
                    hf_hub_download("owner/hubbed", "config.json", local_dir="w", local_dir_use_symlinks=False)
                except OSError as e:
                    raise missing_weights("owner/hubbed", e, option="backbone.model") from None


        @hookimpl
        def register_backbones(register):
            register(Hubbed)
        """
    )
    install("vader-hubbed", source)
    # A fresh interpreter: pytest would catch the warning before it reached stderr.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(tmp_path / "site")}
    args = ["generate", "--backbone", "hubbed", "--prompt", "a", "--out", str(tmp_path / "v.npy")]
    res = subprocess.run(
        [sys.executable, "-m", "vader_core.cli", *args], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: cannot load"), res.stderr
    assert "local_dir_use_symlinks" not in res.stderr


def test_metric_flag_comes_before_set_and_is_not_doubled(tmp_path):
    cfg = build_config(None, ["validation.metrics.0.kind=reward"], {"metrics": ["brightness"]})
    assert [(m.name, m.kind) for m in cfg.validation.metrics] == [("brightness", "reward")]
    conf = tmp_path / "run.yaml"
    conf.write_text("validation:\n  metrics: [{name: toy_color}]\n")
    cfg = resolve_config(build_config(conf, [], {"metrics": ["toy_color", "brightness"]}))
    assert [m.name for m in cfg.validation.metrics] == ["toy_color", "brightness"]


def test_random_weights_smoke_run_steps_once_per_micro_batch(tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text("optim: {grad_accum: 3}\n")
    from vader_core.cli_errors import random_weight_sets

    assert "optim.grad_accum=1" in random_weight_sets("tiny", None, [])
    assert "optim.grad_accum=1" not in random_weight_sets("tiny", conf, [])


def test_overwrite_starts_over_in_a_crashed_runs_folder_and_never_deletes_checkpoints(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"step": 1}\n')
    (out / "notes.txt").write_text("mine")
    rc, _, err = _train(out)
    assert rc == 2 and "start over there with --overwrite" in err
    rc, _, err = run_cli(["train", "--reward", "no_such_reward", "--output-dir", out, "--overwrite"])
    assert rc == 2 and (out / "metrics.jsonl").read_text() == '{"step": 1}\n'  # a bad config deletes nothing
    rc, _, err = _train(out, "--overwrite")
    assert rc == 0, err
    assert "--overwrite: removed the earlier run's metrics.jsonl" in err
    assert (out / "notes.txt").read_text() == "mine"  # only what vader writes
    ckpt = sorted((out / "checkpoints").iterdir())
    assert ckpt, "the new run saved a checkpoint"
    before = {p: p.stat().st_mtime_ns for p in (out / "checkpoints").rglob("*")}
    rc, _, err = _train(out, "--overwrite")
    assert rc == 2 and "--overwrite never deletes checkpoints" in err
    assert {p: p.stat().st_mtime_ns for p in (out / "checkpoints").rglob("*")} == before
    rc, _, err = _train(out, "--overwrite", "--resume", "latest")
    assert rc == 2 and "give one of them" in err


def test_export_for_a_backbone_without_other_layouts_is_one_line(tmp_path):
    import torch

    from vader_core.lora import WEIGHTS_NAME, save_lora

    save_lora(tmp_path / WEIGHTS_NAME, {"unet.x.lora_A.weight": torch.zeros(2, 2)}, {"unet.lora_alpha": 2})
    rc, _, err = run_cli(["export", tmp_path, "--backbone", "tiny"])
    assert rc == 2 and "backbone `tiny` writes no other layout" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [WEIGHTS_NAME]
