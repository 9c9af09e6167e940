"""What the reward measures: lower when the detector is more confident in the target, equal to VADER's
official computation (transformers' post-processing) with ``temperature: 0``, soft near the threshold
otherwise, differentiable to the pixels, and able to remove the object by gradient ascent."""

import numpy as np
import pytest
import torch
from vader_detection_rewards import ObjectRemoval
from vader_detection_rewards.preprocess import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, resize_square


def _colour(*rgb):
    return torch.tensor(rgb).view(3, 1, 1).expand(3, 40, 64)


# Black, white, noise, red, blue, half black / half white: the tiny detectors see the target in some
# of them and not in others.
FRAMES = torch.stack(
    [
        _colour(0.0, 0.0, 0.0),
        _colour(1.0, 1.0, 1.0),
        torch.rand(3, 40, 64, generator=torch.Generator().manual_seed(0)),
        _colour(1.0, 0.0, 0.0),
        _colour(0.0, 0.0, 1.0),
        torch.cat([torch.zeros(3, 40, 32), torch.ones(3, 40, 32)], dim=-1),
    ]
)


def _loaded(model, **opts):
    r = ObjectRemoval(ObjectRemoval.Options(model=str(model), **opts))
    r.load("cpu", torch.float32)
    return r


def _reward(r, frames=FRAMES):
    with torch.no_grad():
        return r.score_frames(frames, [""] * len(frames))


def _bias_yolos(r, label_id, value):
    with torch.no_grad():
        r.model.class_labels_classifier.layers[-1].bias[label_id] += value


# ----------------------------------------------------------------------------------- the class logit
def test_reward_falls_as_the_target_logit_rises_yolos(saved):
    r = _loaded(saved.yolos_coco)  # COCO labels, default options: target `book` (84), threshold 0.2
    rewards = [_reward(r).mean().item()]
    for _ in range(4):
        _bias_yolos(r, 84, 2.5)
        rewards.append(_reward(r).mean().item())
    assert rewards[0] == 1.0  # a random detector sees no book
    assert all(b <= a + 1e-6 for a, b in zip(rewards, rewards[1:], strict=False)), rewards
    assert rewards[-1] < 0.5, rewards
    # only the target counts: raising another class (dog, 18) hides the book again
    _bias_yolos(r, 18, 20.0)
    assert _reward(r).mean().item() == 1.0


def test_reward_falls_as_the_query_logit_rises_owlvit(saved):
    r = _loaded(saved.owlvit, target="a red umbrella")
    rewards = []
    for _ in range(4):
        rewards.append(_reward(r).mean().item())
        with torch.no_grad():
            r.model.class_head.logit_shift.bias += 1.0
    assert all(b < a for a, b in zip(rewards, rewards[1:], strict=False)), rewards


def test_the_text_matters_owlvit(saved):
    a = _reward(_loaded(saved.owlvit, target="a red umbrella", temperature=0.5, threshold=0.0))
    b = _reward(_loaded(saved.owlvit, target="a photo of a book", temperature=0.5, threshold=0.0))
    assert not torch.allclose(a, b)


# ------------------------------------------------------------------------------- the official numbers
def _official_yolos(model, frames, target_id, threshold):
    """VADER's objectDetection_loss_fn, per image: torchvision resize to height 512, ImageNet normalisation,
    transformers' post-processing, the mean score of the target's detections (0 without any)."""
    import torchvision
    from transformers import YolosImageProcessor

    h, w = frames.shape[-2:]
    images = torchvision.transforms.Resize((512, 512 * w // h), antialias=False)(frames)
    images = torchvision.transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)(images)
    with torch.no_grad():
        outputs = model(pixel_values=images)
    results = YolosImageProcessor().post_process_object_detection(
        outputs, threshold=threshold, target_sizes=[images.shape[-2:]] * len(images)
    )
    out = []
    for res in results:
        scores = res["scores"][res["labels"] == target_id]
        out.append(scores.mean().item() if len(scores) else 0.0)
    return torch.tensor(out)


@pytest.mark.parametrize("threshold,bias", [(0.2, 0.0), (0.22, 0.0), (0.5, 1.2)])
def test_temperature_zero_is_the_official_computation(saved, threshold, bias):
    r = _loaded(saved.yolos_small, target="book", threshold=threshold, temperature=0.0)
    _bias_yolos(r, 1, bias)
    with torch.no_grad():
        ours = r.confidence(FRAMES)
    ref = _official_yolos(r.model, FRAMES, 1, threshold)
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-5)
    assert (ref > 0).any() and (ref == 0).any(), ref  # frames with and without detections
    torch.testing.assert_close(_reward(r), 1 - ref, atol=1e-6, rtol=1e-5)


