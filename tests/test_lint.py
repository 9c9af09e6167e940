"""The habits of a maintained project, checked with every test run: ruff's lint and format (settings in
pyproject.toml) on the whole repository."""

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
