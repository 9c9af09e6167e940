"""The habits of a maintained project, checked with every test run: ruff's lint and format on the whole
repository, and mypy on the core (settings for both in pyproject.toml). mypy keeps its cache in
``.mypy_cache``: the first run reads torch's annotations (about a minute), later runs take seconds."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True)


def test_ruff_lint_is_clean():
    r = _ruff("check", "--no-cache", ".")
    assert r.returncode == 0, (
        f"`ruff check .` found problems (fix them, or `ruff check --fix .`):\n{r.stdout}{r.stderr}"
    )


def test_ruff_format_is_clean():
    r = _ruff("format", "--check", "--no-cache", ".")
    assert r.returncode == 0, f"files not formatted (run `ruff format .`):\n{r.stdout}{r.stderr}"


def test_mypy_is_clean():
    r = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, f"`mypy` (files and settings in pyproject.toml) found problems:\n{r.stdout}{r.stderr}"
