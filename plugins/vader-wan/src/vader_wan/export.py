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

It also writes the layouts ComfyUI and kohya-style trainers use (``--comfy``): the original Wan module names
(``blocks.N.self_attn.q``, ``cross_attn.k_img``, ``ffn.0`` ...; diffusers renames them ``attn1.to_q``,
``attn2.add_k_proj``, ``ffn.net.0.proj``) with each module's ``alpha`` (the scale is ``alpha / rank``, as in
training)::

    python -m vader_wan.export runs/wan/checkpoints/step-500 --comfy
    # …/comfyui/lora.safetensors   diffusion_model.blocks.0.self_attn.q.lora_A.weight / lora_B / alpha
    # …/kohya/lora.safetensors     lora_unet_blocks_0_self_attn_q.lora_down.weight / lora_up / alpha

ComfyUI's LoraLoader reads either (``models/loras/``); so do diffusers' ``load_lora_weights`` (which converts
both back) and musubi-tuner. A two-expert LoRA gives ``high_noise_lora.safetensors`` and
``low_noise_lora.safetensors`` in each folder, for ComfyUI's two model loaders.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from vader_core.errors import CheckpointError
from vader_core.lora import read_lora, save_lora, save_original_layouts

HIGH_NAME, LOW_NAME = "high_noise_lora.safetensors", "low_noise_lora.safetensors"
LORA_NAME = "lora.safetensors"

#: diffusers' module names inside a Wan block -> the original Wan (and ComfyUI) names.
_ORIGINAL = {
    "attn1.to_q": "self_attn.q",
    "attn1.to_k": "self_attn.k",
    "attn1.to_v": "self_attn.v",
    "attn1.to_out.0": "self_attn.o",
    "attn2.to_q": "cross_attn.q",
    "attn2.to_k": "cross_attn.k",
    "attn2.to_v": "cross_attn.v",
    "attn2.to_out.0": "cross_attn.o",
    "attn2.add_k_proj": "cross_attn.k_img",
    "attn2.add_v_proj": "cross_attn.v_img",
    "ffn.net.0.proj": "ffn.0",
    "ffn.net.2": "ffn.2",
}
_MODULE = re.compile(r"^blocks\.(\d+)\.(.+)$")
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


def _experts(sd: dict) -> dict[str, dict]:
    """``{"transformer": {...}}`` for a one-expert LoRA, both experts for a ``lora_expert=both`` one; inner keys
    without the prefixes."""
    parts: dict[str, dict] = {}
    for key, value in sd.items():
        head, _, rest = key.partition(".")
        if head != "transformer":
            raise CheckpointError(f"not a Wan LoRA: key `{key}` does not start with `transformer.`")
        expert, _, inner = rest.partition(".")
        if expert in ("transformer", "transformer_2"):
            parts.setdefault(expert, {})[inner] = value
        else:
            parts.setdefault("transformer", {})[rest] = value
    return parts


def original_name(module: str) -> str:
    """The original Wan (ComfyUI) name of a block's layer, e.g. ``blocks.0.attn1.to_q`` -> ``blocks.0.self_attn.q``.

    Raises:
        CheckpointError: the layer has none (ComfyUI reads the blocks' attention and feed-forward layers).
    """
    m = _MODULE.match(module)
    if m is None or m.group(2) not in _ORIGINAL:
        raise CheckpointError(
            f"LoRA module `{module}` has no name in the original Wan layout (ComfyUI reads blocks' attention and "
            f"feed-forward layers: {', '.join(sorted(_ORIGINAL))})"
        )
    return f"blocks.{m.group(1)}.{_ORIGINAL[m.group(2)]}"


def export_original(lora: str | Path, out: str | Path) -> dict[str, Path]:
    """Write the ComfyUI and kohya layouts of a Wan LoRA into ``out/comfyui`` and ``out/kohya``.

    Returns:
        `dict[str, Path]`: each file written, by ``layout/name``.
    """
    sd, meta = read_lora(lora)
    alpha = meta.get("transformer.lora_alpha")
    if alpha is None:
        raise CheckpointError(f"{lora} has no `transformer.lora_alpha` in its metadata: not a vader Wan LoRA")
    parts = _experts(sd)
    names = {"transformer": LORA_NAME} if set(parts) == {"transformer"} else dict(_EXPERTS)
    return save_original_layouts(out, {names[e]: part for e, part in parts.items()}, alpha, original_name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lora", help="checkpoint directory or .safetensors file")
    parser.add_argument(
        "--comfy",
        action="store_true",
        help="write the ComfyUI and kohya layouts (LORA/comfyui, LORA/kohya) instead of splitting two experts",
    )
    parser.add_argument("--out", help="output directory (default: LORA/diffusers, or LORA with --comfy)")
    a = parser.parse_args(argv)
    src = Path(a.lora)
    home = src if src.is_dir() else src.parent
    try:
        if a.comfy:
            written = export_original(src, Path(a.out) if a.out else home)
        else:
            written = split_experts(src, Path(a.out) if a.out else home / "diffusers")
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for name, path in written.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
