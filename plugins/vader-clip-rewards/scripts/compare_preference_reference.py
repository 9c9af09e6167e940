"""Agreement of ``mps`` and ``image_reward`` with the authors' own inference code, on real images and random
weights of the real architectures saved in the released formats.

Neither the authors' code nor their dependencies are part of this repository. Set up once (each in its own
environment, with the versions the authors pin; torch is the project's, which they do not pin)::

    git clone https://github.com/Kwai-Kolors/MPS /tmp/i26ref/MPS            # at be9027f
    git clone https://github.com/THUDM/ImageReward /tmp/i26ref/ImageReward  # at c1392c6
    python -m venv /tmp/i26ref/venv-mps && /tmp/i26ref/venv-mps/bin/pip install transformers==4.27.3 \\
        huggingface_hub==0.13.4 tokenizers==0.13.3 einops "numpy<2"
    python -m venv /tmp/i26ref/venv-ir && /tmp/i26ref/venv-ir/bin/pip install transformers==4.27.4 \\
        huggingface_hub==0.13.4 tokenizers==0.13.3 timm==0.6.13 fairscale==0.4.13 "numpy<2"
    # torch for both: a .pth file in each venv's site-packages naming this project's .venv site-packages
    python plugins/vader-clip-rewards/scripts/compare_preference_reference.py mps \\
        --official /tmp/i26ref/MPS --python /tmp/i26ref/venv-mps/bin/python
    python plugins/vader-clip-rewards/scripts/compare_preference_reference.py image_reward \\
        --official /tmp/i26ref/ImageReward --python /tmp/i26ref/venv-ir/bin/python

What each side runs, on the same random weights (seeded, written by this script):

* ``mps``: the authors' ``trainer.models.clip_model.CLIPModel`` (their ``XCLIPModel`` from a CLIP config with
  small towers but the real 224/14 input and 1024-wide projection, and their real ``Cross_model(1024, 4, 16)``),
  made fp16 and saved whole with ``torch.save(model)`` as ``MPS_overall_checkpoint.pth`` is, read back with
  ``torch.load`` as their README does, then their ``infer_one_sample`` (``eval_overall_mps_on_hpdv2.py``) with
  ``CLIPImageProcessor`` and the CLIP tokenizer on each PIL image: once as released (fp16), once with every
  ``.half()`` turned into ``.float()`` (the same code in fp32). vader reads the same pickle
  (``allow_pickle: true``, no class of theirs imported) and scores the image as a decoded frame.
* ``image_reward``: the authors' ``ImageReward`` module (BLIP ViT-L/16 and BERT-base at their real sizes), its
  state dict saved as ``ImageReward.pt`` and loaded with their ``load_state_dict(strict=False)``, then their
  ``score(prompt, pil_image)``. Their tokenizer is ``BertTokenizer.from_pretrained('bert-base-uncased')``; with no
  network, a local ``bert-base-uncased`` folder holds a stand-in vocabulary of the real size (BERT's special
  tokens at their real ids, the prompt's words, ``[unused]`` fill), read by both sides. The random weights are
  drawn with std 0.05 instead of BLIP's 0.02, which leaves the score deaf to the image.

Printed, per image: the official score(s), vader's score from the frame (its differentiable resize) and from
the official preprocessed pixels (the model alone), and the largest absolute and relative differences.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import types
from pathlib import Path

SEED = 0
PROMPTS = [
    "a painting of an ocean with clouds and birds, day time, low depth field effect",
    "a woman in a military uniform, portrait photo",
    "a red circle moving left on a gray background",
]


# ----------------------------------------------------------------------------------------------- inputs
def images() -> list[tuple[str, object]]:
    """Real images: a photograph shipped with matplotlib, frames the bundled toy model generated (the
    README's before/after GIF) and the README's eval grid; RGB, of several sizes and aspect ratios
    (sizes named height x width)."""
    import matplotlib.cbook
    from PIL import Image

    root = Path(__file__).resolve().parents[3]
    out = []
    photo = Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")).convert("RGB")
    out.append(("grace_hopper.jpg (600x512)", photo))
    out.append(("grace_hopper.jpg, 296x512 crop (the aspect of 480x832)", photo.crop((0, 150, 512, 446))))
    gif = Image.open(root / "docs/img/demo-toy-before-after.gif")
    for i in (0, 5):
        gif.seek(i)
        out.append((f"toy model frame {i} (demo-toy-before-after.gif, 384x198)", gif.convert("RGB")))
    grid = Image.open(root / "docs/img/demo-toy-eval-grid.png").convert("RGB")
    out.append(("demo-toy-eval-grid.png (704x1771)", grid))
    return out


def save_images(work: Path) -> list[dict[str, str]]:
    items = []
    for i, (name, im) in enumerate(images()):
        path = work / f"image{i}.png"
        im.save(path)
        items.append({"name": name, "path": str(path), "prompt": PROMPTS[i % len(PROMPTS)]})
    return items


def as_frame(path: str):  # noqa: ANN201
    """A PNG as a decoded frame: ``(1, 3, H, W)`` float32 in [0, 1] from its 8-bit values."""
    import numpy as np
    import torch
    from PIL import Image

    x = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(x).permute(2, 0, 1)[None]


# ----------------------------------------------------------------------------------------------- MPS
def mps_reference_config():  # noqa: ANN201
    """CLIP config of the comparison: small towers, the real 224/14 input, 77 tokens and 1024-wide projection
    (the authors' ``Cross_model`` is fixed at dim 1024)."""
    from transformers import CLIPConfig

    return CLIPConfig(
        text_config={
            "vocab_size": 49408,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_attention_heads": 4,
            "num_hidden_layers": 2,
            "max_position_embeddings": 77,
            "hidden_act": "gelu",
            "eos_token_id": 49407,
        },
        vision_config={
            "image_size": 224,
            "patch_size": 14,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_attention_heads": 4,
            "num_hidden_layers": 2,
            "hidden_act": "gelu",
        },
        projection_dim=1024,
    )


def _use_mps_reference_architecture() -> None:
    # the reward's `architecture: tiny` is made the comparison's: the real cross-attention module
    from vader_clip_rewards import mps as mps_mod

    mps_mod.tiny_config = mps_reference_config
    mps_mod.CROSS_TINY = dict(mps_mod.CROSS_H)


def _write_clip_tokenizer_and_processor(d: Path) -> None:
    """The files of ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K`` the authors load: CLIP's BPE (vocab.json,
    merges.txt, padded with <|endoftext|>) and the CLIPImageProcessor configuration (its defaults)."""
    import gzip

    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    d.mkdir(parents=True, exist_ok=True)
    lines = gzip.open(default_bpe()).read().decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    (d / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (d / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}
    special["pad_token"] = "<|endoftext|>"
    (d / "special_tokens_map.json").write_text(json.dumps(special))
    (d / "tokenizer_config.json").write_text(
        json.dumps({**special, "model_max_length": 77, "tokenizer_class": "CLIPTokenizer", "do_lower_case": True})
    )
    (d / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "crop_size": 224,
                "do_center_crop": True,
                "do_normalize": True,
                "do_resize": True,
                "feature_extractor_type": "CLIPFeatureExtractor",
                "image_mean": [0.48145466, 0.4578275, 0.40821073],
                "image_std": [0.26862954, 0.26130258, 0.27577711],
                "resample": 3,
                "size": 224,
            }
        )
    )


def prepare_mps(work: Path) -> None:
    import torch
    from vader_clip_rewards import mps as mps_mod

    _use_mps_reference_architecture()
    clip, cross = mps_mod.tiny_model(SEED)
    (work / "clip").mkdir(parents=True, exist_ok=True)
    config = clip.config.to_dict()
    config = {k: v for k, v in config.items() if k in ("text_config", "vision_config", "projection_dim")}
    for sub in ("text_config", "vision_config"):
        keep = ("vocab_size", "hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers")
        keep += ("max_position_embeddings", "hidden_act", "image_size", "patch_size", "layer_norm_eps")
        config[sub] = {k: v for k, v in config[sub].items() if k in keep}
    config |= {"architectures": ["CLIPModel"], "model_type": "clip", "logit_scale_init_value": 2.6592}
    (work / "clip" / "config.json").write_text(json.dumps(config, indent=1))
    torch.save(clip.state_dict(), work / "clip" / "pytorch_model.bin")
    state = {f"model.{k}": v for k, v in clip.state_dict().items()}
    state |= {f"cross_model.{k}": v for k, v in cross.state_dict().items()}
    torch.save(state, work / "mps_state.pt")
    _write_clip_tokenizer_and_processor(work / "processor")


def official_mps(official: Path, work: Path) -> None:
    """Runs in the authors' environment: their classes, their README's loading, their ``infer_one_sample``."""
    import importlib.util

    import torch
    from PIL import Image

    sys.path.insert(0, str(official))
    for name in ("fire", "cv2"):  # imported by the evaluation script, unused by infer_one_sample
        sys.modules[name] = types.ModuleType(name)
    sys.modules["fire"].Fire = None
    spec = importlib.util.spec_from_file_location("eval_mps", official / "eval_overall_mps_on_hpdv2.py")
    evaluation = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(evaluation)
    from trainer.models.clip_model import CLIPModel
    from transformers import AutoTokenizer, CLIPImageProcessor

    model = CLIPModel(str(work / "clip"))
    missing, unexpected = model.load_state_dict(torch.load(work / "mps_state.pt"), strict=False)
    assert not unexpected and all(k.endswith("position_ids") for k in missing), (missing, unexpected)
    torch.save(model.half(), work / "MPS_overall_checkpoint.pth")
    model = torch.load(work / "MPS_overall_checkpoint.pth", weights_only=False)  # README: torch.load(path)
    model.eval()
    processor = CLIPImageProcessor.from_pretrained(work / "processor")
    tokenizer = AutoTokenizer.from_pretrained(work / "processor")
    items = json.loads((work / "images.json").read_text())
    out = {"fp16": [], "fp32": [], "pixels": []}
    for it in items:
        image = Image.open(it["path"])
        out["fp16"].append(float(evaluation.infer_one_sample(image, it["prompt"], model, processor, tokenizer, "cpu")))
        px = processor(image.convert("RGB"), return_tensors="pt")["pixel_values"]
        out["pixels"].append(px.tolist())
    model.float()
    half = torch.Tensor.half
    torch.Tensor.half = torch.Tensor.float  # the same code in float32
    try:
        for it in items:
            image = Image.open(it["path"])
            score = evaluation.infer_one_sample(image, it["prompt"], model, processor, tokenizer, "cpu")
            out["fp32"].append(float(score))
    finally:
        torch.Tensor.half = half
    (work / "official.json").write_text(json.dumps(out))


def ours_mps(work: Path) -> dict[str, list[float]]:
    import torch
    from vader_clip_rewards import MPS

    _use_mps_reference_architecture()
    r = MPS(MPS.Options(checkpoint=str(work / "MPS_overall_checkpoint.pth"), allow_pickle=True, architecture="tiny"))
    r.load("cpu", torch.float32)
    return _score_items(r, work)


# -------------------------------------------------------------------------------------------- ImageReward
MED_CONFIG = {
    "architectures": ["BertModel"],
    "attention_probs_dropout_prob": 0.1,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 768,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-12,
    "max_position_embeddings": 512,
    "model_type": "bert",
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "pad_token_id": 0,
    "type_vocab_size": 2,
    "vocab_size": 30524,
    "encoder_width": 768,
    "add_cross_attention": True,
}


def _bert_vocab(d: Path) -> None:
    """A ``bert-base-uncased`` stand-in of the real size (30,522 tokens): BERT's special tokens at their ids
    (0, 100-103), the prompts' words and the letters, the rest ``[unusedN]``."""
    import re

    words = sorted({w for p in PROMPTS for w in re.findall(r"[a-z]+|[^a-z\s]", p.lower())})
    words += [c for c in "abcdefghijklmnopqrstuvwxyz" if c not in words] + [
        f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"
    ]
    vocab = [f"[unused{i}]" for i in range(30522)]
    vocab[0], vocab[100], vocab[101], vocab[102], vocab[103] = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
    for i, w in enumerate(words):
        vocab[1000 + i] = w
    d.mkdir(parents=True, exist_ok=True)
    (d / "vocab.txt").write_text("\n".join(vocab) + "\n")
    (d / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "model_max_length": 512}))


