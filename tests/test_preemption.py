"""Preemption and crashes (issue 18): real signals sent to a real `vader train` process, and what the
next start does with what a kill left behind."""

import json
import os
import signal
import subprocess
import sys
import time

from vader_core.checkpoint import list_checkpoints, load_checkpoint
from vader_core.testing import assert_one_line_error, run_cli

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


def _lines(path):
    return path.read_text().splitlines() if path.is_file() else []


def _start(out, *extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VADER_PLUGINS": ""}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vader_core.cli",
            "train",
            "--max-steps",
            "100000",
            "--output-dir",
            str(out),
            *FAST,
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait_for_steps(proc, metrics, n, timeout=240):
    t0 = time.monotonic()
    while len(_lines(metrics)) < n:
        if proc.poll() is not None:
            raise AssertionError(f"train exited early: {proc.communicate()}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            raise AssertionError("no training steps in time")
        time.sleep(0.05)


def test_preemption_signals_save_and_kill_9_loses_nothing(tmp_path):
    """SIGTERM and SIGUSR1 (each like Ctrl-C: save, one line, exit 128 + signal) and SIGKILL (only complete
    checkpoints remain; the next start removes what the kill left and resumes), three processes at once."""
    runs = {
        signal.SIGTERM: (tmp_path / "term", ["--set", "output.checkpoint_every=0"], 2),
        signal.SIGUSR1: (tmp_path / "usr1", ["--set", "output.checkpoint_every=0"], 2),
        signal.SIGKILL: (
            tmp_path / "kill",
            ["--set", "output.checkpoint_every=1", "--set", "output.keep_checkpoints=2"],
            4,
        ),
    }
    procs = {sig: _start(out, *extra) for sig, (out, extra, _) in runs.items()}
    for sig, (out, _, n) in runs.items():
        _wait_for_steps(procs[sig], out / "metrics.jsonl", n)
        procs[sig].send_signal(sig)
    for sig in (signal.SIGTERM, signal.SIGUSR1):
        out = runs[sig][0]
        proc = procs[sig]
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 128 + sig, (proc.returncode, err)
        status = ("validation before training:", "step 0: held-out")  # progress lines of the first validation
        lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(status)]
        assert len(lines) == 1 and "Traceback" not in err, err
        assert f"stopped by {signal.Signals(sig).name} at step" in lines[0] and "--resume latest" in lines[0]
        done = len(_lines(out / "metrics.jsonl"))
        ckpts = list_checkpoints(out / "checkpoints")
        assert [p.name for p in ckpts] == [f"step-{done}"], (ckpts, done)  # every finished step saved
        load_checkpoint(ckpts[-1])
    # SIGTERM's run continues from its checkpoint
    out = runs[signal.SIGTERM][0]
    done = len(_lines(out / "metrics.jsonl"))
    res = run_cli(["train", "--max-steps", str(done + 1), "--output-dir", out, "--resume", "latest", *FAST])
    assert res[0] == 0, res
    assert [json.loads(x)["step"] for x in _lines(out / "metrics.jsonl")] == list(range(1, done + 2))
    # SIGKILL: nothing half-written
    procs[signal.SIGKILL].communicate(timeout=60)
    assert procs[signal.SIGKILL].returncode == -signal.SIGKILL
    ck = runs[signal.SIGKILL][0] / "checkpoints"
    complete = list_checkpoints(ck)
    assert complete
    for p in complete:
        load_checkpoint(p)  # none is half-written
    (ck / ".step-99-planted").mkdir()  # what a kill during a save leaves
    (ck / ".step-99-planted" / "optimizer.safetensors").write_bytes(b"partial")
    last = int(complete[-1].name.split("-")[1])
    res = run_cli(["train", "--max-steps", str(last + 1), "--output-dir", ck.parent, "--resume", "latest", *FAST])
    assert res[0] == 0, res
    assert not [p for p in ck.iterdir() if p.name.startswith(".")]
    assert "removed temporary checkpoint folders" in res[2]


def test_a_new_run_never_overwrites_an_earlier_runs_metrics(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"step": 1}\n')
    (out / "summary.json").write_text("{}")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    res = run_cli(["train", "--max-steps", "1", "--output-dir", out, *FAST])
    assert_one_line_error(
        res, "earlier run's metrics.jsonl, summary.json", "no complete checkpoint", "another --output-dir"
    )
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_resuming_with_another_max_steps_says_so(tmp_path):
    out = tmp_path / "run"
    sched = ["--set", "optim.schedule=linear"]
    assert run_cli(["train", "--max-steps", "2", "--output-dir", out, *FAST, *sched])[0] == 0
    res = run_cli(["train", "--max-steps", "3", "--output-dir", out, "--resume", "latest", *FAST, *sched])
    assert res[0] == 0, res
    notes = [ln for ln in res[2].splitlines() if ln.startswith("note:")]
    assert len(notes) == 1 and "train.max_steps 3 (the run started with 2)" in notes[0]
    assert "`linear` learning-rate schedule now spans 3 steps" in notes[0]
