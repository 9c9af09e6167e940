"""Decoding a subset of frames: the pixel frame is the unit; with temporal tiling only the tiles that hold the
chosen frames run, and they give the tiled decode's frames (with gradient too)."""

import pytest
import torch
from vader_ltx import LTXBackbone, LTXOptions

TILED = {"vae_temporal_tiling": True, "vae_tile_frames": 12, "vae_tile_stride": 8}


def _backbone(frames=33, vae="0.9.0", **options):
    from vader_ltx.tiny import scheduler_config, tiny_components

    bb = LTXBackbone(LTXOptions(height=32, width=32, frames=frames, steps=2, **options))
    comps = tiny_components(0, vae=vae)
    comps["scheduler"] = bb.make_scheduler(scheduler_config())
    bb.setup(comps, "cpu", torch.float32)
    return bb


def _count_decoder_calls(bb, monkeypatch):
    calls = []
    decoder = bb.components["vae"].decoder
    forward = decoder.forward

    def counted(z, *args, **kwargs):
        calls.append(int(z.shape[2]))
        return forward(z, *args, **kwargs)

    monkeypatch.setattr(decoder, "forward", counted)
    return calls


def test_num_latent_frames_is_the_pixel_frame_count():
    bb = _backbone(frames=33)
    latents = bb.prepare_latents(1, torch.Generator().manual_seed(0))
    assert latents.shape[2] == 9 and bb.num_latent_frames(latents) == 33
    with torch.no_grad():
        assert bb.decode(latents).shape == (1, 33, 3, 32, 32)


@pytest.mark.parametrize("vae", ["0.9.0", "0.9.1"])
@pytest.mark.parametrize(
    "frames",
    [[0], [8], [9], [12], [20], [32], [0, 16, 32], [5, 6, 7, 8, 9, 10, 11, 12, 13]],
    ids=lambda f: "-".join(map(str, f)),
)
def test_tiled_subset_equals_the_tiled_decode(vae, frames, monkeypatch):
    """Frames in a tile's own part, in a blend with the previous tile (9..12 for tiles every 8 frames blended over
    4), the first and the last: the same values as the whole tiled decode (diffusers' framewise decoding), from
    fewer tiles."""
    bb = _backbone(vae=vae, decode_timestep=0.05, decode_noise_scale=0.0, **TILED)
    latents = bb.prepare_latents(1, torch.Generator().manual_seed(0))
    calls = _count_decoder_calls(bb, monkeypatch)
    with torch.no_grad():
        full = bb.decode(latents)
        n_full = len(calls)
        sub = bb.decode(latents, frames)
    assert n_full == 5  # 9 latent frames: tiles at 0, 2, 4, 6, 8 (3 + 1 latent frames each; the last holds none)
    assert len(calls) - n_full < n_full or len(frames) > 3
    torch.testing.assert_close(sub, full[:, frames], rtol=0, atol=1e-6)


def test_one_frame_with_gradient_runs_one_or_two_tiles(monkeypatch):
    """With gradient, a frame outside any blend needs its own tile, one in a blend also the previous tile; the
    gradient reaches only the latent frames those tiles read."""
    bb = _backbone(**TILED)
    latents = bb.prepare_latents(1, torch.Generator().manual_seed(0)).requires_grad_(True)
    calls = _count_decoder_calls(bb, monkeypatch)
    bb.decode(latents, [16]).mean().backward()  # tile 1 (frames 9..16), outside its blend (9..12)
    assert calls == [4]
    touched = latents.grad.abs().sum(dim=(0, 1, 3, 4)) > 0
    assert touched.tolist() == [False, False, True, True, True, True, False, False, False]
    latents.grad = None
    calls.clear()
    bb.decode(latents, [10]).mean().backward()  # in tile 1's blend with tile 0
    assert calls == [4, 4]
    assert (latents.grad.abs().sum(dim=(0, 1, 3, 4)) > 0).tolist()[:6] == [True] * 6


def test_untiled_subset_is_the_whole_decode_s(monkeypatch):
    """Without tiling the decoder is not causal: a subset is picked from the whole video's decode."""
    bb = _backbone()
    latents = bb.prepare_latents(1, torch.Generator().manual_seed(0))
    calls = _count_decoder_calls(bb, monkeypatch)
    with torch.no_grad():
        full = bb.decode(latents)
        sub = bb.decode(latents, [3, 30])
    assert calls == [9, 9]
    torch.testing.assert_close(sub, full[:, [3, 30]], rtol=0, atol=0)


def test_tiling_changes_the_frames_only_slightly_where_tiles_meet():
    """The tiled decode is not the stock whole-video decode (each tile sees less context): off by default."""
    bb, tiled = _backbone(), _backbone(**TILED)
    latents = bb.prepare_latents(1, torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = (bb.decode(latents) - tiled.decode(latents)).abs().amax(dim=(0, 2, 3, 4))
    assert diff.max() > 1e-4


def test_by_default_frames_with_gradient_come_from_their_tiles(monkeypatch):
    """vae_temporal_tiling null: a frame decoded with gradient (training) runs its tiles and equals the tiled
    decode's frame; without gradient (generation) the whole video is decoded, as the stock pipeline does."""
    bb, tiled = _backbone(vae_tile_frames=12), _backbone(**TILED)
    latents = bb.prepare_latents(1, torch.Generator().manual_seed(0))
    calls = _count_decoder_calls(bb, monkeypatch)
    with torch.no_grad():
        whole = bb.decode(latents, [16])
        ref = tiled.decode(latents, [16])
    assert calls == [9]
    sub = bb.decode(latents.clone().requires_grad_(True), [16])
    assert calls == [9, 4]
    torch.testing.assert_close(sub.detach(), ref, rtol=0, atol=1e-6)
    assert (whole - ref).abs().max() > 1e-5