def prepare_image_reward(work: Path) -> None:
    import torch
    from transformers import BlipTextModel, BlipVisionModel
    from vader_clip_rewards import image_reward as ir_mod
    from vader_clip_rewards._mlp import LaionAestheticMLP

    from vader_core.modules import seeded

    # BLIP's initialisation (std 0.02) leaves the random text encoder's [CLS] deaf to the image: 0.05 lets
    # the image move the score by about a unit, so that the comparison exercises the image path
    vision_cfg, text_cfg = ir_mod.vision_config(), ir_mod.text_config(1024)
    vision_cfg.initializer_range = text_cfg.initializer_range = 0.05
    with seeded(SEED):
        vision = BlipVisionModel(vision_cfg)
        text = BlipTextModel(text_cfg, add_pooling_layer=False)
        mlp = LaionAestheticMLP(768)
        # unit-gain head, so that the score spreads over images (as a trained head's does)
        for layer in mlp.layers:
            if isinstance(layer, torch.nn.Linear):
                torch.nn.init.normal_(layer.weight, std=layer.in_features**-0.5)
    state = ir_mod.official_state_dict(vision, text, mlp)
    state |= {"blip.vision_proj.weight": torch.randn(256, 1024) * 0.02, "blip.vision_proj.bias": torch.zeros(256)}
    state |= {"blip.text_proj.weight": torch.randn(256, 768) * 0.02, "blip.text_proj.bias": torch.zeros(256)}
    (work / "ImageReward").mkdir(parents=True, exist_ok=True)
    torch.save(state, work / "ImageReward" / "ImageReward.pt")
    (work / "ImageReward" / "med_config.json").write_text(json.dumps(MED_CONFIG, indent=1))
    _bert_vocab(work / "bert-base-uncased")


