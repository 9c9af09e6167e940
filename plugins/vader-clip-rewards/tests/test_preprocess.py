"""Our tensor preprocessing against the reference pipelines, on the same real-looking images.

References: open_clip's ``preprocess`` (PIL), the transformers ``CLIPImageProcessor`` (all its
backends installed), and HPSv2's scorer transform (ToTensor, torchvision resize of the long side,
zero padding), rebuilt here from its published steps. Differences are compared in [0, 1] pixel
units (the references are un-normalised first).
"""

import pytest
import torch

from vader_clip_rewards.preprocess import CLIP_MEAN, CLIP_STD, ImageSpec, normalize, preprocess, resize_to_input

# (height, width): video sizes of the paper's backbones, portrait and landscape, an odd crop
# excess (225x301 -> 224x299), and a tiny frame that has to be upscaled.
SIZES = [(320, 512), (512, 320), (576, 1024), (240, 426), (384, 384), (480, 353), (225, 301), (32, 48)]
ids = [f"{h}x{w}" for h, w in SIZES]
MEAN = torch.tensor(CLIP_MEAN).view(3, 1, 1)
STD = torch.tensor(CLIP_STD).view(3, 1, 1)
TOL = 1e-2  # mean absolute difference, [0, 1] units
MEASURED = {}


def _mad(a, b):
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().mean().item()


def _unnorm(x):
    return x * STD + MEAN


@pytest.mark.parametrize("mode", ["shortest", "longest", "squash"])
@pytest.mark.parametrize("hw", SIZES, ids=ids)
def test_matches_open_clip_preprocess(hw, mode, image_tools):
    from open_clip.transform import image_transform

    draw, to_tensor = image_tools
    im = draw(*hw, seed=hash(hw) % 1000)
    ref = _unnorm(image_transform(224, is_train=False, resize_mode=mode)(im))
    ours = resize_to_input(to_tensor(im), ImageSpec(resize_mode=mode))[0]
    mad = _mad(ours, ref)
    MEASURED[("open_clip", mode, hw)] = mad
    assert mad < TOL


def _transformers_processors():
    import transformers

    # transformers 4: the PIL processor and a torchvision "Fast" one; 5: torchvision by default and "Pil"
    major = int(transformers.__version__.split(".")[0])
    names = ["CLIPImageProcessor", "CLIPImageProcessorPil" if major >= 5 else "CLIPImageProcessorFast"]
    return [getattr(transformers, n) for n in names if hasattr(transformers, n)]


@pytest.mark.parametrize("hw", SIZES, ids=ids)
def test_matches_transformers_clip_image_processor(hw, image_tools):
    draw, to_tensor = image_tools
    im = draw(*hw, seed=1 + hash(hw) % 1000)
    ours = resize_to_input(to_tensor(im), ImageSpec(crop_offset="floor"))[0]
    procs = _transformers_processors()
    assert procs
    for proc_cls in procs:
        # laion/CLIP-ViT-H-14-laion2B-s32B-b79K's processor: shortest_edge 224, crop 224, bicubic, CLIP mean/std
        proc = proc_cls(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}, resample=3,
                        image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD))
        ref = _unnorm(proc(images=im, return_tensors="pt")["pixel_values"][0])
        mad = _mad(ours, ref)
        MEASURED[(proc_cls.__name__, "shortest", hw)] = mad
        assert mad < TOL, proc_cls.__name__


