import random

import pytest
import torch
from pydantic import ValidationError

from vader_core.config import MemorySection, TruncationSection
from vader_core.lora import add_lora
from vader_core.sampling import kept_steps, sample_with_grad, select_frames
from vader_plugins.tiny import TinyBackbone


@pytest.fixture(scope="module")
def backbone():
    bb = TinyBackbone(TinyBackbone.Options(frames=4, steps=5))
    bb.load("cpu", torch.float32)
    add_lora(bb.denoiser, 4, 4, 0.0, bb.default_lora_targets)
    for n, p in bb.denoiser.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.05)
    return bb


class _Spy:
    """Counts denoiser calls that run with autograd and frames the VAE decodes."""

    def __init__(self, bb, monkeypatch):
        self.grad_calls, self.nograd_calls, self.decoded = [], [], []
        orig_predict, orig_decode = bb.predict, bb.components["vae"].decode

        def predict(latents, t, cond, i):
            (self.grad_calls if torch.is_grad_enabled() else self.nograd_calls).append(i)
            return orig_predict(latents, t, cond, i)

        def decode(z, *a, **k):
            self.decoded.append(z.shape[0])
            return orig_decode(z, *a, **k)

        monkeypatch.setattr(bb, "predict", predict)
        monkeypatch.setattr(bb.components["vae"], "decode", decode)


def _run(bb, trunc, memory=None, seed=0):
    cond = bb.encode_condition(["a cat"], None)
    return sample_with_grad(
        bb,
        cond,
        1,
        torch.Generator().manual_seed(seed),
        random.Random(seed),
        trunc,
        memory or MemorySection(gradient_checkpointing=False, decoded_frames=1),
    )


@pytest.mark.parametrize(
    "trunc",
    [
        TruncationSection(mode="last", k=1),
        TruncationSection(mode="last", k=3),
        TruncationSection(mode="rand", k=2),
        TruncationSection(mode="specific", steps=[1, 3]),
    ],
)
def test_truncation_keeps_exactly_k_steps(backbone, monkeypatch, trunc):
    spy = _Spy(backbone, monkeypatch)
    video, kept, _ = _run(backbone, trunc)
    k = len(trunc.steps) if trunc.mode == "specific" else trunc.k
    assert len(kept) == k and sorted(spy.grad_calls) == kept
    assert len(spy.grad_calls) + len(spy.nograd_calls) == 5
    if trunc.mode == "last":
        assert kept == list(range(5 - k, 5))
    video.mean().backward()
    assert any(p.grad is not None for n, p in backbone.denoiser.named_parameters() if "lora_" in n)
    backbone.denoiser.zero_grad(set_to_none=True)


def test_rand_mode_varies_start():
    starts = {kept_steps(25, TruncationSection(mode="rand", k=2), random.Random(s))[0] for s in range(30)}
    assert len(starts) > 5 and max(starts) <= 23


def test_checkpointing_calls_twice_but_same_gradient(backbone, monkeypatch):
    grads = []
    for ckpt in (False, True):
        spy = _Spy(backbone, monkeypatch)
        video, kept, _ = _run(
            backbone,
            TruncationSection(mode="last", k=2),
            MemorySection(gradient_checkpointing=ckpt, decoded_frames=2, frame_selection="uniform"),
        )
        video.mean().backward()
        grads.append([p.grad.clone() for n, p in backbone.denoiser.named_parameters() if "lora_" in n])
        backbone.denoiser.zero_grad(set_to_none=True)
        assert len(spy.grad_calls) == (4 if ckpt else 2)  # recomputed in backward
        monkeypatch.undo()
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("count", [1, 2, None])
def test_frame_subsampling_decodes_only_chosen_frames(backbone, monkeypatch, count):
    spy = _Spy(backbone, monkeypatch)
    video, _, frames = _run(
        backbone, TruncationSection(mode="last", k=1), MemorySection(gradient_checkpointing=False, decoded_frames=count)
    )
    n = 4 if count is None else count
    assert video.shape[1] == n and len(frames) == n and spy.decoded == [n]


