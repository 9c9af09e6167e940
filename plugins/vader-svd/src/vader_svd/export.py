"""A vader SVD LoRA in the layouts ComfyUI and kohya-style tools read.

vader saves the LoRA in diffusers' names (``unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q``).
ComfyUI runs Stable Video Diffusion from the original (SGM) checkpoint, whose UNet names its layers by position
(``input_blocks.1.1.transformer_blocks.0.attn1.to_q``) and its temporal layers ``time_stack``; its LoraLoader
finds a LoRA's layers by those names::

    vader export runs/svd/checkpoints/step-500        # or: python -m vader_svd.export runs/svd/checkpoints/step-500
    # …/comfyui/lora.safetensors   diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.lora_A.weight …
    # …/kohya/lora.safetensors     lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q.lora_down.weight …

Every layer of the UNet has a name there (checked against the 1428 parameter names of the released checkpoint),
so a LoRA on any target (the default attention projections, feed-forward layers, convolutions) exports. Each module
gets its ``alpha``; the loaders scale by ``alpha / rank`` as training did.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from vader_core.errors import CheckpointError
from vader_core.lora import read_lora, save_original_layouts

LORA_NAME = "lora.safetensors"

#: diffusers' names inside a spatio-temporal ResNet (spatial or temporal half) -> the original ResBlock's.
_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
#: diffusers' top-level modules -> the original names.
_TOP = {
    "conv_in": "input_blocks.0.0",
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
_BLOCK = re.compile(r"^(down_blocks|up_blocks)\.(\d+)\.(resnets|attentions|downsamplers|upsamplers)\.(\d+)\.(.+)$")
_MID = re.compile(r"^mid_block\.(resnets|attentions)\.(\d+)\.(.+)$")


def _resnet_inner(rest: str) -> str:
    """``spatial_res_block.conv1.weight`` -> ``in_layers.2.weight``; ``temporal_res_block.…`` -> ``time_stack.…``."""
    half, _, tail = rest.partition(".")
    if half == "time_mixer":
        return rest
    module, _, param = tail.rpartition(".")
    if half not in ("spatial_res_block", "temporal_res_block") or module not in _RESNET:
        raise KeyError(rest)
    inner = f"{_RESNET[module]}.{param}"
    return inner if half == "spatial_res_block" else f"time_stack.{inner}"


def _attention_inner(rest: str) -> str:
    """Inside a spatio-temporal transformer: the temporal blocks are ``time_stack``; the rest keeps its name."""
    if rest.startswith("temporal_transformer_blocks."):
        return "time_stack." + rest[len("temporal_transformer_blocks.") :]
    if rest.startswith("time_pos_embed.linear_"):
        n = int(rest[len("time_pos_embed.linear_")]) * 2 - 2  # linear_1 -> 0, linear_2 -> 2
        return f"time_pos_embed.{n}{rest[len('time_pos_embed.linear_N') :]}"
    return rest


def original_name(name: str, layers_per_block: int) -> str:
    """The original (SGM, ComfyUI) name of a parameter or module of diffusers' ``UNetSpatioTemporalConditionModel``.

    Args:
        name (`str`): diffusers' name, e.g. ``down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight``.
        layers_per_block (`int`): the UNet's ``layers_per_block`` (2 in every released SVD); the original names
            number the layers of each resolution level in one sequence, so positions depend on it.

    Raises:
        KeyError: the name has no counterpart in the original layout.
    """
    for head, new in _TOP.items():
        if name.startswith(head + "."):
            return new + name[len(head) :]
    step = layers_per_block + 1
    m = _MID.match(name)
    if m:
        kind, j, rest = m.group(1), int(m.group(2)), m.group(3)
        index = 1 if kind == "attentions" else 2 * j  # resnet, attention, resnet
        return f"middle_block.{index}." + (_attention_inner(rest) if kind == "attentions" else _resnet_inner(rest))
    m = _BLOCK.match(name)
    if m is None:
        raise KeyError(name)
    side, i, kind, j, rest = m.group(1), int(m.group(2)), m.group(3), int(m.group(4)), m.group(5)
    if side == "down_blocks":
        if kind == "downsamplers":
            return f"input_blocks.{(i + 1) * step}.0.op.{rest.removeprefix('conv.')}"
        where = f"input_blocks.{1 + i * step + j}"
    else:
        if kind == "upsamplers":
            # after the level's last ResBlock (and its attention, which every level but the first has)
            return f"output_blocks.{i * step + layers_per_block}.{1 if i == 0 else 2}.{rest}"
        where = f"output_blocks.{i * step + j}"
    if kind == "attentions":
        return f"{where}.1.{_attention_inner(rest)}"
    return f"{where}.0.{_resnet_inner(rest)}"


def _layers_per_block(names: list[str]) -> int:
    """``layers_per_block`` from a LoRA's module names: the up blocks hold ``layers_per_block + 1`` layers, the
    down blocks ``layers_per_block``; 2 (every released SVD) when the LoRA touches neither."""
    up = [int(m.group(1)) for n in names if (m := re.search(r"^up_blocks\.\d+\.(?:resnets|attentions)\.(\d+)\.", n))]
    if up:
        return max(up)
    down = [
        int(m.group(1)) for n in names if (m := re.search(r"^down_blocks\.\d+\.(?:resnets|attentions)\.(\d+)\.", n))
    ]
    return max(down) + 1 if down else 2


def export_original(lora: str | Path, out: str | Path) -> dict[str, Path]:
    """Write the ComfyUI and kohya layouts of an SVD LoRA into ``out/comfyui`` and ``out/kohya``.

    Returns:
        `dict[str, Path]`: each file written, by ``layout/name``.
    """
    sd, meta = read_lora(lora)
    alpha = meta.get("unet.lora_alpha")
    if alpha is None:
        raise CheckpointError(f"{lora} has no `unet.lora_alpha` in its metadata: not a vader SVD LoRA")
    inner = {}
    for key, value in sd.items():
        if not key.startswith("unet."):
            raise CheckpointError(f"not an SVD LoRA: key `{key}` does not start with `unet.`")
        inner[key[len("unet.") :]] = value
    layers = _layers_per_block(list(inner))

    def rename(module: str) -> str:
        try:
            return original_name(module + ".weight", layers).removesuffix(".weight")
        except KeyError:
            raise CheckpointError(
                f"LoRA module `{module}` has no name in the original SVD layout: not a LoRA of an SVD UNet"
            ) from None

    return save_original_layouts(out, {LORA_NAME: inner}, alpha, rename)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lora", help="checkpoint directory or .safetensors file")
    parser.add_argument("--out", help="output directory (default: the checkpoint directory)")
    a = parser.parse_args(argv)
    src = Path(a.lora)
    home = src if src.is_dir() else src.parent
    try:
        written = export_original(src, Path(a.out) if a.out else home)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for name, path in written.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