def official_image_reward(official: Path, work: Path) -> None:
    """Runs in the authors' environment: their ``ImageReward`` module, their loading, their ``score``."""
    import torch
    from PIL import Image

    sys.path.insert(0, str(official))
    # the package __init__ files import CLIP, diffusers and the ReFL trainer, which the score does not use
    for name, sub in (("ImageReward", "ImageReward"), ("ImageReward.models", "ImageReward/models")):
        pkg = types.ModuleType(name)
        pkg.__path__ = [str(official / sub)]
        sys.modules[name] = pkg
    from ImageReward.ImageReward import ImageReward

    os.chdir(work)  # BertTokenizer.from_pretrained('bert-base-uncased') finds the local stand-in first
    model = ImageReward(med_config=str(work / "ImageReward" / "med_config.json"), device="cpu")
    msg = model.load_state_dict(torch.load(work / "ImageReward" / "ImageReward.pt", map_location="cpu"), strict=False)
    assert not msg.unexpected_keys and all("position_ids" in k for k in msg.missing_keys), msg
    model.eval()
    items = json.loads((work / "images.json").read_text())
    out = {"fp32": [], "pixels": []}
    with torch.no_grad():
        for it in items:
            image = Image.open(it["path"])
            out["fp32"].append(float(model.score(it["prompt"], image)))
            out["pixels"].append(model.preprocess(image).unsqueeze(0).tolist())
    (work / "official.json").write_text(json.dumps(out))


