"""Activation memory of a model call, counted without a GPU (for the backbones' memory estimates).

Build the real architecture on the ``meta`` device (no weights allocated, no arithmetic) and run one
call under :func:`saved_gib`: autograd still records every tensor it would keep for backward, and
summing their bytes gives the activation memory that call holds until backward.

What is counted, so that the figure is what a GPU would hold:

* attention (``torch.nn.functional.scaled_dot_product_attention``) as the flash and memory-efficient
  kernels of GPUs keep it (query, key, value, output and the float32 log-sum-exp per query), not as the
  math kernel the meta device traces, which keeps the attention matrix;
* weights, and views of them (transposes, broadcasts) that autograd saves, are left out: they are
  counted once, with the weights;
* a storage saved by several operations (or through several views) is counted once.

The CUDA allocator, kernel workspaces and fragmentation add to these figures: they are estimates, not
measurements.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Sequence

from .lazy import torch

GIB = 2**30

_IN_SDPA = [False]


class SavedTensors:
    """Bytes of the tensors autograd saves while installed as a saved-tensor hook (see :meth:`counting`)."""

    def __init__(self) -> None:
        self.total = 0
        self._seen: dict[int, Any] = {}

    def pack(self, t: "torch.Tensor") -> "torch.Tensor":
        base = t if t._base is None else t._base
        if not _IN_SDPA[0] and not isinstance(base, torch.nn.Parameter) and id(base) not in self._seen:
            self._seen[id(base)] = base  # kept alive so that its id is not reused
            self.total += base.untyped_storage().nbytes()
        return t

    @contextlib.contextmanager
    def counting(self) -> Iterator["SavedTensors"]:
        """Count what autograd saves inside the block, with attention counted as flash kernels keep it."""
        with flash_attention_accounting(), torch.autograd.graph.saved_tensors_hooks(self.pack, lambda t: t):
            yield self


def _keep_like_flash() -> type:
    class KeepLikeFlash(torch.autograd.Function):
        """Identity that saves what a flash / memory-efficient attention kernel saves, through whichever
        saved-tensor hooks are active (inside a checkpointed block, the checkpoint's own: then nothing
        is counted, as on a GPU)."""

        @staticmethod
        def forward(ctx: Any, out: Any, q: Any, k: Any, v: Any) -> Any:
            lse = torch.empty(out.shape[:-1], dtype=torch.float32, device=out.device)
            ctx.save_for_backward(q, k, v, out, lse)
            return out.view_as(out)

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            return grad, None, None, None

    return KeepLikeFlash


@contextlib.contextmanager
def flash_attention_accounting() -> Iterator[None]:
    """Within the block, ``scaled_dot_product_attention`` saves for backward what GPUs' flash kernels save."""
    import torch.nn.functional as F

    sdpa = F.scaled_dot_product_attention
    keep = _keep_like_flash()

    def flash_like(*args: Any, **kwargs: Any) -> Any:
        _IN_SDPA[0] = True
        try:
            out = sdpa(*args, **kwargs)
        finally:
            _IN_SDPA[0] = False
        # Query, key and value come positionally or by name (diffusers' attention dispatcher names them).
        qkv = list(args[:3]) + [kwargs[n] for n in ("query", "key", "value")[len(args[:3]):]]
        return keep.apply(out, *qkv) if torch.is_grad_enabled() else out

    F.scaled_dot_product_attention = flash_like
    try:
        yield
    finally:
        F.scaled_dot_product_attention = sdpa


def saved_gib(fn: Callable[[], object], layers: Sequence["torch.nn.Module"] = ()) -> tuple[float, float]:
    """GiB autograd saves while ``fn`` runs, and the most that any single one of ``layers`` saves.

    The second figure is what recomputing one checkpointed block in backward needs on top of the
    stored inputs of all blocks.

    Args:
        fn (`Callable[[], object]`): the call to measure, e.g. ``lambda: unet(x, t, emb).sample``.
        layers (`Sequence[torch.nn.Module]`, *optional*): modules to measure one by one (forward hooks).

    Returns:
        `tuple[float, float]`: ``(total, largest layer)`` in GiB.
    """
    saved, largest, start = SavedTensors(), [0], {}

    def pre(module: Any, args: Any) -> None:
        start[id(module)] = saved.total

    def post(module: Any, args: Any, out: Any) -> None:
        largest[0] = max(largest[0], saved.total - start[id(module)])

    handles = [h for m in layers for h in (m.register_forward_pre_hook(pre), m.register_forward_hook(post))]
    try:
        with saved.counting():
            fn()
    finally:
        for h in handles:
            h.remove()
    return saved.total / GIB, largest[0] / GIB
