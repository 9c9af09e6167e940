"""V-JEPA 2 reward mechanics on tiny random weights: the masks, the context encoder on visible tokens, the
predictor used through transformers' API, stop-gradient targets, and the clip resampling."""

import math

import pytest
import torch
import torch.nn.functional as F
from vader_video_rewards import VJEPA
from vader_video_rewards.masks import VJEPA2_MASKS, BlockMaskSpec, block_mask, draw_masks

from vader_core.errors import ConfigError

GRID = (32, 16, 16)  # facebook/vjepa2-vitl-fpc64-256: 64 frames / tubelet 2, 256 / patch 16


def _reward(**opts):
    r = VJEPA(VJEPA.Options(**opts))
    r.load_tiny("cpu", torch.float32, seed=0)
    return r


# ---------------------------------------------------------------------------------------------- masks
def test_masks_are_deterministic_under_the_seed():
    a, b, c = draw_masks(GRID, draws=3, seed=7), draw_masks(GRID, draws=3, seed=7), draw_masks(GRID, draws=3, seed=8)
    assert len(a) == 6
    for (ca, ta), (cb, tb) in zip(a, b, strict=True):
        assert torch.equal(ca, cb) and torch.equal(ta, tb)
    assert any(not torch.equal(ta, tc) for (_, ta), (_, tc) in zip(a, c, strict=True))
    assert not torch.equal(a[0][1], a[2][1])  # draws differ from each other


def test_masks_split_the_tokens_into_context_and_target():
    n = math.prod(GRID)
    for context, target in draw_masks(GRID, draws=4, seed=0):
        assert context.dtype == target.dtype == torch.int64
        assert torch.equal(torch.cat([context, target]).sort().values, torch.arange(n))
        assert torch.equal(context, context.sort().values) and torch.equal(target, target.sort().values)
        assert len(context) > 0 and len(target) > 0


@pytest.mark.parametrize("kind", [0, 1], ids=["short-range", "long-range"])
def test_masks_are_tubes_of_vjepa2_block_sizes(kind):
    """V-JEPA 2's masks span the whole clip in time; each block covers `scale` of a frame (aspect 0.75-1.5)."""
    spec = VJEPA2_MASKS[kind]
    t_n, h_n, w_n = GRID
    for seed in range(5):
        _, target = block_mask(GRID, spec, torch.Generator().manual_seed(seed))
        masked = torch.zeros(math.prod(GRID), dtype=torch.bool)
        masked[target] = True
        masked = masked.view(GRID)
        assert (masked == masked[:1]).all()  # the same spatial mask in every token frame: a tube
        frame = masked[0]
        keep = int(h_n * w_n * spec.spatial_scale[0])
        covered = int(frame.sum())
        # the union of num_blocks boxes of about `keep` tokens each
        assert covered <= spec.num_blocks * keep * 1.25 and covered >= 0.75 * keep
    # about 81% of the tokens are hidden by the long-range masks, about 62% by the short-range ones
    share = sum(len(t) for _, t in draw_masks(GRID, (spec,), draws=20)) / (20 * math.prod(GRID))
    assert (0.5 < share < 0.75) if kind == 0 else (0.7 < share < 0.92)


