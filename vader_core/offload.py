"""Frozen models off the accelerator between uses.

A text or image encoder runs once per batch, before the denoising chain, and never in backward; on a
GPU its weights (0.34B parameters for ModelScope's CLIP text tower, 0.63B for SVD's CLIP image
encoder) would otherwise sit in memory through the whole step. With offloading
(``memory.offload_encoders``) the encoders named by
:meth:`~vader_core.backbone.BackbonePlugin.condition_encoders` are kept on the CPU and moved to the
run's device only for the duration of each ``encode_condition`` call.

:class:`ModuleOffload` is the mechanism, for any frozen model: a reward model in the backward path
(``fetch`` before its forward, :meth:`ModuleOffload.release_after_backward` once the gradient has
gone through it) uses it too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .lazy import torch

if TYPE_CHECKING:  # pragma: no cover
    from .backbone import BackbonePlugin
    from .config import MemorySection


def offload_enabled(memory: MemorySection, device: torch.device | str) -> bool:
    """``memory.offload_encoders``, where null means: on for a CUDA device, off elsewhere."""
    if memory.offload_encoders is not None:
        return bool(memory.offload_encoders)
    return torch.device(device).type == "cuda"


class ModuleOffload:
    """Keeps frozen ``modules`` on ``store`` and brings them to ``device`` for each use.

    Args:
        modules (`Iterable[torch.nn.Module]`): the modules moved together.
        device (`torch.device` or `str`): where they run.
        store (`torch.device` or `str`, *optional*, defaults to `"cpu"`): where they wait.
    """

    def __init__(self, modules: Iterable[Any], device: Any, store: Any = "cpu") -> None:
        self.modules = list(modules)
        self.device, self.store = torch.device(device), torch.device(store)

    def move(self, where: torch.device) -> None:
        """Every module to ``where``."""
        for m in self.modules:
            m.to(where)

    def fetch(self) -> None:
        """The modules to ``device``, for a use."""
        self.move(self.device)

    def release(self) -> None:
        """The modules back to ``store``."""
        self.move(self.store)

    def release_after_backward(self, inputs: torch.Tensor, output: torch.Tensor) -> None:
        """Release once the gradient of ``output`` has reached ``inputs`` (the modules' backward is then
        done: every operation between them has run); at once when no backward will come.

        Backward runs the modules again when they recompute checkpointed layers, so they stay on ``device``
        until then. A graph never run backward leaves them there until the next :meth:`release`.
        """
        if not (torch.is_grad_enabled() and inputs.requires_grad and output.requires_grad):
            self.release()
            return
        handle: list[Any] = []

        def released(grad: torch.Tensor) -> None:
            handle.pop().remove()
            self.release()

        handle.append(inputs.register_hook(released))


class EncoderOffload:
    """Keeps ``backbone``'s condition encoders on ``store`` and brings them to ``device`` only while
    ``backbone.encode_condition`` runs.

    Args:
        backbone (`BackbonePlugin`): a loaded backbone.
        device (`torch.device` or `str`): where the encoders run (the run's device).
        store (`torch.device` or `str`, *optional*, defaults to `"cpu"`): where they wait.
    """

    def __init__(self, backbone: BackbonePlugin, device: Any, store: Any = "cpu") -> None:
        self.backbone = backbone
        self.device, self.store = torch.device(device), torch.device(store)
        self.encoders = dict(backbone.condition_encoders())
        self.offload = ModuleOffload(self.encoders.values(), device, store)
        self._original: Callable[..., Any] | None = None

    def _move(self, where: torch.device) -> None:
        self.offload.move(where)

    def install(self) -> EncoderOffload:
        """Move the encoders to ``store`` and wrap ``encode_condition``; returns ``self``."""
        if self._original is not None or not self.encoders:
            return self
        original = self.backbone.encode_condition
        self._move(self.store)

        @functools.wraps(original)
        def encode_condition(*args: Any, **kwargs: Any) -> Any:
            self._move(self.device)
            try:
                return original(*args, **kwargs)
            finally:
                self._move(self.store)

        self._original = original
        self.backbone.encode_condition = encode_condition  # type: ignore[method-assign]
        return self

    def remove(self) -> None:
        """Undo :meth:`install`: the encoders back on ``device``, ``encode_condition`` unwrapped."""
        if self._original is None:
            return
        del self.backbone.encode_condition
        self._original = None
        self._move(self.device)


def offload_encoders(backbone: BackbonePlugin, memory: MemorySection, device: Any) -> EncoderOffload | None:
    """Install :class:`EncoderOffload` when :func:`offload_enabled` says so; returns it (or ``None``)."""
    if not offload_enabled(memory, device) or not backbone.condition_encoders():
        return None
    return EncoderOffload(backbone, device).install()
