"""What a run does under faults: preemption signals and output directories that cannot hold a run.

* SIGTERM (what SLURM, Kubernetes and spot preemption send) and SIGUSR1 (what SLURM can send ahead
  of time with ``--signal``) are handled like Ctrl-C: the current step is abandoned, the last
  completed step is saved, one line is printed and the process exits with ``128 + signal number``.
* :func:`check_output_dir` runs before any model loads, so a directory that is a file, lies under a
  file, cannot be written, or holds an earlier run that would be overwritten fails in one line
  without the wait.

See docs/faults.md for the whole list of promises and the tests behind them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from .errors import CheckpointError, ConfigError

#: The signals a run treats like Ctrl-C.
PREEMPTION_SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGUSR1", None)) if s)


class Preempted(KeyboardInterrupt):
    """Raised in the main thread when a preemption signal arrives (a KeyboardInterrupt, so every
    ``except KeyboardInterrupt`` that saves work also saves it for SIGTERM)."""

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        self.signame = signal.Signals(signum).name
        super().__init__(self.signame)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextlib.contextmanager
def preemption_signals(defer: bool = False) -> Iterator[list[int]]:
    """Within the block, SIGTERM/SIGUSR1 raise :class:`Preempted` (main thread only; elsewhere a no-op).

    With ``defer`` (a run of several processes) a signal is only recorded in the list the block gets: the
    processes stop together at a step boundary once one of them has it, since a process that left in the
    middle of a collective would leave the others waiting."""
    got: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield got
        return

    def handler(signum: int, frame: object) -> None:
        if defer:
            got.append(signum)
            return
        raise Preempted(signum)

    old = {s: signal.signal(s, handler) for s in PREEMPTION_SIGNALS}
    try:
        yield got
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextlib.contextmanager
def deferred_signals() -> Iterator[list[int]]:
    """Within the block (the save after an interruption), preemption signals and Ctrl-C are recorded,
    not raised, so a second signal cannot break the checkpoint being written."""
    got: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield got
        return
    sigs = (*PREEMPTION_SIGNALS, signal.SIGINT)
    old = {s: signal.signal(s, lambda signum, frame: got.append(signum)) for s in sigs}
    try:
        yield got
    finally:
        for s, h in old.items():
            signal.signal(s, h)


#: Files an earlier run leaves in its output directory (kept safe from a new run).
RUN_FILES = ("metrics.jsonl", "validation.jsonl", "summary.json")


def _probe_writable(directory: Path) -> None:
    """Create ``directory`` if needed and write and remove a file in it; raises ``OSError`` where that fails."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(prefix=".vader-write-test-", dir=directory)
    os.close(fd)
    os.unlink(probe)


def check_writable_dir(path: str | Path, option: str) -> Path:
    """Create the directory ``path`` if needed; one line (:class:`ConfigError`) if it is a file, lies under
    a file or cannot be written. ``option`` names the flag in the message."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{option} {p} is a file; give a directory (a new or an earlier run's one)")
    for parent in p.parents:
        if parent.exists() and not parent.is_dir():
            raise ConfigError(f"{option} {p} lies under {parent}, which is a file; give a directory path")
        if parent.exists():
            break
    try:
        _probe_writable(p)
    except OSError as e:
        raise ConfigError(
            f"{option} {p} is not writable ({e.strerror or type(e).__name__}); pick a directory you can write"
        ) from None
    return p


def check_eval_dir(out: str | Path) -> Path:
    """``vader eval --out``: writable, and not holding an earlier evaluation (which it would overwrite)."""
    p = check_writable_dir(out, "--out")
    if (p / "eval.json").is_file():
        raise ConfigError(
            f"--out {p} holds an earlier evaluation (eval.json); pick another --out, or delete "
            "that folder to evaluate again there"
        )
    return p


def check_output_dir(out: str | Path, resume: str | None, overwrite: bool = False) -> Path:
    """Fail in one line, before any model loads, if ``out`` cannot hold this run.

    Creates ``out`` if needed. Raises :class:`ConfigError` for a path that is a file, lies under a
    file or is not writable, and :class:`CheckpointError` for a new run (no ``resume``) into a
    directory holding an earlier run's checkpoints or, without a complete checkpoint and without
    ``overwrite``, its metrics. ``overwrite`` never deletes a checkpoint: a folder holding one is refused.
    """
    from .checkpoint import list_checkpoints

    if overwrite and resume:
        raise ConfigError("--overwrite starts a run over and --resume continues one; give one of them")
    p = check_writable_dir(out, "--output-dir")
    if resume:
        return p
    existing = list_checkpoints(p / "checkpoints")
    if existing:
        keep = " (--overwrite never deletes checkpoints: delete that folder yourself to start over there)"
        raise CheckpointError(
            f"{p} already holds checkpoints (up to {existing[-1].name}); continue with "
            "--resume latest, or pick another --output-dir" + (keep if overwrite else "")
        )
    earlier = [n for n in RUN_FILES if (p / n).is_file() and (p / n).stat().st_size > 0]
    if earlier and not overwrite:
        raise CheckpointError(
            f"{p} holds an earlier run's {', '.join(earlier)} but no complete checkpoint (a run that crashed?); "
            "start over there with --overwrite, or pick another --output-dir"
        )
    return p


#: What a run writes in its folder besides checkpoints: what ``--overwrite`` removes.
OVERWRITTEN = (*RUN_FILES, "config.yaml", "reward_curve.png", "best", "samples")


def clear_earlier_run(out: Path) -> list[str]:
    """Remove an earlier run's records, samples and best LoRA from ``out`` (never ``checkpoints/``, never a file
    vader does not write); returns the names removed."""
    import shutil

    removed = []
    for name in OVERWRITTEN:
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
        else:
            continue
        removed.append(name + ("/" if name in ("best", "samples") else ""))
    return removed


def check_output_file(path: str | Path, option: str) -> Path:
    """Fail in one line, before any model loads, if the file ``path`` cannot be written."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{option} {p} is a directory; give a file name, e.g. {p / 'video.mp4'}")
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{option} {p} lies under {parent}, which is a file; give another path")
            break
    try:
        _probe_writable(p.parent)
    except OSError as e:
        raise ConfigError(
            f"{option} {p}: cannot write to {p.parent} ({e.strerror or type(e).__name__}); pick a writable place"
        ) from None
    return p


def check_inputs(config: object, conditioning: str) -> None:
    """The files a run reads (images, prompt file), checked before any model loads."""
    train = config.train  # type: ignore[attr-defined]
    if "image" in conditioning:
        if train.images and not Path(train.images).exists():
            raise ConfigError(
                f"`train.images`: no such folder or file: {train.images}; give a folder of images "
                "or a text file listing image paths"
            )
        return
    if not train.prompts and train.prompt_file:
        p = Path(train.prompt_file)
        if not p.is_file():
            raise ConfigError(
                f"prompt file not found: {p}; give a text file with one prompt per line "
                "(`train.prompt_file`), or prompts with `train.prompts`"
            )
