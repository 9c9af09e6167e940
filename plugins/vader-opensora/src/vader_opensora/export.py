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

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from vader_core.errors import CheckpointError, ConfigError, VaderError

OFFICIAL_PREFIX = "base_model.model."
#: peft's default ``LoraConfig.lora_alpha``; the official code does not set it.
OFFICIAL_ALPHA = 8.0
OFFICIAL_TARGETS = ("qkv", "q_linear", "kv_linear")
PREFIX = "transformer"


def _rank(sd: dict[str, torch.Tensor]) -> int:
    ranks = {int(v.shape[0]) for k, v in sd.items() if k.endswith("lora_A.weight")}
    if len(ranks) != 1:
        raise CheckpointError(f"expected LoRA weights of one rank, found ranks {sorted(ranks) or 'none'}")
    return ranks.pop()


def to_official(sd: dict[str, torch.Tensor], meta: dict[str, Any]) -> tuple[dict[str, torch.Tensor], int]:
    """vader LoRA (state dict and metadata) -> the official layout; returns it and the rank to pass as ``--lora_rank``."""
    rank = int(meta.get(f"{PREFIX}.r", _rank(sd)))
    alpha = float(meta.get(f"{PREFIX}.lora_alpha", rank))
    factor = (alpha / rank) / (OFFICIAL_ALPHA / rank)
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if not k.startswith(PREFIX + "."):
            raise CheckpointError(f"`{k}` is not an STDiT3 LoRA weight of the opensora backbone (no `{PREFIX}.` prefix)")
        path = k[len(PREFIX) + 1:]
        module = path.rsplit(".lora_", 1)[0]
        if module.rsplit(".", 1)[-1] not in OFFICIAL_TARGETS:
            raise ConfigError(
                f"the official VADER code puts LoRA on {'/'.join(OFFICIAL_TARGETS)} only, this one also on `{module}`; "
                "train with `lora.target_modules=[qkv, q_linear, kv_linear]` to export it"
            )
        out[OFFICIAL_PREFIX + path] = (v.float() * factor if ".lora_B." in path else v.float()).contiguous()
    return out, rank


def from_official(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Official LoRA state dict -> vader's keys and adapter metadata (rank from the weights, alpha 8)."""
    from vader_core.lora import config_metadata

    bad = [k for k in sd if not k.startswith(OFFICIAL_PREFIX)]
    if bad:
        raise CheckpointError(f"{len(bad)} keys are not official VADER-Open-Sora LoRA weights, e.g. `{bad[0]}` "
                              f"(expected `{OFFICIAL_PREFIX}...lora_A.weight`)")
    rank = _rank(sd)
    out = {f"{PREFIX}.{k[len(OFFICIAL_PREFIX):]}": v.contiguous() for k, v in sd.items()}
    targets = sorted({k.rsplit(".lora_", 1)[0].rsplit(".", 1)[-1] for k in sd})
    config = argparse.Namespace(r=rank, lora_alpha=OFFICIAL_ALPHA, lora_dropout=0.01, target_modules=targets)
    return out, config_metadata(config, PREFIX)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vader_opensora.export",
                                 description="Convert opensora LoRA weights to or from the official VADER layout.")
    ap.add_argument("source", type=Path, help="vader checkpoint directory / .safetensors (--export official), "
                    "or an official .pt (--export vader)")
    ap.add_argument("--export", choices=["official", "vader"], required=True, help="layout to write")
    ap.add_argument("--out", type=Path, required=True, help="output .pt (official) or directory (vader)")
    args = ap.parse_args(argv)
    try:
        if args.export == "official":
            from vader_core.lora import read_lora

            sd, meta = read_lora(args.source)
            out, rank = to_official(sd, meta)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            torch.save(out, args.out)
            print(f"wrote {args.out} ({len(out)} tensors); load it in VADER-Open-Sora with "
                  f"lora_ckpt_path = \"{args.out}\", lora_rank = {rank}")
        else:
            from vader_core.lora import WEIGHTS_NAME, save_lora

            if not args.source.is_file():
                raise CheckpointError(f"no file at {args.source}; pass the official LoRA .pt")
            try:
                sd = torch.load(str(args.source), map_location="cpu", weights_only=True)
            except Exception as e:  # noqa: BLE001 - corrupt or not a tensor dict
                raise CheckpointError(f"cannot read {args.source}: {str(e).splitlines()[0][:160]}") from None
            out, meta = from_official(sd)
            args.out.mkdir(parents=True, exist_ok=True)
            save_lora(args.out / WEIGHTS_NAME, out, meta)
            print(f"wrote {args.out / WEIGHTS_NAME} ({len(out)} tensors); use it with "
                  f"`vader generate --backbone opensora --lora {args.out}`")
    except VaderError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
