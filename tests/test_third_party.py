"""A real third-party plugin: pip-installed into the test environment, used, then removed."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def _pip(*args):
    res = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    return res


def _vader(*args, **env):
    e = {k: v for k, v in os.environ.items() if k != "VADER_PLUGINS"}
    e.update(env)
    return subprocess.run(
        [sys.executable, "-m", "vader_core.cli", *args], capture_output=True, text=True, timeout=300, env=e
    )


@pytest.fixture(scope="module")
def installed():
    _pip(
        "install", "--no-deps", "--no-build-isolation", str(FIXTURES / "vader-redness"), str(FIXTURES / "vader-broken")
    )
    try:
        yield
    finally:
        _pip("uninstall", "-y", "vader-redness", "vader-broken")


def _listing(**env):
    res = _vader("plugins", "--json", **env)
    assert res.returncode == 0, res.stderr
    return {(r["name"], r["kind"]): r for r in json.loads(res.stdout)}


def test_installed_plugin_listed_used_and_removed(installed, tmp_path):
    rows = _listing()
    red = rows[("redness", "reward")]
    assert red["package"] == "vader-redness" and red["version"] == "0.3.1" and red["status"] == "ok"
    broken = rows[("broken", "plugin")]
    assert broken["status"] == "broken" and "vader_no_such_dependency" in broken["summary"]
    assert ("brightness", "reward") in rows  # the broken plugin does not stop the others

    res = _vader(
        "train",
        "--reward",
        "redness",
        "--max-steps",
        "1",
        "--output-dir",
        str(tmp_path),
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
        "--set",
        "rewards.0.gain=2",
        "--device",
        "cpu",
        "-q",
    )
    assert res.returncode == 0, res.stderr
    row = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    assert "redness" in row["rewards"]

    # VADER_PLUGINS limits loading; empty string loads built-ins only
    assert ("redness", "reward") in _listing(VADER_PLUGINS="redness")
    assert ("broken", "plugin") not in _listing(VADER_PLUGINS="redness")
    only_builtins = _listing(VADER_PLUGINS="")
    assert ("redness", "reward") not in only_builtins and ("brightness", "reward") in only_builtins


def test_uninstall_removes_plugin(installed):
    _pip("uninstall", "-y", "vader-redness")
    try:
        assert ("redness", "reward") not in _listing()
        res = _vader("train", "--reward", "redness")
        assert res.returncode == 2 and "unknown reward `redness`" in res.stderr
    finally:
        _pip("install", "--no-deps", "--no-build-isolation", str(FIXTURES / "vader-redness"))
