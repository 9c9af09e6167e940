"""Our modules have exactly the tensor names and shapes of the official checkpoint (the committed manifest).

The manifest (``manifest/videocrafter2_512.json``) lists every tensor of the official ``LatentDiffusion``
state dict for ``configs/inference_t2v_512_v2.0.yaml``, gathered from the official source with random
weights. The full-size models are built on the meta device: no memory, no time.
"""

import json
from importlib import resources

import pytest
import torch
from vader_videocrafter.checkpoint import SCHEDULE_BUFFERS, TEXT_PREFIX, UNET_PREFIX, VAE_PREFIX


@pytest.fixture(scope="module")
def manifest() -> dict[str, tuple[tuple[int, ...], str]]:
    text = resources.files("vader_videocrafter").joinpath("manifest/videocrafter2_512.json").read_text()
    return {k: (tuple(shape), dtype) for k, (shape, dtype) in json.loads(text)["tensors"].items()}


def _part(manifest, prefix):
    return {k[len(prefix) :]: shape for k, (shape, _) in manifest.items() if k.startswith(prefix)}


def test_manifest_has_only_known_parts(manifest):
    other = [k for k in manifest if not k.startswith((UNET_PREFIX, VAE_PREFIX, TEXT_PREFIX))]
    assert sorted(other) == sorted(SCHEDULE_BUFFERS)
    assert len(manifest) == 2039


def test_unet_state_dict_is_the_official_one(manifest):
    from vader_videocrafter.unet import LVDMUNet3DModel

    with torch.device("meta"):
        unet = LVDMUNet3DModel()  # defaults: the official 512 configuration
    ours = {k: tuple(v.shape) for k, v in unet.state_dict().items()}
    ref = _part(manifest, UNET_PREFIX)
    assert list(ours) == list(ref)  # same names, same order
    assert ours == ref
    assert sum(v.numel() for v in unet.parameters()) == 1_413_284_420


def test_text_encoder_state_dict_is_the_official_one(manifest):
    import open_clip
    from vader_videocrafter.text_encoder import OpenCLIPTextEncoder, build_openclip_text_model

    enc = OpenCLIPTextEncoder(build_openclip_text_model(open_clip.get_model_config("ViT-H-14"), "meta"))
    ours = {k: tuple(v.shape) for k, v in enc.state_dict().items()}
    assert ours == _part(manifest, TEXT_PREFIX)


def test_vae_keys_convert_to_autoencoderkl(manifest):
    """diffusers' LDM converter maps the official first_stage_model keys onto AutoencoderKL, all of them."""
    from diffusers import AutoencoderKL
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint
    from vader_videocrafter.backbone import VAE_CONFIG

    with torch.device("meta"):
        vae = AutoencoderKL(**VAE_CONFIG)
        ldm = {VAE_PREFIX + k: torch.empty(shape) for k, shape in _part(manifest, VAE_PREFIX).items()}
    converted = convert_ldm_vae_checkpoint(ldm, vae.config)
    assert {k: tuple(v.shape) for k, v in converted.items()} == {k: tuple(v.shape) for k, v in vae.state_dict().items()}


def test_schedule_buffers_have_the_official_shapes(manifest):
    from vader_videocrafter.backbone import lvdm_alphas_cumprod, lvdm_scale_arr

    assert tuple(lvdm_alphas_cumprod().shape) == manifest["alphas_cumprod"][0]
    assert tuple(lvdm_scale_arr().shape) == manifest["scale_arr"][0]  # 1400: the official fix_scale_bug=False