def ours_image_reward(work: Path) -> dict[str, list[float]]:
    import torch
    from vader_clip_rewards import ImageReward

    r = ImageReward(ImageReward.Options(model=str(work / "ImageReward"), tokenizer=str(work / "bert-base-uncased")))
    r.load("cpu", torch.float32)
    return _score_items(r, work)


# --------------------------------------------------------------------------------------------- compare
def _score_items(r, work: Path) -> dict[str, list[float]]:  # noqa: ANN001
    import torch

    items = json.loads((work / "images.json").read_text())
    official = json.loads((work / "official.json").read_text())
    out: dict[str, list[float]] = {"frame": [], "pixels": []}
    with torch.no_grad():
        for it, px in zip(items, official["pixels"], strict=True):
            out["frame"].append(float(r(as_frame(it["path"])[:, None], [it["prompt"]])[0]))
            out["pixels"].append(float(r.score_pixels(torch.tensor(px), [it["prompt"]])[0]))
    return out


def _report(reward: str, items: list[dict[str, str]], official: dict, ours: dict) -> dict:
    rows, summary = [], {}
    for ref_key in [k for k in ("fp32", "fp16") if k in official]:
        for our_key in ("frame", "pixels"):
            diffs = [abs(a - b) for a, b in zip(ours[our_key], official[ref_key], strict=True)]
            rel = [d / max(abs(b), 1e-12) for d, b in zip(diffs, official[ref_key], strict=True)]
            summary[f"vader {our_key} vs official {ref_key}"] = {"max_abs": max(diffs), "max_rel": max(rel)}
    spread = max(official["fp32"]) - min(official["fp32"])
    for i, it in enumerate(items):
        row = {"image": it["name"], "prompt": it["prompt"]}
        row |= {f"official_{k}": official[k][i] for k in ("fp32", "fp16") if k in official}
        row |= {f"vader_{k}": ours[k][i] for k in ("frame", "pixels")}
        rows.append(row)
    print(f"\n{reward}: {len(items)} images; official fp32 scores span {spread:.4f}")
    for row in rows:
        print(
            "  "
            + ", ".join(f"{k} {v:.5f}" if isinstance(v, float) else f"{v}" for k, v in row.items() if k != "prompt")
        )
    for k, v in summary.items():
        print(f"  {k}: max abs {v['max_abs']:.2e}, max rel {v['max_rel']:.2e}")
    return {"reward": reward, "spread": spread, "rows": rows, "summary": summary}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("reward", choices=["mps", "image_reward", "official-mps", "official-image_reward"])
    p.add_argument("--official", type=Path, required=True, help="The authors' repository checkout.")
    p.add_argument("--python", default=None, help="The Python of the authors' environment.")
    p.add_argument("--work", type=Path, default=None, help="Working directory (default /tmp/vader-pref-ref-REWARD).")
    p.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    a = p.parse_args()
    if a.reward.startswith("official-"):
        {"official-mps": official_mps, "official-image_reward": official_image_reward}[a.reward](a.official, a.work)
        return
    if not a.python:
        p.error("--python (the authors' environment) is required")
    work = a.work or Path(f"/tmp/vader-pref-ref-{a.reward}")
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    items = save_images(work)
    (work / "images.json").write_text(json.dumps(items))
    {"mps": prepare_mps, "image_reward": prepare_image_reward}[a.reward](work)
    cmd = [a.python, __file__, f"official-{a.reward}", "--official", str(a.official), "--work", str(work)]
    subprocess.run(cmd, check=True, cwd=a.official, env={**os.environ, "PYTHONNOUSERSITE": "1"})
    official = json.loads((work / "official.json").read_text())
    ours = {"mps": ours_mps, "image_reward": ours_image_reward}[a.reward](work)
    report = _report(a.reward, items, official, ours)
    if a.json:
        a.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