def _hpsv2_reference(im):
    """HPSv2's scorer transform: ToTensor, resize the long side to 224 (bicubic) keeping the ratio
    (round(dim * 224 / max)), pad left/top by half the deficit (floor) with 0, then normalise."""
    import torchvision.transforms.functional as TF

    x = TF.to_tensor(im)
    h, w = x.shape[-2:]
    scale = 224 / float(max(h, w))
    if scale != 1.0:
        nh, nw = round(h * scale), round(w * scale)
        x = TF.resize(x, [nh, nw], TF.InterpolationMode.BICUBIC, antialias=True)
        ph, pw = 224 - nh, 224 - nw
        x = TF.pad(x, [pw // 2, ph // 2, pw - pw // 2, ph - ph // 2], fill=0)
    return x


@pytest.mark.parametrize("hw", SIZES, ids=ids)
def test_matches_hpsv2_scorer_transform(hw, image_tools):
    draw, to_tensor = image_tools
    im = draw(*hw, seed=2 + hash(hw) % 1000)
    ours = resize_to_input(to_tensor(im), ImageSpec(resize_mode="longest", clamp=False))[0]
    mad = _mad(ours, _hpsv2_reference(im))
    MEASURED[("hpsv2", "longest", hw)] = mad
    assert mad < 1e-5  # the same float resize on the same tensor


def test_crop_offset_conventions_are_real(image_tools):
    """With an odd crop excess, each reference is matched by its own offset rule and not by the other."""
    from open_clip.transform import image_transform
    from transformers import CLIPImageProcessor

    draw, to_tensor = image_tools
    im = draw(225, 301, seed=7)  # long side 299 after resizing: 75 columns to crop
    x = to_tensor(im)
    ref_oc = _unnorm(image_transform(224, is_train=False)(im))
    ref_hf = _unnorm(CLIPImageProcessor()(images=im, return_tensors="pt")["pixel_values"][0])
    rnd = resize_to_input(x, ImageSpec(crop_offset="round"))[0]
    flo = resize_to_input(x, ImageSpec(crop_offset="floor"))[0]
    assert _mad(rnd, ref_oc) < 0.5 * _mad(flo, ref_oc)
    assert _mad(flo, ref_hf) < 0.5 * _mad(rnd, ref_hf)


def test_differentiable_and_normalised():
    x = torch.rand(2, 3, 40, 64, requires_grad=True)
    spec = ImageSpec()
    y = preprocess(x, spec)
    assert y.shape == (2, 3, 224, 224) and y.dtype == torch.float32
    y.sum().backward()
    assert x.grad is not None and (x.grad != 0).any()
    z = torch.rand(1, 3, 224, 224)
    torch.testing.assert_close(preprocess(z, spec), normalize(z, spec))  # 224x224 input: no resampling
    torch.testing.assert_close(normalize(z, spec)[0], (z[0] - MEAN) / STD)


def test_longest_pads_with_black_and_keeps_content_centred():
    x = torch.ones(1, 3, 100, 200)
    y = resize_to_input(x, ImageSpec(resize_mode="longest"))
    assert y.shape == (1, 3, 224, 224)
    assert (y[0, :, :56] == 0).all() and (y[0, :, 168:] == 0).all()
    torch.testing.assert_close(y[0, :, 56:168], torch.ones(3, 112, 224))


def test_reward_specs_follow_their_references():
    from vader_clip_rewards import HPS, Aesthetic, ClipScore, PickScore

    specs = {}
    for cls in (Aesthetic, HPS, PickScore, ClipScore):
        r = cls()
        r.load_tiny("cpu", torch.float32)
        specs[cls.name] = r.spec
    assert specs["aesthetic"] == ImageSpec(resize_mode="shortest", crop_offset="round", clamp=True)
    assert specs["hps"] == ImageSpec(resize_mode="longest", clamp=False)
    assert specs["pickscore"] == ImageSpec(resize_mode="shortest", crop_offset="floor", clamp=True)
    assert specs["clip_score"] == ImageSpec(resize_mode="shortest", crop_offset="round", clamp=True)


def test_report_measured_differences():
    """Prints the measured mean absolute differences (run with -s); the README quotes them."""
    if not MEASURED:
        pytest.skip("run with the comparison tests")
    by_ref = {}
    for (ref, mode, _), mad in MEASURED.items():
        by_ref.setdefault((ref, mode), []).append(mad)
    for (ref, mode), vals in sorted(by_ref.items()):
        print(f"{ref:24s} {mode:9s} mean {sum(vals) / len(vals):.2e} max {max(vals):.2e} over {len(vals)} images")
