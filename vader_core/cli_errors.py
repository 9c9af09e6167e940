"""One line for every error the ``vader`` command can meet outside :class:`~vader_core.errors.VaderError`:
usage errors (typer raises its own vendored click exceptions, plain click ones are handled alike) and
weight files a loader refused to unpickle."""

from __future__ import annotations

import difflib
import logging
import pickle
import re
import sys
from collections.abc import Iterable
from typing import Any


def _usage_classes() -> tuple[tuple[type, ...], tuple[type, ...], tuple[type, ...]]:
    """(usage errors, aborts, exits) of click and of typer's vendored copy."""
    import click

    usage: list[type] = [click.ClickException]
    aborts: list[type] = [click.exceptions.Abort]
    exits: list[type] = [click.exceptions.Exit]
    try:
        from typer import exceptions as texc

        usage.append(texc.TyperException)
        aborts.append(texc.Abort)
        exits.append(texc.Exit)
    except ImportError:  # pragma: no cover - older typer uses click's classes
        pass
    return tuple(usage), tuple(aborts), tuple(exits)


def classify(exc: BaseException) -> str | None:
    """``"usage"``, ``"abort"``, ``"exit"`` or ``None`` for an exception the CLI does not know."""
    usage, aborts, exits = _usage_classes()
    if isinstance(exc, exits):
        return "exit"
    if isinstance(exc, aborts):
        return "abort"
    if isinstance(exc, usage):
        return "usage"
    return None


def _command_path(exc: BaseException) -> str:
    """``vader`` or ``vader train``: the command the error is about, however vader was started."""
    ctx = getattr(exc, "ctx", None)
    names: list[str] = []
    while ctx is not None and getattr(ctx, "parent", None) is not None:
        names.insert(0, str(ctx.info_name))
        ctx = ctx.parent
    return " ".join(["vader", *names])


def _commands(exc: BaseException) -> list[str]:
    ctx = getattr(exc, "ctx", None)
    cmd = getattr(ctx, "command", None)
    names = getattr(cmd, "commands", None)
    return sorted(names) if isinstance(names, dict) else []


def usage_line(exc: BaseException) -> str:
    """The one line shown for a usage error: the problem, a suggestion where one exists, where help is."""
    name = type(exc).__name__
    raw = getattr(exc, "message", None) or str(exc)
    if name != "NoSuchOption" and hasattr(exc, "format_message"):
        raw = exc.format_message()
    msg = " ".join(str(raw).split()).rstrip(".")
    hint = ""
    possibilities: Iterable[str] | None = getattr(exc, "possibilities", None)
    if name == "NoSuchOption" and possibilities:
        hint = "did you mean " + " or ".join(f"`{p}`" for p in sorted(possibilities)) + "?"
    m = re.match(r"No such command ['\"](.+?)['\"]", msg)
    if m:
        msg = f"no such command `{m.group(1)}`"
        close = difflib.get_close_matches(m.group(1), _commands(exc), n=2, cutoff=0.5)
        if close:
            hint = "did you mean " + " or ".join(f"`vader {c}`" for c in close) + "?"
    return f"{msg}; " + (f"{hint} " if hint else "") + f"see `{_command_path(exc)} --help`"


def refused_pickle(exc: BaseException) -> str | None:
    """One line when ``exc`` (or an exception it was raised from) is torch refusing to unpickle code
    (``weights_only=True``) in a weights file a library loader read; None otherwise."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, pickle.UnpicklingError) and "weights only" in str(e).lower():
            detail = ""
            m = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
            if m:
                detail = f" (it calls `{m.group(1)}`)"
            return (
                f"a weights file holds Python objects besides tensors{detail} and was not unpickled: only plain "
                "tensors are read from files; use the model's safetensors files, or convert a file you trust"
            )
        e = e.__cause__ or e.__context__
    return None


def suggest(word: str, choices: Iterable[str]) -> str:
    """``; did you mean `x`?`` for the closest of ``choices``, or an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean `{close[0]}`?" if close else ""


class _StderrLines(logging.Handler):
    """Writes ``warning: message`` lines to whatever ``sys.stderr`` is at the time."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = " ".join(record.getMessage().split())
            sys.stderr.write(f"{record.levelname.lower()}: {msg}\n")
        except Exception:  # noqa: BLE001 - a warning must never break a run
            pass


def install_warning_lines() -> None:
    """Print the ``vader`` logger's warnings as one line each on stderr (once per process)."""
    log = logging.getLogger("vader")
    if not any(isinstance(h, _StderrLines) for h in log.handlers):
        log.addHandler(_StderrLines(level=logging.WARNING))
    log.setLevel(logging.WARNING)


#: Backbone options ``--random-weights`` makes small unless the user set them (smoke tests, not results).
SMOKE_SIZES = {"height": 64, "width": 64, "frames": 4, "steps": 4}


def _first_valid(options: Any, key: str, value: int, step: int, default: int) -> int:
    """``value``, or the next larger one (by ``step``, at most 16 tries, never past ``default``) that the
    backbone's own validators accept: Wan takes 4k+1 frames only, so a 4-frame smoke run becomes 5."""
    from pydantic import ValidationError

    for v in range(value, min(default, value + 16 * step) + 1, step):
        try:
            options.__pydantic_validator__.validate_assignment(options.model_construct(), key, v)
            return v
        except ValidationError:
            continue
    return value


def random_weight_sets(backbone: str | None, config_file: Any, sets: list[str]) -> list[str]:
    """``--set backbone.X=V`` for each of :data:`SMOKE_SIZES` the user did not set, never above the
    backbone's own default (the tiny models are smaller still), and ``optim.grad_accum=1`` unless set."""
    from .config import build_config, load_config_file
    from .resolve import backbone_class

    user: set[str] = set()
    if config_file:
        section = load_config_file(config_file).get("backbone") or {}
        if isinstance(section, dict):
            user |= set(section)
        if "steps" in (load_config_file(config_file).get("sampling") or {}):
            user.add("steps")
    for s in sets:
        key = s.split("=", 1)[0].strip()
        if key.startswith("backbone."):
            user.add(key.split(".", 1)[1])
        if key == "sampling.steps":
            user.add("steps")
    out = []
    # A smoke run steps once per micro-batch: the default accumulation of 8 makes a tiny step take seconds.
    if "optim.grad_accum" not in {s.split("=", 1)[0].strip() for s in sets} and not (
        config_file and "grad_accum" in (load_config_file(config_file).get("optim") or {})
    ):
        out.append("optim.grad_accum=1")
    name = backbone or build_config(config_file, [], {}).backbone.name
    try:
        cls = backbone_class(name)
    except Exception:  # noqa: BLE001 - the real error comes later, from the config
        return out
    fields = cls.Options.model_fields
    for k, small in SMOKE_SIZES.items():
        if k in user or k not in fields:
            continue
        default = fields[k].default
        if isinstance(default, int) and default > small:
            m = int(getattr(cls, "size_multiple", 1) or 1)
            v = small if k in ("frames", "steps") else max(m, (small // m) * m)
            v = _first_valid(cls.Options, k, v, m if k in ("height", "width") else 1, default)
            out.append(f"backbone.{k}={v}")
    return out
