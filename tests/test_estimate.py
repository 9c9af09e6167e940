"""``vader_core.estimate``: the saved-tensor counter behind the backbones' memory estimates."""

import torch
import torch.nn.functional as F

from vader_core.estimate import GIB, saved_gib


def _bytes(*shapes, dtype=torch.float32):
    return sum(torch.Size(s).numel() for s in shapes) * torch.empty((), dtype=dtype).element_size()


def test_weights_and_their_views_are_not_activations():
    lin = torch.nn.Linear(64, 32)
    x = torch.randn(8, 64, requires_grad=True)
    total, _ = saved_gib(lambda: lin(x))
    # Linear saves its input and (a transposed view of) its weight: only the input counts.
    assert total * GIB == _bytes((8, 64))


def test_a_storage_saved_twice_counts_once():
    x = torch.randn(16, 16, requires_grad=True)
    total, _ = saved_gib(lambda: (x * x).sum() + (x.sin() * x.t()).sum())
    # x (and its view x.t()) once, plus x.sin() kept for the product.
    assert total * GIB == _bytes((16, 16), (16, 16))


def test_attention_is_counted_as_a_flash_kernel_keeps_it():
    b, h, n, d = 1, 2, 256, 8
    q, k, v = (torch.randn(b, h, n, d, requires_grad=True) for _ in range(3))
    total, _ = saved_gib(lambda: F.scaled_dot_product_attention(q, k, v))
    # q, k, v, the output and a float32 log-sum-exp per query; not the n x n attention matrix.
    assert total * GIB == _bytes((b, h, n, d), (b, h, n, d), (b, h, n, d), (b, h, n, d), (b, h, n))
    assert total * GIB < _bytes((b, h, n, n))
    # The real kernel is restored afterwards.
    assert F.scaled_dot_product_attention is torch._C._nn.scaled_dot_product_attention


def test_largest_layer_and_meta_device():
    with torch.device("meta"):
        net = torch.nn.Sequential(torch.nn.Linear(32, 256), torch.nn.GELU(), torch.nn.Linear(256, 8))
        x = torch.randn(4, 32, requires_grad=True)
        total, largest = saved_gib(lambda: net(x), layers=list(net))
    # Input of the first Linear, the GELU's input, the second Linear's input (the GELU output).
    assert total * GIB == _bytes((4, 32), (4, 256), (4, 256))
    # The GELU saves its input (4, 256); the second Linear its own input (4, 256) too.
    assert largest * GIB == _bytes((4, 256))


def test_peak_with_reward_counts_its_weights_where_they_are():
    from vader_core.estimate import peak_with_reward

    # the decoding phase holds the reward: decoder + reward weights + its activations
    assert peak_with_reward(3, denoise=4, decode=5, reward_weights=15, reward=1) == 3 + 21
    # a denoiser-bound step: the reward's weights add to it unless offloaded
    assert peak_with_reward(30, denoise=70, decode=5, reward_weights=15, reward=1) == 30 + 85
    assert peak_with_reward(30, denoise=70, decode=5, reward_weights=15, reward=1, offload=True) == 30 + 70


def test_live_peak_counts_what_is_alive_at_once_not_what_was_made():
    from vader_core.estimate import live_peak_gib

    lin = torch.nn.Linear(64, 64)
    x = torch.randn(8, 64)

    def chain():
        h = x
        for _ in range(5):  # a step's input, the layer's output and the activation's: the older ones are freed
            h = torch.relu(lin(h))

    with torch.no_grad():
        peak = live_peak_gib(chain) * GIB
    assert peak == 3 * _bytes((8, 64))  # the weights, their views and the input existed before: not counted
    kept = []
    with torch.no_grad():
        peak = live_peak_gib(lambda: kept.extend(torch.relu(lin(x)) for _ in range(5)))
    assert peak * GIB == 6 * _bytes((8, 64))  # the 5 kept, and the last layer output beside them


def test_live_peak_holds_saved_activations_and_transients_and_flash_like_attention():
    from vader_core.estimate import live_peak_gib

    w = torch.nn.Parameter(torch.randn(32, 32))
    x = torch.randn(4, 32, requires_grad=True)
    saved, _ = saved_gib(lambda: (x @ w).tanh().sum())
    live = live_peak_gib(lambda: (x @ w).tanh().sum())
    # what autograd saves (the tanh output; x existed before) is alive, plus the product it came from
    assert saved * GIB == _bytes((4, 32), (4, 32)) and live * GIB >= _bytes((4, 32), (4, 32))
    b, h, n, d = 1, 2, 256, 8
    with torch.device("meta"):
        q, k, v = (torch.randn(b, h, n, d) for _ in range(3))
        with torch.no_grad():
            peak = live_peak_gib(lambda: F.scaled_dot_product_attention(q, k, v))
    assert peak * GIB == _bytes((b, h, n, d))  # the output only: a flash kernel makes no n x n matrix