def test_soft_threshold_tends_to_the_hard_one(saved):
    hard = _reward(_loaded(saved.yolos_small, temperature=0.0))
    near = _reward(_loaded(saved.yolos_small, temperature=1e-5))
    soft = _reward(_loaded(saved.yolos_small))
    torch.testing.assert_close(near, hard, atol=2e-3, rtol=0)
    assert not torch.allclose(soft, hard)
    assert ((soft >= 0) & (soft <= 1)).all()


def test_top_class_only_follows_the_post_processing(saved):
    r = _loaded(saved.yolos_small, temperature=0.0, threshold=0.15)
    loose = _loaded(saved.yolos_small, temperature=0.0, threshold=0.15, top_class_only=False)
    with torch.no_grad():
        p, top = r.detector(FRAMES, "cpu", torch.float32)
    assert top.any() and not top.all()
    torch.testing.assert_close(r.confidence(FRAMES), _official_yolos(r.model, FRAMES, 1, 0.15), atol=1e-6, rtol=1e-5)
    with torch.no_grad():
        expected = torch.where(p > 0.15, p, 0).sum(-1) / (p > 0.15).sum(-1).clamp(min=1)
        torch.testing.assert_close(loose.confidence(FRAMES), expected)


def test_official_owlvit_scores(saved):
    """OWL-ViT with ``temperature: 0``: the mean of transformers' ``post_process_object_detection`` scores."""
    from transformers import OwlViTImageProcessor

    r = _loaded(saved.owlvit, target="a red umbrella", temperature=0.0, threshold=0.3)
    x = (resize_square(FRAMES, 96) - torch.tensor(CLIP_MEAN).view(3, 1, 1)) / torch.tensor(CLIP_STD).view(3, 1, 1)
    n = len(FRAMES)
    with torch.no_grad():
        out = r.model(
            input_ids=r.detector.input_ids.expand(n, -1),
            attention_mask=r.detector.attention_mask.expand(n, -1),
            pixel_values=x,
        )
        ours = r.confidence(FRAMES)
    results = OwlViTImageProcessor().post_process_object_detection(out, threshold=0.3)
    ref = torch.tensor([res["scores"].mean().item() if len(res["scores"]) else 0.0 for res in results])
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-5)
    assert (ref > 0).any()


