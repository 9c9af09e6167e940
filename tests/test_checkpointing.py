"""The core's block checkpointing (vader_core.checkpointing) on modules that update list arguments in place."""

import torch

from vader_core.checkpointing import checkpointed_modules, gradient_only_in_calls


class _CausalConv(torch.nn.Module):
    """A causal temporal convolution that processes a clip chunk by chunk, as a causal VAE does: it reads the
    last frame of the previous chunk from ``cache[idx[0]]``, writes its own there and advances ``idx``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(3, 3, 2)
        self.calls = 0

    def forward(self, x: torch.Tensor, cache: list, idx: list) -> torch.Tensor:
        self.calls += 1
        prev = cache[idx[0]]
        cache[idx[0]] = x[..., -1:]
        idx[0] += 1
        x = torch.cat([prev if prev is not None else torch.zeros_like(x[..., :1]), x], -1)
        return torch.tanh(self.conv(x))


def _run(layers: list[_CausalConv], x: torch.Tensor, checkpointed: bool) -> tuple[torch.Tensor, list]:
    cache: list = [None] * len(layers)
    outs = []
    with checkpointed_modules(layers if checkpointed else []):
        for chunk in x.split(2, dim=-1):
            idx = [0]
            for layer in layers:
                chunk = layer(chunk, cache, idx)
            assert idx == [len(layers)]
            outs.append(chunk)
    return torch.cat(outs, -1), cache


def test_a_block_that_updates_its_cache_in_place_is_replayed_from_the_cache_at_its_call():
    torch.manual_seed(0)
    layers = [_CausalConv().double() for _ in range(3)]
    x = torch.randn(2, 3, 8, dtype=torch.double)
    results = {}
    for checkpointed in (False, True):
        for layer in layers:
            layer.calls = 0
            layer.zero_grad()
        xi = x.clone().requires_grad_(True)
        y, cache = _run(layers, xi, checkpointed)
        y.pow(2).sum().backward()
        results[checkpointed] = (y.detach(), xi.grad, [p.grad.clone() for layer in layers for p in layer.parameters()])
        # the caller's cache holds the last chunk's frames, with their history (a later chunk's gradient flows there)
        assert all(c is not None and c.requires_grad for c in cache)
        # 4 chunks; checkpointed, each layer runs once more per chunk in backward
        assert [layer.calls for layer in layers] == [8 if checkpointed else 4] * 3
    torch.testing.assert_close(results[True][0], results[False][0], rtol=0, atol=0)
    torch.testing.assert_close(results[True][1], results[False][1], rtol=0, atol=1e-12)
    for a, b in zip(results[True][2], results[False][2], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    # the gradient of the last chunk reaches the first through the caches
    assert results[True][1][..., :2].abs().sum() > 0


class _Chunked(torch.nn.Module):
    """A decoder that a VAE calls once per latent chunk, carrying a causal state from chunk to chunk."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(3, 3)

    def forward(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.tanh(self.lin(x) + state)
        return y, y.detach() if not torch.is_grad_enabled() else y


def _decode(dec: _Chunked, z: torch.Tensor, tiles: int) -> torch.Tensor:
    outs = []
    for tile in z.chunk(tiles, dim=0):  # a tiling VAE runs the whole chunk loop for each tile in turn
        state = torch.zeros(tile.shape[0], 3, dtype=z.dtype)
        row = []
        for t in range(z.shape[1]):
            y, state = dec(tile[:, t], state)
            row.append(y)
        outs.append(torch.stack(row, 1))
    return torch.cat(outs, 0)


def test_gradient_only_in_the_kept_calls_whatever_the_checkpointing_order():
    torch.manual_seed(0)
    dec = _Chunked().double()
    z = torch.randn(4, 5, 3, dtype=torch.double)
    keep = {4}

    def grads(order: str) -> tuple[torch.Tensor, torch.Tensor]:
        dec.zero_grad()
        zi = z.clone().requires_grad_(True)
        if order == "none":
            # the reference: earlier chunks detached by hand
            outs = []
            for tile in zi.chunk(2, dim=0):
                state = torch.zeros(tile.shape[0], 3, dtype=z.dtype)
                for t in range(z.shape[1]):
                    with torch.set_grad_enabled(t in keep):
                        y, state = dec(tile[:, t], state)
                outs.append(y)
            out = torch.cat(outs, 0)
        else:
            outer, inner = (
                (checkpointed_modules([dec]), gradient_only_in_calls(dec, keep, z.shape[1]))
                if order == "checkpoint outside"
                else (gradient_only_in_calls(dec, keep, z.shape[1]), checkpointed_modules([dec]))
            )
            with outer, inner:
                decoded = _decode(dec, zi, tiles=2)
            out = decoded[:, -1]
        out.pow(2).sum().backward()
        assert "forward" not in dec.__dict__ and not dec._forward_hooks and not dec._forward_pre_hooks  # all removed
        assert torch.is_grad_enabled()
        return zi.grad, dec.lin.weight.grad.clone()

    ref = grads("none")
    assert ref[0][:, :4].abs().sum() == 0 and ref[0][:, 4].abs().sum() > 0
    for order in ("checkpoint outside", "checkpoint inside"):
        got = grads(order)
        torch.testing.assert_close(got[0], ref[0], rtol=0, atol=1e-12)
        torch.testing.assert_close(got[1], ref[1], rtol=0, atol=1e-12)
