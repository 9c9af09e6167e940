"""Deferred imports for plugin modules that must import instantly.

``from vader_core.lazy import torch`` gives an object that imports torch on first attribute
access. Plugin modules use it so that ``vader plugins`` never pays for torch.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any


class LazyModule(ModuleType):
    """A module proxy that imports ``name`` the first time an attribute is read."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.__dict__["_lazy_name"] = name
        self.__dict__["_lazy_module"] = None

    def _load(self) -> ModuleType:
        module = self.__dict__["_lazy_module"]
        if module is None:
            module = importlib.import_module(self.__dict__["_lazy_name"])
            self.__dict__["_lazy_module"] = module
        return module

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._load(), attr)

    def __dir__(self) -> list[str]:
        return dir(self._load())


if TYPE_CHECKING:
    # The type checker sees the real modules, so code written against the proxies is checked against
    # torch's and numpy's own annotations.
    import numpy as np
    import torch
    import torch.nn.functional as F
else:
    torch = LazyModule("torch")
    F = LazyModule("torch.nn.functional")
    np = LazyModule("numpy")