def test_select_frames():
    assert select_frames(8, None, "random", random.Random(0)) == list(range(8))
    assert select_frames(8, 3, "uniform", random.Random(0)) == [0, 4, 7]
    r = select_frames(8, 3, "random", random.Random(0))
    assert len(set(r)) == 3 and r == sorted(r)


def test_frame_window_draws_among_the_first_frames_only():
    """memory.frame_window: every draw lies in the window; without one the draws are what they were."""
    seen = set()
    for seed in range(50):
        seen.update(select_frames(81, 1, "random", random.Random(seed), window=9))
    assert seen == set(range(9))
    assert select_frames(81, 3, "uniform", random.Random(0), window=9) == [0, 4, 8]
    assert select_frames(81, 12, "random", random.Random(0), window=9) == list(range(9))
    assert select_frames(81, None, "random", random.Random(0), window=9) == list(range(81))  # clip rewards
    assert select_frames(81, 2, "random", random.Random(3), window=None) == select_frames(
        81, 2, "random", random.Random(3)
    )
    assert select_frames(5, 1, "random", random.Random(1), window=9) == select_frames(5, 1, "random", random.Random(1))
    with pytest.raises(ValidationError):
        MemorySection(frame_window=0)


def test_gradient_reaches_every_lora_parameter_and_no_frozen_one(backbone):
    backbone.denoiser.zero_grad(set_to_none=True)
    video, _, _ = _run(backbone, TruncationSection(mode="last", k=2))
    video.mean().backward()
    for n, p in backbone.denoiser.named_parameters():
        if "lora_" in n:
            assert p.grad is not None and p.grad.abs().sum() > 0, n
        else:
            assert p.grad is None, n
    for name in ("vae", "text_encoder"):
        assert all(p.grad is None for p in backbone.components[name].parameters())
    backbone.denoiser.zero_grad(set_to_none=True)


def test_core_passes_cond_to_prepare_latents_and_decode():
    """The core hands every backbone the batch's condition; a backbone written before `cond` was declared
    still samples (called without it) and is warned once."""
    import warnings

    from vader_core.sampling import generate

    seen = []

    class Current(TinyBackbone):
        def prepare_latents(self, batch_size, generator, cond=None):
            seen.append(("prepare_latents", cond is not None))
            return super().prepare_latents(batch_size, generator, cond)

        def decode(self, latents, frames=None, chunk_size=None, cond=None):
            seen.append(("decode", cond is not None))
            return super().decode(latents, frames, chunk_size, cond)

    class Old(TinyBackbone):
        def prepare_latents(self, batch_size, generator):
            return super().prepare_latents(batch_size, generator)

        def decode(self, latents, frames=None, chunk_size=None):
            return super().decode(latents, frames, chunk_size)

    videos = []
    for cls in (Current, Old):
        bb = cls(cls.Options(frames=2, steps=2))
        bb.load("cpu", torch.float32)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(2):
                videos.append(generate(bb, ["a cat"], None, torch.Generator().manual_seed(0)))
        said = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
        if cls is Old:
            assert len(said) == 2 and all("takes no `cond` keyword" in m for m in said), said
            assert {m.split("`")[3] for m in said} == {"prepare_latents", "decode"}
        else:
            assert not said
    assert seen == [("prepare_latents", True), ("decode", True)] * 2
    torch.testing.assert_close(videos[0], videos[2], rtol=0, atol=0)


def test_core_passes_the_generator_to_a_decode_that_declares_it():
    """``generator`` is opt-in: a decode that declares it gets the chain's generator (the one that drew the initial
    latents, after the chain); one that does not is called without it and without a warning."""
    import warnings

    from vader_core.sampling import generate

    got = []

    class Noisy(TinyBackbone):
        def decode(self, latents, frames=None, chunk_size=None, cond=None, generator=None):
            got.append(generator)
            return super().decode(latents, frames, chunk_size, cond)

    class Plain(TinyBackbone):
        def decode(self, latents, frames=None, chunk_size=None, cond=None):
            return super().decode(latents, frames, chunk_size, cond)

    for cls in (Noisy, Plain):
        bb = cls(cls.Options(frames=2, steps=2))
        bb.load("cpu", torch.float32)
        g = torch.Generator().manual_seed(0)
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            generate(bb, ["a cat"], None, g)
        if cls is Noisy:
            assert got == [g]
