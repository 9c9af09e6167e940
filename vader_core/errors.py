"""One exception family for everything a user can fix, and one kind of warning line.

The CLI catches :class:`VaderError` and prints its message on one line (no traceback unless
``--debug``), exiting with :attr:`VaderError.exit_code`. :func:`warn` goes to the ``vader`` logger; the
CLI prints each warning as one ``warning:`` line on stderr.
"""

from __future__ import annotations

import logging

log = logging.getLogger("vader")


def warn(message: str) -> None:
    """One warning line (``warning: message`` on the CLI's stderr)."""
    log.warning(message)


class VaderError(Exception):
    """Base class of errors a user can act on. The message must say what to do."""

    exit_code: int = 2


class PluginNotFoundError(VaderError):
    """A backbone, reward or method name that no installed plugin provides."""


class PluginConflictError(VaderError):
    """Two plugins registered the same name."""


class PluginContractError(VaderError):
    """A plugin broke its contract at run time (an output of the wrong shape, not finite, detached from the
    frames); the message names the plugin and what it returned."""


class ConfigError(VaderError):
    """A configuration value is invalid."""


class MissingWeightsError(VaderError):
    """Pretrained weights are not available locally and cannot be downloaded."""


class MissingDependencyError(VaderError):
    """An optional dependency is not installed."""


class CheckpointError(VaderError):
    """A checkpoint is missing, incomplete or corrupt."""


class MediaError(VaderError):
    """A video or image file cannot be read or written."""


class NonFiniteLossError(VaderError):
    """Too many consecutive non-finite losses; the run stopped."""

    exit_code = 3


class InterruptedRun(VaderError):
    """The user pressed Ctrl-C; a checkpoint was written."""

    exit_code = 130
