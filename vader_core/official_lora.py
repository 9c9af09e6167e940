"""Convert LoRA weights between vader's layout and an official VADER code base's peft layout.

vader saves ``pytorch_lora_weights.safetensors`` with keys ``{prefix}.<module path>.lora_A.weight`` and
the adapter configuration in the metadata. The official VADER code bases (VideoCrafter, Open-Sora) wrap
their model with ``peft.get_peft_model(model, LoraConfig(r=lora_rank, target_modules=[...],
lora_dropout=0.01))`` and ``torch.save(get_peft_model_state_dict(peft_model), ...)``: keys
``{official_prefix}<module path>.lora_A.weight``, and a LoRA scale of ``lora_alpha / r`` with peft's
default ``lora_alpha`` of 8. A backbone plugin describes its layout with :class:`OfficialLayout` and
exposes ``to_official``, ``from_official`` and ``main`` through it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError, ConfigError, VaderError

#: peft's default ``LoraConfig.lora_alpha``; the official code does not set it.
OFFICIAL_ALPHA = 8.0


def _rank(sd: dict[str, torch.Tensor]) -> int:
    ranks = {int(v.shape[0]) for k, v in sd.items() if k.endswith("lora_A.weight")}
    if len(ranks) != 1:
        raise CheckpointError(f"expected LoRA weights of one rank, found ranks {sorted(ranks) or 'none'}")
    return ranks.pop()


@dataclass(frozen=True)
class OfficialLayout:
    """One official code base's LoRA layout.

    Args:
        official_prefix (`str`): key prefix of the official state dict, e.g. ``"base_model.model."``.
        prefix (`str`): vader's key prefix (the backbone's ``denoiser_name``).
        targets (`tuple[str, ...]`): the modules the official code puts LoRA on.
        backbone (`str`): vader's backbone name, for messages.
        denoiser (`str`): the denoiser with its article, for messages (``a UNet``, ``an STDiT3``).
        project (`str`): the official code base, for messages (``VADER-VideoCrafter``).
        load_hint (`Callable[[Path, int], str]`): how to load an exported file there, from its path and rank.
    """

    official_prefix: str
    prefix: str
    targets: tuple[str, ...]
    backbone: str
    denoiser: str
    project: str
    load_hint: Callable[[Path, int], str]

    def to_official(self, sd: dict[str, torch.Tensor], meta: dict[str, Any]) -> tuple[dict[str, torch.Tensor], int]:
        """vader LoRA (state dict and metadata) -> the official layout; returns it and the rank to load it with."""
        rank = int(meta.get(f"{self.prefix}.r", _rank(sd)))
        alpha = float(meta.get(f"{self.prefix}.lora_alpha", rank))
        factor = (alpha / rank) / (OFFICIAL_ALPHA / rank)
        out: dict[str, torch.Tensor] = {}
        for k, v in sd.items():
            if not k.startswith(self.prefix + "."):
                raise CheckpointError(
                    f"`{k}` is not {self.denoiser} "
                    f"LoRA weight of the {self.backbone} backbone (no `{self.prefix}.` prefix)"
                )
            path = k[len(self.prefix) + 1 :]
            module = path.rsplit(".lora_", 1)[0]
            if module.rsplit(".", 1)[-1] not in self.targets:
                raise ConfigError(
                    f"the official VADER code puts LoRA on {'/'.join(self.targets)} only, this one also on "
                    f"`{module}`; train with `lora.target_modules=[{', '.join(self.targets)}]` to export it"
                )
            out[self.official_prefix + path] = (v.float() * factor if ".lora_B." in path else v.float()).contiguous()
        return out, rank

    def from_official(self, sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Official LoRA state dict -> vader's keys and adapter metadata (rank from the weights, alpha 8)."""
        from .lora import config_metadata

        bad = [k for k in sd if not k.startswith(self.official_prefix)]
        if bad:
            raise CheckpointError(
                f"{len(bad)} keys are not official {self.project} LoRA weights, e.g. `{bad[0]}` "
                f"(expected `{self.official_prefix}...lora_A.weight`)"
            )
        rank = _rank(sd)
        out = {f"{self.prefix}.{k[len(self.official_prefix) :]}": v.contiguous() for k, v in sd.items()}
        targets = sorted({k.rsplit(".lora_", 1)[0].rsplit(".", 1)[-1] for k in sd})
        config = argparse.Namespace(r=rank, lora_alpha=OFFICIAL_ALPHA, lora_dropout=0.01, target_modules=targets)
        return out, config_metadata(config, self.prefix)

    def main(self, prog: str, argv: list[str] | None = None) -> int:
        """The ``python -m <plugin>.export`` command line: ``--export official`` or ``--export vader``."""
        ap = argparse.ArgumentParser(
            prog=prog, description=f"Convert {self.backbone} LoRA weights to or from the official VADER layout."
        )
        ap.add_argument(
            "source",
            type=Path,
            help="vader checkpoint directory / .safetensors (--export official), or an official .pt (--export vader)",
        )
        ap.add_argument("--export", choices=["official", "vader"], required=True, help="layout to write")
        ap.add_argument("--out", type=Path, required=True, help="output .pt (official) or directory (vader)")
        args = ap.parse_args(argv)
        try:
            if args.export == "official":
                from .lora import read_lora

                sd, meta = read_lora(args.source)
                out, rank = self.to_official(sd, meta)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                torch.save(out, args.out)
                print(
                    f"wrote {args.out} ({len(out)} tensors); load it in {self.project} with "
                    f"{self.load_hint(args.out, rank)}"
                )
            else:
                from .lora import WEIGHTS_NAME, save_lora

                if not args.source.is_file():
                    raise CheckpointError(f"no file at {args.source}; pass the official LoRA .pt")
                try:
                    sd = torch.load(str(args.source), map_location="cpu", weights_only=True)
                except Exception as e:  # noqa: BLE001 - corrupt or not a tensor dict
                    raise CheckpointError(f"cannot read {args.source}: {str(e).splitlines()[0][:160]}") from None
                out, meta = self.from_official(sd)
                args.out.mkdir(parents=True, exist_ok=True)
                save_lora(args.out / WEIGHTS_NAME, out, meta)
                print(
                    f"wrote {args.out / WEIGHTS_NAME} ({len(out)} tensors); use it with "
                    f"`vader generate --backbone {self.backbone} --lora {args.out}`"
                )
        except VaderError as e:
            print(f"error: {e}", file=sys.stderr)
            return e.exit_code
        return 0
