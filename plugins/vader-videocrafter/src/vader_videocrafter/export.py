"""Convert LoRA weights between vader's layout and the official VADER-VideoCrafter layout.

vader saves ``pytorch_lora_weights.safetensors``: keys ``unet.<module path>.lora_A.weight`` /
``lora_B.weight`` (module paths of the official UNet, e.g.
``unet.input_blocks.1.1.transformer_blocks.0.attn1.to_q.lora_A.weight``) and the adapter
configuration (``unet.r``, ``unet.lora_alpha``, ``unet.target_modules``) in the safetensors metadata.

The official code (``VADER-VideoCrafter/scripts/main/train_t2v_lora.py``) wraps the whole
``LatentDiffusion`` with ``peft.get_peft_model(model, LoraConfig(r=lora_rank, target_modules=["to_k",
"to_v", "to_q"], lora_dropout=0.01))`` and saves ``torch.save(get_peft_model_state_dict(peft_model),
"peft_model_<step>.pt")``: keys ``base_model.model.model.diffusion_model.<module path>.lora_A.weight``,
and a LoRA scale of ``lora_alpha / r`` with peft's default ``lora_alpha`` of 8. It loads a file with
``set_peft_model_state_dict`` into a model built with ``--lora_rank``.

Converting keeps the rank and rescales ``lora_B`` so that the product ``scale * B @ A`` (what the
adapter adds to a weight) is unchanged. Usage::

    python -m vader_videocrafter.export runs/vc/checkpoints/step-450 --export official --out vader_lora.pt
    # then, in VADER-VideoCrafter: --lora_ckpt_path vader_lora.pt --lora_rank <the rank printed>
    python -m vader_videocrafter.export vader_videocrafter_pickscore.pt --export vader --out lora_dir/
    vader generate --backbone videocrafter2 --lora lora_dir/ -p "a corgi surfing" --out corgi.mp4
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

OFFICIAL_PREFIX = "base_model.model.model.diffusion_model."
OFFICIAL_TARGETS = ("to_q", "to_k", "to_v")
PREFIX = "unet"
LAYOUT = OfficialLayout(
    OFFICIAL_PREFIX,
    PREFIX,
    OFFICIAL_TARGETS,
    backbone="videocrafter2",
    denoiser="a UNet",
    project="VADER-VideoCrafter",
    load_hint=lambda out, rank: f"--lora_ckpt_path {out} --lora_rank {rank}",
)
to_official = LAYOUT.to_official
from_official = LAYOUT.from_official


def main(argv: list[str] | None = None) -> int:
    return LAYOUT.main("python -m vader_videocrafter.export", argv)


if __name__ == "__main__":
    raise SystemExit(main())
