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
MEASURED = {}  # filled by the comparison tests (for -s printing)


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
        proc = proc_cls(
            size={"shortest_edge": 224},
            crop_size={"height": 224, "width": 224},
            resample=3,
            image_mean=list(CLIP_MEAN),
            image_std=list(CLIP_STD),
        )
        ref = _unnorm(proc(images=im, return_tensors="pt")["pixel_values"][0])
        mad = _mad(ours, ref)
        MEASURED[(proc_cls.__name__, "shortest", hw)] = mad
        assert mad < TOL, proc_cls.__name__


def _resample_matrix(n_in, n_out, kernel, support):
    """Weights (n_out, n_in) of PIL's separable antialiased resampling (what torchvision's tensor
    ``resize(..., antialias=True)`` implements), written from its published algorithm in float64: each
    output pixel centre (i + 0.5) * n_in / n_out, the kernel stretched by the downscale factor, taps cut
    at the border and the weights renormalised."""
    import numpy as np

    scale = n_in / n_out
    fs = max(scale, 1.0)
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        center = (i + 0.5) * scale
        lo, hi = max(int(center - support * fs + 0.5), 0), min(int(center + support * fs + 0.5), n_in)
        w = np.array([kernel((j - center + 0.5) / fs) for j in range(lo, hi)])
        m[i, lo:hi] = w / w.sum()
    return m


def _cubic(x, a=-0.5):  # PIL's bicubic (Keys, a = -0.5)
    x = abs(x)
    if x < 1:
        return ((a + 2) * x - (a + 3)) * x * x + 1
    if x < 2:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


def _triangle(x):  # bilinear
    x = abs(x)
    return 1.0 - x if x < 1 else 0.0


def _formula_resize(x, size, how):
    import numpy as np

    kernel, support = (_cubic, 2.0) if how == "bicubic" else (_triangle, 1.0)
    a = np.asarray(x, dtype=np.float64)
    mh = _resample_matrix(a.shape[-2], size[0], kernel, support)
    mw = _resample_matrix(a.shape[-1], size[1], kernel, support)
    return torch.from_numpy(mh @ a @ mw.T).float()  # (c, h, w): rows, then columns


def _hpsv2_reference(im):
    """HPSv2's scorer transform from its published steps, by formula: ToTensor, resize the long side to
    224 (bicubic, antialiased) keeping the ratio (round(dim * 224 / max)), pad left/top by half the
    deficit (floor) with 0. No torchvision call: the resize is :func:`_formula_resize`."""
    import numpy as np

    x = np.asarray(im, dtype=np.float64).transpose(2, 0, 1) / 255.0
    h, w = x.shape[-2:]
    scale = 224 / float(max(h, w))
    if scale == 1.0:
        return torch.from_numpy(x).float()
    nh, nw = round(h * scale), round(w * scale)
    y = _formula_resize(x, (nh, nw), "bicubic")
    ph, pw = 224 - nh, 224 - nw
    return torch.nn.functional.pad(y, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))


@pytest.mark.parametrize("hw", SIZES, ids=ids)
def test_matches_hpsv2_scorer_transform(hw, image_tools):
    draw, to_tensor = image_tools
    im = draw(*hw, seed=2 + hash(hw) % 1000)
    ours = resize_to_input(to_tensor(im), ImageSpec(resize_mode="longest", clamp=False))[0]
    mad = _mad(ours, _hpsv2_reference(im))
    MEASURED[("hpsv2", "longest", hw)] = mad
    assert mad < 1e-5  # float32 against the float64 formula


@pytest.mark.parametrize("hw", [(320, 512), (576, 1024), (32, 48)], ids=["320x512", "576x1024", "32x48"])
def test_squash_is_vaders_bilinear_resize(hw, image_tools):
    """VADER's aesthetic/HPS losses: ``torchvision.transforms.Resize((224, 224))`` on float frames, whose
    default filter is bilinear (antialiased on tensors); the rewards' `squash` follows that formula."""
    from vader_clip_rewards import HPS, Aesthetic, PickScore

    draw, to_tensor = image_tools
    im = draw(*hw, seed=11)
    x = to_tensor(im)
    ref = _formula_resize(x[0].double().numpy(), (224, 224), "bilinear")
    for cls in (Aesthetic, HPS, PickScore):
        r = cls(cls.Options(resize_mode="squash"))
        r.load_tiny("cpu", torch.float32)
        assert r.spec.interpolation == "bilinear", cls.name
        ours = resize_to_input(x, r.spec)[0]
        assert _mad(ours, ref) < 1e-5, cls.name
    bicubic = resize_to_input(x, ImageSpec(resize_mode="squash", interpolation="bicubic"))[0]
    assert _mad(bicubic, ref) > 1e-4  # the filter matters: the old bicubic squash is measurably off


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


#: Mean and worst mean-absolute differences per reference, as measured when the preprocessing was
#: written and quoted in the README (stored, not recomputed: a change in ours or in a reference shows).
STORED = {
    ("open_clip", "shortest"): (6.3e-4, 1.0e-3),
    ("open_clip", "longest"): (5.4e-4, 7.6e-4),
    ("open_clip", "squash"): (7.3e-4, 1.1e-3),
    ("transformers", "shortest"): (7.0e-4, 1.1e-3),
    ("hpsv2", "longest"): (0.0, 0.0),
}


def test_measured_differences_match_the_stored_ones(image_tools):
    """Measures every reference on every size in this test (not from the other tests' side effects,
    which pytest-xdist spreads over processes) and compares with :data:`STORED` (the README's table)."""
    from open_clip.transform import image_transform

    draw, to_tensor = image_tools
    got = {}
    for hw in SIZES:
        for mode in ("shortest", "longest", "squash"):
            im = draw(*hw, seed=hash(hw) % 1000)
            ref = _unnorm(image_transform(224, is_train=False, resize_mode=mode)(im))
            ours = resize_to_input(to_tensor(im), ImageSpec(resize_mode=mode))[0]
            got.setdefault(("open_clip", mode), []).append(_mad(ours, ref))
        im = draw(*hw, seed=1 + hash(hw) % 1000)
        ours = resize_to_input(to_tensor(im), ImageSpec(crop_offset="floor"))[0]
        proc = _transformers_processors()[0](
            size={"shortest_edge": 224},
            crop_size={"height": 224, "width": 224},
            resample=3,
            image_mean=list(CLIP_MEAN),
            image_std=list(CLIP_STD),
        )
        got.setdefault(("transformers", "shortest"), []).append(
            _mad(ours, _unnorm(proc(images=im, return_tensors="pt")["pixel_values"][0]))
        )
        im = draw(*hw, seed=2 + hash(hw) % 1000)
        ours = resize_to_input(to_tensor(im), ImageSpec(resize_mode="longest", clamp=False))[0]
        got.setdefault(("hpsv2", "longest"), []).append(_mad(ours, _hpsv2_reference(im)))
    for key, (mean, worst) in STORED.items():
        vals = got[key]
        m, w = sum(vals) / len(vals), max(vals)
        print(f"{key[0]:14s} {key[1]:9s} mean {m:.2e} (stored {mean:.1e}) worst {w:.2e} (stored {worst:.1e})")
        # two significant digits stored; the float64 formula reference leaves float32 rounding only
        assert abs(m - mean) <= max(0.06 * mean, 2e-6), (key, m, mean)
        assert abs(w - worst) <= max(0.06 * worst, 2e-6), (key, w, worst)
