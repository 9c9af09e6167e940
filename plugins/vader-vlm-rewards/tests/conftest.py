from vader_core.testing import only_plugin

pytest_plugins = ["vader_core.testing.fixtures"]
vader_plugin_name = only_plugin("vlm_rewards")


import json  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

#: LoRA of the tiny VideoReward release: rank and alpha as the release's (64, 128: scale 2).
LORA_R, LORA_ALPHA = 64, 128
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _as_445(name: str) -> str:
    """A ``Qwen2VLModel`` key as transformers 4.45's ``Qwen2VLForConditionalGeneration`` named it."""
    return name if name.startswith("visual.") else "model." + name.removeprefix("language_model.")


def save_hpsv3_release(root: Path, seed: int) -> SimpleNamespace:
    """A tiny HPSv3 in the release's layout: ``HPSv3.safetensors`` (every tensor, 4.45 key names, a
    ``lm_head`` and the ``rm_head``) and a base directory (config.json + tokenizer)."""
    from safetensors.torch import save_file
    from vader_vlm_rewards import hpsv3

    model, head, tokenizer = hpsv3.tiny_parts(seed)
    base = root / "base"
    model.config.save_pretrained(base)
    tokenizer.save_pretrained(base)
    state = {_as_445(k): v for k, v in model.state_dict().items()}
    state["lm_head.weight"] = torch.randn(model.config.text_config.vocab_size, model.config.text_config.hidden_size)
    state.update({f"rm_head.{k}": v for k, v in head.state_dict().items()})
    (root / "ckpt").mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(root / "ckpt" / "HPSv3.safetensors"))
    return SimpleNamespace(base=base, checkpoint=root / "ckpt" / "HPSv3.safetensors", dir=root / "ckpt", seed=seed)


def save_videoreward_release(root: Path, seed: int, step: int = 7) -> SimpleNamespace:
    """A tiny VideoReward in the release's layout: ``model_config.json``, ``checkpoint-N/model.pth`` (a
    pickled PEFT state dict: ``base_model.model.`` + 4.45 names, the language model's linear layers as
    ``base_layer`` + random ``lora_A``/``lora_B``, the tied ``lm_head``, ``rm_head.weight``) and
    ``checkpoint-N/tokenizer/``; a base directory holds config.json. ``lora`` is the merged delta of each
    ``Qwen2VLModel`` weight."""
    from vader_vlm_rewards import video_reward

    model, head, tokenizer = video_reward.tiny_parts(seed)
    g = torch.Generator().manual_seed(seed + 100)
    state, lora = {}, {}
    for key, value in model.state_dict().items():
        module, _, kind = key.rpartition(".")
        name = f"base_model.model.{_as_445(key)}"
        if key.startswith("language_model.layers.") and module.endswith(LORA_TARGETS):
            if kind == "weight":
                a = torch.randn(LORA_R, value.shape[1], generator=g) / value.shape[1] ** 0.5
                b = torch.randn(value.shape[0], LORA_R, generator=g) / LORA_R**0.5 * 0.1
                stem = f"base_model.model.{_as_445(module)}"
                state[f"{stem}.base_layer.weight"] = value
                state[f"{stem}.lora_A.default.weight"] = a
                state[f"{stem}.lora_B.default.weight"] = b
                lora[key] = LORA_ALPHA / LORA_R * (b @ a)
            else:
                state[f"base_model.model.{_as_445(module)}.base_layer.{kind}"] = value
        else:
            state[name] = value
    state["base_model.model.lm_head.weight"] = state["base_model.model.model.embed_tokens.weight"]
    state["base_model.model.rm_head.weight"] = head.weight.detach().clone()
    base = root / "base"
    model.config.save_pretrained(base)
    repo = root / "release"
    ckpt = repo / f"checkpoint-{step}"
    ckpt.mkdir(parents=True)
    torch.save(state, ckpt / "model.pth")
    tokenizer.save_pretrained(ckpt / "tokenizer")
    meta = {
        "data_config": {
            "max_frame_pixels": video_reward.TINY_PIXELS[1],
            "num_frames": None,
            "fps": 2.0,
            "eval_dim": ["VQ", "MQ", "TA"],
            "prompt_template_type": "detailed_special",
            "sample_type": "uniform",
        },
        "model_config": {"model_name_or_path": str(base), "output_dim": 1, "use_special_tokens": True},
        "peft_lora_config": {"lora_enable": True, "lora_r": LORA_R, "lora_alpha": LORA_ALPHA, "use_rslora": False},
        "inference_config": video_reward.RELEASE_NORM,
    }
    (repo / "model_config.json").write_text(json.dumps(meta))
    return SimpleNamespace(repo=repo, base=base, weights=ckpt / "model.pth", lora=lora, seed=seed)


@pytest.fixture(scope="session")
def hpsv3_release(tmp_path_factory):
    return save_hpsv3_release(tmp_path_factory.mktemp("hpsv3-release"), seed=3)


@pytest.fixture(scope="session")
def videoreward_release(tmp_path_factory):
    return save_videoreward_release(tmp_path_factory.mktemp("videoreward-release"), seed=4)
