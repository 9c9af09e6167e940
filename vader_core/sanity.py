"""Deprecated: the checks of a configuration as a whole moved (kept for one release).

``check_resolved`` is :func:`vader_core.resolve.check_resolved`, ``check_finite`` is
:func:`vader_core.config.check_finite` and ``warn`` is :func:`vader_core.errors.warn`.
"""

from __future__ import annotations

import warnings

from .config import check_finite
from .errors import log, warn
from .resolve import check_resolved

warnings.warn(
    "`vader_core.sanity` is deprecated: use `vader_core.errors.warn`, `vader_core.config.check_finite` "
    "and `vader_core.resolve.check_resolved`",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["check_finite", "check_resolved", "log", "warn"]
