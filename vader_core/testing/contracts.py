"""Contract test mixins every backbone, reward and guard-metric plugin runs (pytest style).

Use them in a plugin's tests::

    from vader_core.testing import RewardContractTests

    class TestRedness(RewardContractTests):
        reward_cls = Redness

        def make_reward(self):          # optional: defaults to load_tiny() on CPU
            r = Redness(Redness.Options(gain=2.0))
            r.load_tiny("cpu", torch.float32)
            return r

    class TestMyBackbone(BackboneContractTests):
        backbone_cls = MyBackbone
        options = {"height": 32, "width": 32, "frames": 2, "steps": 2}

    class TestMyMetric(MetricContractTests):
        metric_cls = MyMetric

Every test builds tiny components on the CPU (``load_tiny``) and runs in seconds.
"""

from __future__ import annotations

import inspect
import random
from typing import Any, ClassVar, Literal

import pytest
import torch
from pydantic import ValidationError

from ..backbone import BackbonePlugin
from ..config import TruncationSection
from ..metric import MetricPlugin
from ..resolve import instantiate
from ..reward import RewardPlugin
from .helpers import randomize_lora_b


def _tensors_held(obj: Any) -> dict[str, list[torch.Tensor]]:
    """The tensors in ``obj``'s instance attributes (directly, or inside a list, tuple or dict), by attribute."""
    out: dict[str, list[torch.Tensor]] = {}
    for name, value in vars(obj).items():
        items = (
            list(value.values()) if isinstance(value, dict) else value if isinstance(value, list | tuple) else [value]
        )
        tensors = [v.detach().clone() for v in items if isinstance(v, torch.Tensor)]
        if tensors:
            out[name] = tensors
    return out


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a, b))


class RewardContractTests:
    """Shape, dtype, range, determinism, gradient to pixels, batch independence, options validation."""

    reward_cls: ClassVar[type[RewardPlugin]]
    #: Video size used by the tests: (batch, frames, H, W).
    video_size: ClassVar[tuple[int, int, int, int]] = (2, 3, 32, 32)
    prompts: ClassVar[list[str]] = ["a cat playing chess", "a dog surfing a wave"]
    #: Option dicts that must be rejected by ``Options``.
    invalid_options: ClassVar[list[dict[str, Any]]] = [{"no_such_option_xyz": 1}]

    def make_reward(self) -> Any:
        r = self.reward_cls()
        r.load_tiny("cpu", torch.float32, seed=0)
        return r

    def make_video(self, seed: int = 0) -> torch.Tensor:
        b, f, h, w = self.video_size
        g = torch.Generator().manual_seed(seed)
        return torch.rand(b, f, 3, h, w, generator=g)

    def _prompts(self) -> list[str]:
        b = self.video_size[0]
        return [self.prompts[i % len(self.prompts)] for i in range(b)]

    def test_contract_attributes(self) -> None:
        cls = self.reward_cls
        assert isinstance(cls.name, str) and cls.name, "reward needs a name"
        assert cls.scores in ("frames", "clip"), f'scores must be "frames" or "clip", got {cls.scores!r}'
        assert cls.summary, "reward needs a one-line summary"
        cls.Options()  # defaults must validate

    def test_output_shape_dtype_finite(self) -> None:
        r = self.make_reward()
        out = r(self.make_video(), self._prompts())
        b = self.video_size[0]
        assert out.shape == (b,), (
            f"the reward of {b} videos has shape {tuple(out.shape)}; expected one score each, ({b},)"
        )
        assert out.dtype == torch.float32, f"the reward call returned {out.dtype}; the base class returns float32"
        assert torch.isfinite(out).all(), f"scores must be finite, got {out.tolist()}"

    def test_value_range(self) -> None:
        r = self.make_reward()
        if r.value_range is None:
            pytest.skip("unbounded reward")
        lo, hi = r.value_range
        for video in (
            self.make_video(1),
            torch.zeros(self.video_size[0], *self.make_video().shape[1:]),
            torch.ones(self.video_size[0], *self.make_video().shape[1:]),
        ):
            out = r(video, self._prompts())
            assert (out >= lo - 1e-5).all() and (out <= hi + 1e-5).all(), f"{out} outside {r.value_range}"

    def test_deterministic(self) -> None:
        r = self.make_reward()
        v = self.make_video(2)
        torch.testing.assert_close(r(v, self._prompts()), r(v.clone(), self._prompts()))

    def test_batch_independent(self) -> None:
        r = self.make_reward()
        v = self.make_video(3)
        full = r(v, self._prompts())
        single = r(v[:1], self._prompts()[:1])
        torch.testing.assert_close(full[:1], single, atol=1e-4, rtol=1e-4)

    def test_gradient_reaches_pixels(self) -> None:
        r = self.make_reward()
        v = self.make_video(4).requires_grad_(True)
        r(v, self._prompts()).sum().backward()
        assert v.grad is not None, "no gradient reached the pixels: the score is detached from the frames"
        assert torch.isfinite(v.grad).all(), "the gradient with respect to the pixels holds NaN or infinity"
        assert v.grad.abs().sum() > 0, "reward gradient does not reach the pixels"

    def test_reward_model_frozen(self) -> None:
        r = self.make_reward()
        for m in vars(r).values():
            if isinstance(m, torch.nn.Module):
                assert not any(p.requires_grad for p in m.parameters()), "reward model must be frozen"

    def test_invalid_options_rejected(self) -> None:
        for bad in self.invalid_options:
            with pytest.raises(ValidationError):
                self.reward_cls.Options.model_validate(bad)


