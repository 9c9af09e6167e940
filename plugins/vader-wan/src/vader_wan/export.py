"""Split a LoRA trained on both experts of Wan 2.2 A14B (``backbone.lora_expert=both``) into the two files
diffusers' ``WanLoraLoaderMixin`` reads, one expert each.

vader saves such a LoRA as one file whose keys are ``transformer.transformer.…`` (high-noise expert) and
``transformer.transformer_2.…`` (low-noise expert); ``vader generate --lora`` and ``--resume`` read it as it
is. Stock diffusers reads one expert per file, with the prefix ``transformer``::

    python -m vader_wan.export runs/wan-a14b/checkpoints/step-500      # writes …/diffusers/

    pipe = WanPipeline.from_pretrained("Wan-AI/Wan2.2-T2V-A14B-Diffusers")
    pipe.load_lora_weights("…/diffusers", weight_name="high_noise_lora.safetensors", adapter_name="high")
    pipe.load_lora_weights("…/diffusers", weight_name="low_noise_lora.safetensors", adapter_name="low",
                           load_into_transformer_2=True)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vader_core.errors import CheckpointError
from vader_core.lora import read_lora, save_lora

HIGH_NAME, LOW_NAME = "high_noise_lora.safetensors", "low_noise_lora.safetensors"
_EXPERTS = {"transformer": HIGH_NAME, "transformer_2": LOW_NAME}


def split_experts(lora: str | Path, out: str | Path) -> dict[str, Path]:
    """Write ``high_noise_lora.safetensors`` and ``low_noise_lora.safetensors`` into ``out``.

    Args:
        lora (`str` or `Path`): a checkpoint directory or ``.safetensors`` file of a ``lora_expert=both`` run.
        out (`str` or `Path`): the directory to write to (created).

    Returns:
        `dict[str, Path]`: the file written for each expert (``transformer``, ``transformer_2``).
    """
    sd, meta = read_lora(lora)
    parts: dict[str, dict] = {name: {} for name in _EXPERTS}
    for key, value in sd.items():
        head, _, rest = key.partition(".")
        expert, _, inner = rest.partition(".")
        if head != "transformer" or expert not in parts:
            raise CheckpointError(
                f"{lora} is not a two-expert LoRA (key `{key}`; expected transformer.transformer.… and "
                "transformer.transformer_2.…): a one-expert LoRA already loads with load_lora_weights as it is"
            )
        parts[expert][f"transformer.{inner}"] = value
    missing = [name for name, part in parts.items() if not part]
    if missing:
        raise CheckpointError(
            f"{lora} holds no LoRA weights for {', '.join(missing)}; it is not a lora_expert=both LoRA"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for expert, part in parts.items():
        path = out / _EXPERTS[expert]
        # The adapter settings are the same for both experts: the metadata keys keep the `transformer.` prefix.
        save_lora(path, part, meta)
        written[expert] = path
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lora", help="checkpoint directory or .safetensors file of a lora_expert=both run")
    parser.add_argument("--out", help="output directory (default: LORA/diffusers)")
    a = parser.parse_args(argv)
    src = Path(a.lora)
    out = Path(a.out) if a.out else (src if src.is_dir() else src.parent) / "diffusers"
    try:
        written = split_experts(src, out)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for expert, path in written.items():
        print(f"{expert}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
