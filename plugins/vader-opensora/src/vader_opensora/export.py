"""Convert LoRA weights between vader's layout and the official VADER-Open-Sora layout.

vader saves ``pytorch_lora_weights.safetensors``: keys ``transformer.<module path>.lora_A.weight`` /
``lora_B.weight`` (module paths of the official STDiT3, e.g.
``transformer.spatial_blocks.0.attn.qkv.lora_A.weight``) and the adapter configuration
(``transformer.r``, ``transformer.lora_alpha``, ``transformer.target_modules``) in the safetensors metadata.

The official code (``VADER-Open-Sora/scripts/train_t2v_lora.py``) wraps the STDiT3 with
``peft.get_peft_model(model, LoraConfig(r=lora_rank, target_modules=["qkv", "q_linear", "kv_linear"],
lora_dropout=0.01))`` and saves ``torch.save(get_peft_model_state_dict(peft_model), "peft_model_<step>.pt")``:
keys ``base_model.model.<module path>.lora_A.weight``, and a LoRA scale of ``lora_alpha / r`` with peft's
default ``lora_alpha`` of 8. It loads a file (config ``lora_ckpt_path``) with ``set_peft_model_state_dict``
into a model built with ``lora_rank``.

Converting keeps the rank and rescales ``lora_B`` so that the product ``scale * B @ A`` (what the
adapter adds to a weight) is unchanged. Usage::

    python -m vader_opensora.export runs/os/checkpoints/step-100 --export official --out peft_model_100.pt
    # then, in VADER-Open-Sora: lora_ckpt_path = "peft_model_100.pt", lora_rank = <the rank printed>
    python -m vader_opensora.export peft_model_100.pt --export vader --out lora_dir/
    vader generate --backbone opensora --lora lora_dir/ -p "a corgi surfing" --out corgi.mp4
"""

from __future__ import annotations

from vader_core.official_lora import OFFICIAL_ALPHA, OfficialLayout

__all__ = [
    "LAYOUT",
    "OFFICIAL_ALPHA",
    "OFFICIAL_PREFIX",
    "OFFICIAL_TARGETS",
    "PREFIX",
    "from_official",
    "main",
    "to_official",
]

OFFICIAL_PREFIX = "base_model.model."
OFFICIAL_TARGETS = ("qkv", "q_linear", "kv_linear")
PREFIX = "transformer"
LAYOUT = OfficialLayout(
    OFFICIAL_PREFIX,
    PREFIX,
    OFFICIAL_TARGETS,
    backbone="opensora",
    denoiser="an STDiT3",
    project="VADER-Open-Sora",
    load_hint=lambda out, rank: f'lora_ckpt_path = "{out}", lora_rank = {rank}',
)
to_official = LAYOUT.to_official
from_official = LAYOUT.from_official


def main(argv: list[str] | None = None) -> int:
    return LAYOUT.main("python -m vader_opensora.export", argv)


if __name__ == "__main__":
    raise SystemExit(main())