class MetricContractTests:
    """Guard metrics: shape, dtype, range, determinism, batch independence, no autograd, options validation.

    ``prompts`` are the prompts the metric understands (override for domain metrics such as ``toy_color``).
    A metric of ``scores = "seeds"`` (one score per prompt from its videos of several seeds) is checked through
    :meth:`~vader_core.metric.MetricPlugin.video_features` for what holds per video, and through
    :meth:`~vader_core.metric.MetricPlugin.score_seeds` on the features of two seeds' videos for its scores.
    """

    metric_cls: ClassVar[type[MetricPlugin]]
    video_size: ClassVar[tuple[int, int, int, int]] = (2, 3, 32, 32)
    prompts: ClassVar[list[str]] = ["a cat playing chess", "a dog surfing a wave"]
    invalid_options: ClassVar[list[dict[str, Any]]] = [{"no_such_option_xyz": 1}]

    def make_metric(self) -> Any:
        m = self.metric_cls()
        m.load_tiny("cpu", torch.float32, seed=0)
        return m

    def make_video(self, seed: int = 0) -> torch.Tensor:
        b, f, h, w = self.video_size
        g = torch.Generator().manual_seed(seed)
        return torch.rand(b, f, 3, h, w, generator=g)

    def _prompts(self) -> list[str]:
        return [self.prompts[i % len(self.prompts)] for i in range(self.video_size[0])]

    def _across_seeds(self) -> bool:
        return getattr(self.metric_cls, "scores", "video") == "seeds"

    def _per_video(self, m: Any, video: torch.Tensor) -> torch.Tensor:
        """The metric's per-video output: its scores ``(B,)``, or a seeds metric's features ``(B, D)``."""
        if self._across_seeds():
            return m.video_features(video, self._prompts())
        return m(video, self._prompts())

    def _scores(self, m: Any, seed: int) -> torch.Tensor:
        """Scores ``(B,)``: per video, or for a seeds metric per prompt, from videos of two seeds."""
        if not self._across_seeds():
            return m(self.make_video(seed), self._prompts())
        feats = torch.stack([m.video_features(self.make_video(seed + s), self._prompts()) for s in (0, 100)], dim=1)
        return m.score_seeds(feats, self._prompts())

    def test_contract_attributes(self) -> None:
        from ..metric import MetricPlugin

        cls = self.metric_cls
        assert issubclass(cls, MetricPlugin), f"{cls.__name__} must subclass vader_core.MetricPlugin"
        assert isinstance(cls.name, str) and cls.name, "metric needs a name"
        assert cls.summary, "metric needs a one-line summary"
        assert cls.scores in ("video", "seeds"), f'scores must be "video" or "seeds", got {cls.scores!r}'
        cls.Options()

    def test_output_shape_dtype_finite(self) -> None:
        m = self.make_metric()
        out = self._per_video(m, self.make_video())
        b, want = self.video_size[0], ("(B, D) features" if self._across_seeds() else "(B,) scores")
        assert out.shape[0] == b and out.ndim == (2 if self._across_seeds() else 1), (
            f"{b} videos gave shape {tuple(out.shape)}; expected {want}"
        )
        assert out.dtype == torch.float32 and out.device.type == "cpu", f"got {out.dtype} on {out.device}"
        assert torch.isfinite(out).all(), f"values must be finite, got {out.tolist()}"
        scores = self._scores(m, 0)
        assert scores.shape == (b,), f"scores of {b} have shape {tuple(scores.shape)}; expected ({b},)"
        assert scores.dtype == torch.float32, f"scores are {scores.dtype}; the base class returns float32"
        assert torch.isfinite(scores).all(), f"scores must be finite, got {scores.tolist()}"

    def test_value_range(self) -> None:
        m = self.make_metric()
        if m.value_range is None:
            pytest.skip("unbounded metric")
        lo, hi = m.value_range
        out = self._scores(m, 1)
        assert (out >= lo).all() and (out <= hi).all(), f"{out.tolist()} outside value_range {m.value_range}"

    def test_deterministic_and_batch_independent(self) -> None:
        m = self.make_metric()
        v = self.make_video(2)
        full = self._per_video(m, v)
        torch.testing.assert_close(full, self._per_video(m, v.clone()))
        one = m.video_features(v[:1], self._prompts()[:1]) if self._across_seeds() else m(v[:1], self._prompts()[:1])
        torch.testing.assert_close(full[:1], one, atol=1e-4, rtol=1e-4)

    def test_no_autograd(self) -> None:
        """A guard metric never enters a loss: its output carries no graph even for inputs that do."""
        v = self.make_video(3).requires_grad_(True)
        out = self._per_video(self.make_metric(), v)
        assert not out.requires_grad and out.grad_fn is None, "a metric's output must carry no autograd graph"

    def test_seeds_metric_needs_several_seeds(self) -> None:
        """A seeds metric has no per-video score (calling it says what to call instead) and refuses one seed."""
        if not self._across_seeds():
            pytest.skip("a per-video metric")
        m = self.make_metric()
        with pytest.raises(TypeError, match="score_seeds"):
            m(self.make_video(), self._prompts())
        with pytest.raises(ValueError, match="several seeds"):
            m.score_seeds(m.video_features(self.make_video(), self._prompts())[:, None], self._prompts())

    def test_invalid_options_rejected(self) -> None:
        for bad in self.invalid_options:
            with pytest.raises(ValidationError):
                self.metric_cls.Options.model_validate(bad)


