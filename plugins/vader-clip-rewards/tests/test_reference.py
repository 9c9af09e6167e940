"""Each reward against its reference scoring code path, with the same (tiny) weights and the same image:
PIL / processor preprocessing and the libraries' own embedding calls, as the official scorers do."""

import pytest
import torch
from vader_clip_rewards import HPS, Aesthetic, ClipScore, PickScore

SIZES = [(320, 512), (512, 288)]
PROMPT = "a corgi running on the beach at sunset"


def _load(cls):
    r = cls()
    r.load_tiny("cpu", torch.float32, seed=5)
    return r


def _ours(r, x, prompt=PROMPT):
    with torch.no_grad():
        return r(x[:, None], [prompt])[0].item()  # one video of one frame


def _open_clip_preprocess(im):
    from open_clip.transform import image_transform

    return image_transform(224, is_train=False)(im)[None]  # open_clip's default: shortest side, centre crop


@pytest.mark.parametrize("hw", SIZES)
def test_aesthetic_matches_clip_preprocess_and_mlp(hw, image_tools):
    draw, to_tensor = image_tools
    im = draw(*hw, seed=11)
    r = _load(Aesthetic)
    with torch.no_grad():
        emb = r.visual(_open_clip_preprocess(im))
        ref = r.mlp(emb / emb.norm(dim=-1, keepdim=True)).item()
    assert _ours(r, to_tensor(im)) == pytest.approx(ref, rel=2e-3, abs=2e-4)


@pytest.mark.parametrize("hw", SIZES)
def test_hps_matches_hpsv2_scorer(hw, image_tools):
    import open_clip
    import torchvision.transforms.functional as TF
    from vader_clip_rewards._common import TINY_CLIP

    draw, to_tensor = image_tools
    im = draw(*hw, seed=12)
    r = _load(HPS)
    # hpsv2.score: ToTensor, long side to 224 + zero padding, normalise; model(image, text) -> diag(img @ txt.T)
    x = TF.to_tensor(im)
    h, w = x.shape[-2:]
    s = 224 / max(h, w)
    nh, nw = round(h * s), round(w * s)
    x = TF.resize(x, [nh, nw], TF.InterpolationMode.BICUBIC, antialias=True)
    x = TF.pad(x, [(224 - nw) // 2, (224 - nh) // 2, 224 - nw - (224 - nw) // 2, 224 - nh - (224 - nh) // 2])
    x = TF.normalize(x, r.spec.mean, r.spec.std)[None]
    tokens = open_clip.get_tokenizer(TINY_CLIP)([PROMPT])
    with torch.no_grad():
        img, txt, _ = r.model(x, tokens)
        ref = torch.diagonal(img @ txt.T).item()
    assert _ours(r, to_tensor(im)) == pytest.approx(ref, abs=1e-5)


def _features(out):
    # transformers 4 returns the projected tensor, transformers 5 an output object holding it
    return out if isinstance(out, torch.Tensor) else out.pooler_output


@pytest.mark.parametrize("hw", SIZES)
def test_pickscore_matches_the_model_card_recipe(hw, image_tools):
    from transformers import CLIPImageProcessor

    from vader_core.tokenizers import clip_tokenizer

    draw, to_tensor = image_tools
    im = draw(*hw, seed=13)
    r = _load(PickScore)
    m = r.model
    # the processor of laion/CLIP-ViT-H-14-laion2B-s32B-b79K (defaults of CLIPImageProcessor) and the CLIP BPE
    pixels = CLIPImageProcessor()(images=im, return_tensors="pt")["pixel_values"]
    text = clip_tokenizer()([PROMPT], padding=True, truncation=True, max_length=77, return_tensors="pt")
    with torch.no_grad():
        image_embs = _features(m.get_image_features(pixel_values=pixels))
        image_embs = image_embs / torch.norm(image_embs, dim=-1, keepdim=True)
        text_embs = _features(m.get_text_features(**text))
        text_embs = text_embs / torch.norm(text_embs, dim=-1, keepdim=True)
        ref = (m.logit_scale.exp() * (text_embs @ image_embs.T)[0]).item()
    assert _ours(r, to_tensor(im)) == pytest.approx(ref, rel=2e-3, abs=2e-3)


@pytest.mark.parametrize("hw", SIZES)
def test_clip_score_matches_open_clip(hw, image_tools):
    import open_clip
    from vader_clip_rewards._common import TINY_CLIP

    draw, to_tensor = image_tools
    im = draw(*hw, seed=14)
    r = _load(ClipScore)
    with torch.no_grad():
        img = r.model.encode_image(_open_clip_preprocess(im), normalize=True)
        txt = r.model.encode_text(open_clip.get_tokenizer(TINY_CLIP)([PROMPT]), normalize=True)
        ref = (img @ txt.T).item()
    assert _ours(r, to_tensor(im)) == pytest.approx(ref, abs=2e-3)


def test_frames_are_averaged_per_video():
    r = _load(HPS)
    v = torch.rand(1, 3, 3, 32, 48, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        per_frame = r.score_frames(v[0], [PROMPT] * 3)
        assert r(v, [PROMPT])[0].item() == pytest.approx(per_frame.mean().item(), abs=1e-6)
