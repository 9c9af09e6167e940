"""B7: one process of a two-process training run of a Wan-shaped model scaled to fit a CPU
(``torchrun --nproc_per_node 2 -m benchmarks.b7_worker JSON``); every process writes ``rank{N}.json``.

The model is the Wan 2.1 architecture (diffusers' ``WanTransformer3DModel``, the tiny VAE and text encoder
of ``vader_wan.tiny``) with the transformer widened to the JSON's ``heads`` x ``head_dim``, ``layers`` and
``ffn_dim``; the run is vader's trainer with the JSON's ``distributed`` section, so what is measured is
what a real run holds."""

from __future__ import annotations

import functools
import gc
import json
import sys
from pathlib import Path


def _status_mib(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    cfg = json.loads(sys.argv[1])
    import vader_wan.tiny

    from vader_core.config import build_config
    from vader_core.trainer import Trainer

    shape = {k: cfg[k] for k in ("heads", "head_dim", "layers", "ffn_dim")}
    vader_wan.tiny.tiny_components = functools.partial(vader_wan.tiny.tiny_components, **shape)
    out = Path(cfg["out"])
    sets = [
        "backbone.name=wan",
        f"output.dir={out / 'run'}",
        "output.logger=none",
        "output.checkpoint_every=0",
        "validation.every=0",
        "validation.save_videos=false",
        "validation.seeds=[0]",
        f"backbone.height={cfg['size']}",
        f"backbone.width={cfg['size']}",
        f"backbone.frames={cfg['frames']}",
        f"backbone.steps={cfg['steps']}",
        "lora.rank=4",
        "optim.grad_accum=1",
        f"train.max_steps={cfg['max_steps']}",
        f"distributed.strategy={cfg['strategy']}",
        f"distributed.sequence_parallel={cfg['sp']}",
    ]
    loaded: dict[str, float] = {}

    class Measured(Trainer):
        def _setup(self) -> None:
            super()._setup()
            # Each process builds the whole model before sharding it: the peak of training is measured from
            # here on (writing 5 to clear_refs resets the resident high-water mark, VmHWM).
            gc.collect()
            Path("/proc/self/clear_refs").write_text("5")
            loaded["rss"] = _status_mib("VmRSS")

    tr = Measured(build_config(None, sets, {"rewards": ["saturation"], "device": "cpu"}), progress=False, tiny=True)
    tr.run()
    params = list(tr.backbone.denoiser.parameters())
    held = sum(getattr(p, "_local_tensor", p).numel() * p.element_size() for p in params)
    whole = sum(p.numel() * p.element_size() for p in params)
    rank = tr.accelerator.process_index
    (out / f"rank{rank}.json").write_text(
        json.dumps(
            {
                "peak_rss_mib": _status_mib("VmHWM"),
                "loaded_rss_mib": loaded["rss"],
                "param_mib_held": held / 2**20,
                "param_mib_whole": whole / 2**20,
            }
        )
    )
    tr.close()


if __name__ == "__main__":
    main()