class BackboneContractTests:
    """Loading tiny components, shapes of every step, determinism, LoRA targets, gradient flow."""

    backbone_cls: ClassVar[type[BackbonePlugin]]
    options: ClassVar[dict[str, Any]] = {}
    prompts: ClassVar[list[str]] = ["a cat playing chess", "a dog surfing a wave"]
    invalid_options: ClassVar[list[dict[str, Any]]] = [{"frames": 0}, {"no_such_option_xyz": 1}]

    def make_images(self, n: int) -> list[Any] | None:
        if "image" not in self.backbone_cls.conditioning:
            return None
        g = torch.Generator().manual_seed(0)
        o = self.backbone_cls.Options.model_validate(self.options)
        return [torch.rand(3, o.height, o.width, generator=g) for _ in range(n)]

    def make_backbone(self) -> Any:
        bb = instantiate(self.backbone_cls, self.options, "backbone")
        bb.load_tiny("cpu", torch.float32, seed=0)
        return bb

    def _generate(self, bb: Any, seed: int) -> torch.Tensor:
        from ..sampling import generate

        return generate(bb, self.prompts, self.make_images(len(self.prompts)), torch.Generator().manual_seed(seed))

    def test_contract_attributes(self) -> None:
        cls = self.backbone_cls
        assert cls.name and cls.summary, "backbone needs a name and a one-line summary"
        assert cls.conditioning in ("text", "image", "text+image"), f"conditioning is {cls.conditioning!r}"
        assert cls.default_lora_targets, "default_lora_targets is empty: name the denoiser modules that get LoRA"

    def test_generate_shape_range(self) -> None:
        bb = self.make_backbone()
        video = self._generate(bb, 0)
        o = bb.options
        want = (len(self.prompts), o.frames, 3, o.height, o.width)
        assert video.shape == want, f"generated {tuple(video.shape)}; expected (B, frames, 3, height, width) = {want}"
        assert video.dtype == torch.float32, f"generated {video.dtype}; decode must give float32"
        assert torch.isfinite(video).all(), "the generated video holds NaN or infinity"
        assert video.min() >= 0 and video.max() <= 1, (
            f"pixels in [{video.min():.3g}, {video.max():.3g}]; decode to [0, 1]"
        )

    def test_deterministic_under_seed(self) -> None:
        bb = self.make_backbone()
        a, b, c = self._generate(bb, 0), self._generate(bb, 0), self._generate(bb, 1)
        torch.testing.assert_close(a, b)
        assert not torch.allclose(a, c), "two seeds gave the same video: does prepare_latents use the generator?"

    def test_steps_that_need_the_batch_declare_cond(self) -> None:
        """``prepare_latents`` and ``decode`` take the batch's condition as ``cond`` (with a default), so
        nothing of a batch has to wait on the backbone between the calls."""
        for step in ("prepare_latents", "decode"):
            param = inspect.signature(getattr(self.backbone_cls, step)).parameters.get("cond")
            assert param is not None, f"{self.backbone_cls.__name__}.{step} does not declare `cond`"
            assert param.default is None, f"{self.backbone_cls.__name__}.{step}: `cond` needs the default None"

    def test_keeps_no_per_batch_state(self) -> None:
        """Sampling and decoding a batch leaves no tensor on the backbone that loading and the schedule
        (:meth:`set_timesteps`) did not put there, and changes none of those: whatever belongs to a batch
        travels in ``cond``."""
        bb = self.make_backbone()
        bb.set_timesteps(bb.options.steps)
        before = _tensors_held(bb)
        self._generate(bb, 0)
        after = _tensors_held(bb)
        name = self.backbone_cls.__name__
        added = sorted(set(after) - set(before))
        assert not added, f"{name} keeps per-batch tensors on itself: {added}; put them in `cond`"
        changed = [
            k
            for k in after
            if len(after[k]) != len(before[k]) or not all(_same(a, b) for a, b in zip(before[k], after[k], strict=True))
        ]
        assert not changed, f"{name} rewrites tensors on itself per batch: {changed}; put them in `cond`"

    def test_decode_subset_matches_full(self) -> None:
        """The unit of frame subsampling: ``num_latent_frames`` counts the frames a full decode returns (pixel frames
        for a VAE that compresses time), ``options.frames`` of them, and ``decode(latents, frames)`` returns exactly
        those frames of the full decode (first, middle, last, alone and together)."""
        bb = self.make_backbone()
        bb.set_timesteps(bb.options.steps)  # latents scaled for the scheduler's first step, as the core prepares them
        g = torch.Generator().manual_seed(0)
        latents = bb.prepare_latents(1, g)
        n = bb.num_latent_frames(latents)
        with torch.no_grad():
            full = bb.decode(latents, None)
            assert full.shape[1] == n == bb.options.frames, (
                f"decode returned {full.shape[1]} frames, num_latent_frames says {n}, options.frames is "
                f"{bb.options.frames}: num_latent_frames must count the decoded (pixel) frames"
            )
            picks = sorted({0, n // 2, n - 1})
            for idx in ([n - 1], [0], picks):
                sub = bb.decode(latents, idx)
                assert sub.shape[1] == len(idx), f"decode(latents, {idx}) returned {sub.shape[1]} frames"
                torch.testing.assert_close(sub, full[:, idx], atol=1e-4, rtol=1e-4, msg=f"frames {idx}")

    def test_lora_targets_exist(self) -> None:
        bb = self.make_backbone()
        names = [n for n, _ in bb.denoiser.named_modules()]
        for t in bb.default_lora_targets:
            assert any(n == t or n.endswith("." + t) for n in names), f"no module matches LoRA target {t}"

    def test_gradient_reaches_lora_only(self) -> None:
        from ..config import MemorySection
        from ..lora import add_lora
        from ..sampling import sample_with_grad

        bb = self.make_backbone()
        add_lora(bb.denoiser, 4, 4, 0.0, bb.default_lora_targets)
        for n, p in bb.denoiser.named_parameters():
            if "lora_B" in n:  # B starts at zero: give it a value so A gets gradient too
                torch.nn.init.normal_(p, std=0.02)
        images = self.make_images(1)
        cond = bb.encode_condition(self.prompts[:1], images)
        video, kept, frames = sample_with_grad(
            bb,
            cond,
            1,
            torch.Generator().manual_seed(0),
            random.Random(0),
            TruncationSection(mode="last", k=1),
            MemorySection(decoded_frames=1),
        )
        video.mean().backward()
        for n, p in bb.denoiser.named_parameters():
            if "lora_" in n:
                assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {n}"
        for name, m in bb.modules().items():
            for n, p in m.named_parameters():
                if "lora_" not in n:
                    assert p.grad is None, f"frozen parameter {name}.{n} got a gradient"

    def _lora_gradients(
        self, bb: Any, level: bool | Literal["call"], split_guidance: bool
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        from ..config import MemorySection
        from ..sampling import sample_with_grad

        with torch.no_grad():
            cond = bb.encode_condition(self.prompts[:1], self.make_images(1))
        video, _, _ = sample_with_grad(
            bb,
            cond,
            1,
            torch.Generator().manual_seed(0),
            random.Random(0),
            TruncationSection(mode="last", k=2),
            MemorySection(
                gradient_checkpointing=level, split_guidance=split_guidance, decoded_frames=1, frame_selection="uniform"
            ),
        )
        video.mean().backward()
        grads = [p.grad.clone() for n, p in bb.denoiser.named_parameters() if "lora_" in n]
        bb.denoiser.zero_grad(set_to_none=True)
        return video.detach(), grads

    def test_checkpointing_levels_give_the_same_gradients(self) -> None:
        """``memory.gradient_checkpointing`` off, ``call`` and ``block`` (with and without running the guidance
        halves one after the other): the same frames and LoRA gradients, up to float rounding."""
        from ..lora import add_lora

        bb = self.make_backbone()
        add_lora(bb.denoiser, 4, 4, 0.0, bb.default_lora_targets)
        randomize_lora_b(bb.denoiser, seed=1, std=0.02)
        video, ref = self._lora_gradients(bb, False, False)
        assert ref and all(r.abs().sum() > 0 for r in ref), "some LoRA weight got no gradient"
        # Relative to the largest gradient: some are zero up to rounding (cross-attention to a single token).
        scale = max(float(r.abs().max()) for r in ref)
        levels: tuple[tuple[bool | Literal["call"], bool], ...] = (
            ("call", False),
            ("call", True),
            (True, False),
            (True, True),
        )
        for level, split in levels:
            v, grads = self._lora_gradients(bb, level, split)
            torch.testing.assert_close(v, video, rtol=0, atol=1e-4)
            for a, b in zip(grads, ref, strict=True):
                torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4 * scale, msg=f"level {level}, split {split}")

    def test_guidance_halves_run_one_after_the_other(self) -> None:
        """With ``memory.split_guidance`` at a kept step under checkpointing, no denoiser call with gradient sees
        more videos than were sampled: a batch that guidance doubles goes through ``run_guided`` (or the
        backbone calls the two branches apart, as the stock Wan pipelines do)."""
        from ..config import MemorySection
        from ..lora import add_lora
        from ..sampling import sample_with_grad

        bb = self.make_backbone()
        add_lora(bb.denoiser, 4, 4, 0.0, bb.default_lora_targets)
        seen: list[int] = []

        def first_batch(_m: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            if torch.is_grad_enabled():
                x = next(v for v in (*args, *kwargs.values()) if isinstance(v, torch.Tensor))
                seen.append(int(x.shape[0]))

        handle = bb.denoiser.register_forward_pre_hook(first_batch, with_kwargs=True)
        try:
            with torch.no_grad():
                cond = bb.encode_condition(self.prompts[:1], self.make_images(1))
            video, _, _ = sample_with_grad(
                bb,
                cond,
                1,
                torch.Generator().manual_seed(0),
                random.Random(0),
                TruncationSection(mode="last", k=1),
                MemorySection(gradient_checkpointing=True, split_guidance=True, decoded_frames=1),
            )
            video.float().mean().backward()
        finally:
            handle.remove()
        assert seen, "no denoiser call ran with gradient at the kept step"
        assert max(seen) == 1, f"a denoiser call with gradient saw batches of {sorted(set(seen))} for 1 video"

    def _block_leaf_calls(self, bb: Any, watched: list[Any], level: bool | Literal["call"]) -> list[int]:
        """Calls of the leaf modules of each of ``watched`` over a K=2 training sample and its backward at
        checkpointing ``level`` (a recomputed block runs its layers again; its own forward hooks do not fire then)."""
        from ..config import MemorySection
        from ..sampling import sample_with_grad

        calls = [0] * len(watched)
        hooks = [
            leaf.register_forward_pre_hook(lambda *_, i=i, calls=calls: calls.__setitem__(i, calls[i] + 1))
            for i, m in enumerate(watched)
            for leaf in m.modules()
            if not list(leaf.children())
        ]
        try:
            with torch.no_grad():
                cond = bb.encode_condition(self.prompts[:1], self.make_images(1))
            video, _, _ = sample_with_grad(
                bb,
                cond,
                1,
                torch.Generator().manual_seed(0),
                random.Random(0),
                # K=2: the second kept call's input requires grad, so backward passes every one of its layers
                TruncationSection(mode="last", k=min(2, bb.options.steps)),
                MemorySection(gradient_checkpointing=level, split_guidance=False, decoded_frames=1),
            )
            video.mean().backward()
        finally:
            for h in hooks:
                h.remove()
        return calls

    def test_checkpoint_blocks_are_recomputed(self) -> None:
        """The blocks the backbone names lie inside its denoiser (decoder blocks inside a component), none
        inside another; at ``block`` level each runs once more in backward than at ``call`` level. That holds for a
        backbone that claims its library's own checkpointing switch (``native_gradient_checkpointing``) too: the
        switch must really recompute the blocks ``checkpoint_blocks`` names (the core then wraps none itself)."""
        from ..lora import add_lora

        bb = self.make_backbone()
        native = bb.native_gradient_checkpointing(True)
        bb.native_gradient_checkpointing(False)
        blocks = bb.checkpoint_blocks()
        assert blocks, "name the denoiser's blocks in checkpoint_blocks()"
        inside = {id(m) for m in bb.denoiser.modules()}
        if not native:
            assert all(id(b) in inside for b in blocks), "a checkpoint block is not a module of the denoiser"
        for group in (blocks, bb.decoder_checkpoint_blocks()):
            ids = {id(b) for b in group}
            assert len(ids) == len(group), "a block is named twice"
            for b in group:
                assert not any(id(m) in ids for m in list(b.modules())[1:]), f"{type(b).__name__} holds another block"
        add_lora(bb.denoiser, 4, 4, 0.0, bb.default_lora_targets)
        watched = [*blocks, *bb.decoder_checkpoint_blocks()]
        counts = {str(level): self._block_leaf_calls(bb, watched, level) for level in ("call", True)}
        assert sum(counts["call"][len(blocks) :]) > 0 or not bb.decoder_checkpoint_blocks(), "no decoder block ran"
        how = "with the library's own switch (native_gradient_checkpointing), " if native else ""
        for m, c, b in zip(watched, counts["call"], counts["True"], strict=True):
            # (a layer the model never calls, like an attention diffusers skips with one mid-block layer, runs 0 times)
            assert b > c or c == 0, f"{type(m).__name__} ran {b} times at block level {how}{c} at call level"

    def test_invalid_options_rejected(self) -> None:
        for bad in self.invalid_options:
            with pytest.raises(ValidationError):
                self.backbone_cls.Options.model_validate({**self.options, **bad})


class PluginPackageContractTests:
    """The distribution as vader finds it: importing the package loads no heavy library (registering classes
    must stay instant, so `vader plugins` never waits for torch), and its entry point registers each plugin
    class under this distribution's name."""

    #: The import name of the package, e.g. ``"vader_svd"``.
    package: ClassVar[str]
    #: The distribution (``pip install`` name), e.g. ``"vader-svd"``.
    distribution: ClassVar[str]
    #: The backbone, reward, method and metric classes the package registers.
    plugin_classes: ClassVar[list[type[Any]]]
    #: Modules importing the package must not import.
    heavy_modules: ClassVar[tuple[str, ...]] = ("torch", "diffusers", "transformers", "open_clip", "huggingface_hub")

    def test_import_is_light(self) -> None:
        import subprocess
        import sys

        code = f"import sys, {self.package}; print(','.join(m for m in {self.heavy_modules!r} if m in sys.modules))"
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip() == "", f"importing {self.package} imported {res.stdout.strip()}"

    def test_listing_is_light(self) -> None:
        """`vader plugins` with this plugin loaded (its hooks called, its classes registered) imports nothing heavy:
        a top-level `import torch` in the package or in a module its hook imports makes every listing take
        seconds."""
        import os
        import subprocess
        import sys

        code = (
            "import sys; from vader_core.cli import main\n"
            "try:\n    main(['plugins', '--json'])\nexcept SystemExit:\n    pass\n"
            f"print('HEAVY:' + ','.join(m for m in {self.heavy_modules!r} if m in sys.modules))\n"
        )
        env = {**os.environ, "VADER_PLUGINS": self.distribution}
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
        assert res.returncode == 0, res.stderr
        heavy = res.stdout.rsplit("HEAVY:", 1)[-1].strip()
        assert heavy == "", (
            f"`vader plugins` with {self.distribution} imported {heavy}: import them inside methods "
            "(load, score_frames ...) or through vader_core.lazy, not at the top of a module the hook imports"
        )

    def test_registered_through_the_entry_point(self) -> None:
        from .. import plugins

        infos, broken = plugins.list_plugins()
        assert not [b for b in broken if b.package == self.distribution], broken
        registered = {info.cls: info for info in infos}
        get = {
            "backbone": plugins.get_backbone,
            "reward": plugins.get_reward,
            "method": plugins.get_method,
            "metric": plugins.get_metric,
        }
        for cls in self.plugin_classes:
            assert cls in registered, f"{cls.__name__} is not registered (is `vader_plugin_name` this plugin's?)"
            info = registered[cls]
            assert info.package == self.distribution and get[info.kind](cls.name) is cls