# ----------------------------------------------------------------------------------- preprocessing
def _drawn(h, w, seed=0):
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([0.5 + 0.5 * np.sin(3 * xx + 1), 0.5 + 0.5 * np.cos(2 * yy + xx), (xx + yy) / 2], -1)
    im = Image.fromarray((base * 255).round().astype(np.uint8))
    d = ImageDraw.Draw(im)
    for i in range(8):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(3, w // 2)), y0 + int(rng.integers(3, h // 2))
        (d.ellipse if i % 2 else d.rectangle)((x0, y0, x1, y1), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    return im


@pytest.mark.parametrize("h,w", [(320, 512), (576, 1024), (384, 384), (32, 48)])
def test_owlvit_preprocessing_matches_the_image_processor(h, w):
    """Our tensor path against transformers' OwlViTImageProcessor (768x768, bicubic, CLIP mean/std), in
    [0, 1] pixel units: only the 8-bit rounding of the processor separates them."""
    from transformers import OwlViTImageProcessor

    im = _drawn(h, w)
    ref = OwlViTImageProcessor()(images=im, return_tensors="pt")["pixel_values"]
    frame = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    ours = (resize_square(frame, 768) - torch.tensor(CLIP_MEAN).view(3, 1, 1)) / torch.tensor(CLIP_STD).view(3, 1, 1)
    diff = ((ours - ref) * torch.tensor(CLIP_STD).view(3, 1, 1)).abs()
    assert ref.shape == ours.shape == (1, 3, 768, 768)
    assert diff.mean() < 2e-3, diff.mean()


def test_owlvit_tokens_match_the_processor(saved):
    from transformers import OwlViTImageProcessor, OwlViTProcessor
    from vader_detection_rewards.owlvit import tiny_tokenizer

    r = _loaded(saved.owlvit, target="a red umbrella")
    proc = OwlViTProcessor(image_processor=OwlViTImageProcessor(), tokenizer=tiny_tokenizer())
    ref = proc(text=["a red umbrella"], return_tensors="pt")
    assert torch.equal(r.detector.input_ids, ref["input_ids"])
    assert torch.equal(r.detector.attention_mask, ref["attention_mask"])


# ------------------------------------------------------------------------------------------ gradient
def test_gradient_reaches_the_pixels_when_the_target_is_seen(saved):
    r = _loaded(saved.yolos_coco)
    _bias_yolos(r, 84, 6.0)
    frames = FRAMES.clone().requires_grad_(True)
    reward = r.score_frames(frames, [""] * len(frames))
    assert (reward < 1).all()
    reward.sum().backward()
    assert torch.isfinite(frames.grad).all() and (frames.grad.flatten(1).abs().sum(1) > 0).all()


def test_nothing_detected(saved):
    """Hard threshold: reward exactly 1 and no gradient (the official behaviour); soft threshold: slots just
    below the threshold still give a (small) gradient."""
    frames = FRAMES.clone().requires_grad_(True)
    hard = _loaded(saved.yolos_small, threshold=0.5, temperature=0.0)
    out = hard.score_frames(frames, [""] * len(frames))
    assert (out == 1).all()
    out.sum().backward()
    assert frames.grad is None or frames.grad.abs().sum() == 0
    frames.grad = None
    soft = _loaded(saved.yolos_small, threshold=0.3)
    out = soft.score_frames(frames, [""] * len(frames))
    assert (out < 1).sum() >= 4 and (out > 0.9).all()  # the blue frame has no slot whose best class is `book`
    out.sum().backward()
    assert frames.grad.abs().sum() > 0


def test_gradient_ascent_on_the_pixels_removes_the_object(saved):
    """Default options: the detector sees a book in two noise frames; a few Adam steps on the pixels, along
    the reward gradient, and it sees none (reward 1)."""
    r = _loaded(saved.yolos_small)
    frames = torch.rand(2, 3, 40, 64, generator=torch.Generator().manual_seed(0))
    logit = torch.logit(frames.clamp(0.01, 0.99)).requires_grad_(True)
    opt = torch.optim.Adam([logit], lr=1.0)
    rewards = []
    for _ in range(3):
        reward = r.score_frames(logit.sigmoid(), ["", ""]).mean()
        rewards.append(reward.item())
        opt.zero_grad()
        (-reward).backward()
        opt.step()
    rewards.append(_reward(r, logit.sigmoid().detach()).mean().item())
    assert rewards[0] < 0.9 and rewards[-1] > 0.99, rewards


@pytest.mark.parametrize("which", ["yolos_small", "owlvit"])
def test_gradient_checkpointing_gives_the_same_gradient(saved, which):
    opts = {"target": "book"}
    grads = []
    for ckpt in (False, True):
        r = _loaded(getattr(saved, which), gradient_checkpointing=ckpt, temperature=0.1, **opts)
        frames = FRAMES[:3].clone().requires_grad_(True)
        r.score_frames(frames, [""] * 3).sum().backward()
        grads.append(frames.grad)
        assert not any(m.training for m in r.model.modules() if isinstance(m, torch.nn.Dropout))
    torch.testing.assert_close(grads[0], grads[1], atol=1e-6, rtol=1e-4)
    assert grads[0].abs().sum() > 0


def test_detr_checkpoints_take_the_same_path(tmp_path):
    """DETR (same head convention: softmax with a no-object class) loads with `detector: auto`, matches
    transformers' DETR post-processing with `temperature: 0`, and checkpoints its `layers`."""
    from transformers import DetrConfig, DetrForObjectDetection, DetrImageProcessor, ResNetConfig
    from vader_detection_rewards._common import spread_init

    from vader_core.modules import seeded

    backbone = ResNetConfig(
        embedding_size=8, hidden_sizes=[8, 16, 16, 32], depths=[1, 1, 1, 1], out_features=["stage4"]
    )
    cfg = DetrConfig(
        use_timm_backbone=False,
        use_pretrained_backbone=False,
        backbone_config=backbone,
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        num_queries=8,
        id2label={0: "book", 1: "dog"},
        label2id={"book": 0, "dog": 1},
    )
    with seeded(0):
        spread_init(DetrForObjectDetection(cfg)).save_pretrained(tmp_path / "detr")
    r = _loaded(tmp_path / "detr", temperature=0.0, threshold=0.3)
    assert r.kind == "yolos" and type(r.model).__name__ == "DetrForObjectDetection"
    with torch.no_grad():
        r.model.class_labels_classifier.bias[0] += 2.5  # let it see a book (no-object wins otherwise)
    frames = FRAMES.clone().requires_grad_(True)
    r.score_frames(frames, [""] * len(frames)).sum().backward()
    assert torch.isfinite(frames.grad).all()
    x = torch.nn.functional.interpolate(FRAMES, size=(512, 512 * 64 // 40), mode="bilinear", align_corners=False)
    x = (x - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)
    with torch.no_grad():
        results = DetrImageProcessor().post_process_object_detection(r.model(pixel_values=x), threshold=0.3)
        ours = r.confidence(FRAMES)
    ref = torch.tensor(
        [res["scores"][res["labels"] == 0].mean().item() if (res["labels"] == 0).any() else 0.0 for res in results]
    )
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-5)
    assert (ref > 0).any()
    ckpt = _loaded(tmp_path / "detr", gradient_checkpointing=True)
    assert all(layer.training for layer in ckpt.model.base_model.encoder.layers)