def test_temporal_scale_limits_the_blocks_in_time():
    spec = BlockMaskSpec(1, (0.3, 0.3), temporal_scale=(0.25, 0.25))
    _, target = block_mask((8, 8, 8), spec, torch.Generator().manual_seed(0))
    frames = {int(i) // 64 for i in target}
    assert len(frames) == 2 and max(frames) - min(frames) == 1


def test_reward_masks_follow_the_options():
    r = _reward(mask_draws=3, mask_seed=11)
    assert len(r.masks) == 6
    expected = draw_masks((2, 8, 8), VJEPA2_MASKS, 3, 11)
    assert all(torch.equal(a[1], b[1]) for a, b in zip(r.masks, expected, strict=True))


# ------------------------------------------------------------------------------------ the computation
def test_visible_encoder_with_every_token_is_transformers_encoder():
    """The context encoder (patch embedding, gather, layers with RoPE positions, layer norm) on all tokens
    is exactly `VJEPA2Model.get_vision_features`."""
    r = _reward()
    x = torch.randn(2, 4, 3, 32, 32)
    every = torch.arange(128).expand(2, -1)
    with torch.no_grad():
        torch.testing.assert_close(
            r._encode_visible(x, every, 128), r.model.get_vision_features(x), atol=1e-5, rtol=1e-5
        )


def _by_hand(r, video, forward):
    """Minus the mean over masks of mean |prediction - layer_norm(target)|, from `forward(x, cm, tm)`."""
    from vader_video_rewards._common import normalize, resample_clip

    x = normalize(resample_clip(video, r.frames, r.size, r.options.resize_mode))
    errors = []
    for context, target in r.masks:
        cm, tm = context.expand(len(x), -1), target.expand(len(x), -1)
        pred, truth = forward(x, cm, tm)
        errors.append((pred - F.layer_norm(truth, truth.shape[-1:])).abs().mean(dim=(1, 2)))
    return -torch.stack(errors).mean(0)


def test_full_context_is_vjepa2model_forward(clip):
    """`context: full` is transformers' VJEPA2Model.forward with context_mask / target_mask lists."""
    r = _reward(context="full")
    v = clip(2, 4, 32, 32)

    def forward(x, cm, tm):
        out = r.model(pixel_values_videos=x, context_mask=[cm], target_mask=[tm]).predictor_output
        return out.last_hidden_state, out.target_hidden_state

    with torch.no_grad():
        torch.testing.assert_close(r(v, ["", ""]), _by_hand(r, v, forward), atol=1e-5, rtol=1e-5)


def test_visible_context_is_the_predictor_on_a_masked_encoder(clip):
    """`context: visible` feeds the predictor features of an encoder that saw only the context tokens:
    other pixels inside the hidden tubes do not change the prediction (they do with the full encoder)."""
    r = _reward(mask_draws=1)
    v = clip(1, 4, 32, 32)
    other = torch.rand_like(v)
    for context, target in r.masks:
        # pixels of `other` inside the target tubes only (tokens are 2 frames x 4 x 4 pixels)
        pix = torch.zeros(2 * 8 * 8, dtype=torch.bool)
        pix[target] = True
        pix = pix.view(2, 8, 8).repeat_interleave(2, 0).repeat_interleave(4, 1).repeat_interleave(4, 2)
        swapped = torch.where(pix[None, :, None], other, v)
        with torch.no_grad():

            def pred(clip, context=context, target=target):
                return r.model.predictor(
                    encoder_hidden_states=r._encode_visible(_prep(r, clip), context[None], 128),
                    context_mask=[context[None]],
                    target_mask=[target[None]],
                ).last_hidden_state

            torch.testing.assert_close(pred(v), pred(swapped))

            def full(clip, context=context, target=target):
                return r.model(
                    pixel_values_videos=_prep(r, clip),
                    context_mask=[context[None]],
                    target_mask=[target[None]],
                ).predictor_output.last_hidden_state

            assert not torch.allclose(full(v), full(swapped), atol=1e-4)  # the full encoder does see them


def _prep(r, video):
    from vader_video_rewards._common import normalize, resample_clip

    return normalize(resample_clip(video, r.frames, r.size, r.options.resize_mode))


def test_gradient_reaches_only_the_context_pixels(clip):
    """Targets are stop-gradient and the encoder sees only the context: with one mask, pixels of the
    hidden tubes get exactly zero gradient, the visible ones do not."""
    r = _reward(mask_draws=1)
    r.masks = r.masks[:1]
    context, target = r.masks[0]
    v = clip(1, 4, 32, 32).requires_grad_(True)
    r(v, [""]).sum().backward()
    g = v.grad.abs().sum(dim=(0, 2))  # (F, H, W)
    tokens = g.view(2, 2, 8, 4, 8, 4).sum(dim=(1, 3, 5)).flatten()  # per token: tubelet 2, patch 4
    assert (tokens[target] == 0).all()
    assert (tokens[context] > 0).all()


def test_visible_and_full_context_differ(clip):
    v = clip(2, 4, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(_reward()(v, ["", ""]), _reward(context="full")(v, ["", ""]), atol=1e-4)


def test_more_draws_average_more_masks(clip):
    v = clip(1, 4, 32, 32)
    one, three = _reward(mask_draws=1), _reward(mask_draws=3)
    with torch.no_grad():
        per_mask = []
        for m in three.masks:
            one.masks = [m]
            per_mask.append(one(v, [""]))
        torch.testing.assert_close(three(v, [""]), torch.stack(per_mask).mean(0))


# ----------------------------------------------------------------------------------------- frames
def test_num_frames_option_and_its_validation():
    r = _reward(num_frames=8)
    assert r.frames == 8 and len(r.masks[0][0]) + len(r.masks[0][1]) == 4 * 8 * 8
    out = r(torch.rand(1, 3, 3, 32, 32), [""])
    assert torch.isfinite(out).all()
    with pytest.raises(ConfigError, match="`num_frames` must be a multiple of the model's tubelet size 2, got 5"):
        _reward(num_frames=5)
    assert _reward().frames == 4  # null: config.frames_per_clip
