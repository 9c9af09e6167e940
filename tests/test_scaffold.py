"""`vader new reward|metric|backbone NAME`: the package it writes installs and passes its own tests as written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from vader_core.testing import run_cli


def _declare_installed(pkg_dir: Path, site: Path) -> None:
    """What ``pip install -e`` leaves for the entry point: the .dist-info built from the package's own pyproject."""
    project = tomllib.loads((pkg_dir / "pyproject.toml").read_text())["project"]
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    eps = "".join(f"{k} = {v}\n" for k, v in project["entry-points"]["vader"].items())
    (info / "entry_points.txt").write_text(f"[vader]\n{eps}")


def _pytest(pkg_dir: Path, pythonpath: list[Path], *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("VADER_PLUGINS", "PYTEST_ADDOPTS")}
    env.update(PYTHONPATH=os.pathsep.join(map(str, pythonpath)), OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=pkg_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _new(kind: str, name: str, parent: Path) -> Path:
    rc, out, err = run_cli(["new", kind, name, "--dir", parent])
    assert rc == 0, err
    pkg = parent / f"vader-{name.replace('_', '-')}"
    assert f"wrote {pkg}" in out.replace("\n", " ")
    return pkg


def test_reward_package_installs_and_passes_its_tests(tmp_path):
    pkg = _new("reward", "my_score", tmp_path)
    assert {p.name for p in pkg.iterdir()} == {"pyproject.toml", "README.md", "src", "tests"}
    site = tmp_path / "site"
    res = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", site, pkg],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    res = _pytest(pkg, [site])
    assert res.returncode == 0, res.stdout + res.stderr
    assert " passed" in res.stdout and "failed" not in res.stdout
    # The installed plugin is what `vader` lists and trains with.
    env = {k: v for k, v in os.environ.items() if k != "VADER_PLUGINS"}
    env["PYTHONPATH"] = str(site)
    listed = subprocess.run(
        [sys.executable, "-m", "vader_core.cli", "plugins", "my_score"], capture_output=True, text=True, env=env
    )
    assert listed.returncode == 0 and "reward my_score (vader-my-score 0.1.0)" in listed.stdout, listed.stderr


def test_metric_package_passes_its_tests(tmp_path):
    pkg = _new("metric", "my_guard", tmp_path)
    _declare_installed(pkg, tmp_path / "site")
    res = _pytest(pkg, [tmp_path / "site", pkg / "src"])
    assert res.returncode == 0, res.stdout + res.stderr


def test_backbone_package_passes_its_tests(tmp_path):
    pkg = _new("backbone", "my_model", tmp_path)
    _declare_installed(pkg, tmp_path / "site")
    # The package contract, generation and the LoRA gradient (the whole file takes a minute on a CPU).
    selected = "TestPackage or generate_shape_range or gradient_reaches_lora_only"
    res = _pytest(pkg, [tmp_path / "site", pkg / "src"], "-k", selected)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "5 passed" in res.stdout, res.stdout


@pytest.mark.parametrize(
    "args,needle",
    [
        (["new", "reward", "My-Score"], "plugin name must be lower-case"),
        (["new", "sampler", "x"], "`vader new` makes a reward, metric, backbone"),
    ],
)
def test_bad_names_are_one_line(args, needle, tmp_path):
    rc, _, err = run_cli([*args, "--dir", tmp_path])
    assert rc == 2 and needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_existing_folder_is_never_overwritten(tmp_path):
    (tmp_path / "vader-x").mkdir()
    (tmp_path / "vader-x" / "keep.txt").write_text("mine")
    rc, _, err = run_cli(["new", "reward", "x", "--dir", tmp_path])
    assert rc == 2 and "already exists" in err
    assert [p.name for p in (tmp_path / "vader-x").iterdir()] == ["keep.txt"]
