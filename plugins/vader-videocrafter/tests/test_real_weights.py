"""With the real VideoCrafter2 checkpoint (VADER_TEST_WEIGHTS=1; the file from VADER_VIDEOCRAFTER2_CKPT or
the Hugging Face cache): its tensors are the manifest's, and it loads and samples a plausible video.
Skipped otherwise."""

import json
import os
from importlib import resources

import pytest
import torch
from vader_videocrafter import VideoCrafterBackbone, VideoCrafterOptions

pytestmark = [
    pytest.mark.weights,
    pytest.mark.skipif(os.environ.get("VADER_TEST_WEIGHTS") != "1", reason="needs real weights (VADER_TEST_WEIGHTS=1)"),
]


def _options(**kw):
    return VideoCrafterOptions(model=os.environ.get("VADER_VIDEOCRAFTER2_CKPT") or None, **kw)


def test_checkpoint_matches_the_manifest():
    from vader_videocrafter.checkpoint import read_state_dict

    bb = VideoCrafterBackbone(_options())
    sd = read_state_dict(bb.checkpoint_path())
    text = resources.files("vader_videocrafter").joinpath("manifest/videocrafter2_512.json").read_text()
    manifest = json.loads(text)["tensors"]
    ignorable = ("cond_stage_model.model.attn_mask", "cond_stage_model.model.visual.")
    extra = [k for k in sd if k not in manifest and not k.startswith(ignorable)]
    assert not extra, f"{len(extra)} tensors not in the manifest, e.g. {extra[:3]}"
    assert [k for k in manifest if k not in sd] == []
    assert all(list(sd[k].shape) == shape for k, (shape, _) in manifest.items())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="a 25-step 320x512 sample needs a GPU")
def test_real_model_generates():
    from vader_core.sampling import generate

    bb = VideoCrafterBackbone(_options(frames=8))
    bb.load("cuda", torch.float16)
    video = generate(bb, ["a corgi running on the beach, sunny day"], None, torch.Generator().manual_seed(0))
    assert video.shape == (1, 8, 3, 320, 512) and torch.isfinite(video).all()
    assert video.std() > 0.05  # not a flat image
    assert (video[:, 1:] - video[:, :-1]).abs().mean() < 0.2  # frames of one scene, not noise
