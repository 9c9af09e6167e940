"""``motion`` and ``dynamic_degree``: how much a video moves, from RAFT optical flow (torchvision), after
VBench's *dynamic degree*. Guard metrics: never trained on, they catch videos that freeze while a reward
climbs.

Both follow VBench (``vbench/dynamic_degree.py``): frames are taken at about 8 per second (every
``round(fps / 8)``-th frame when ``fps`` is given), RAFT estimates the flow between consecutive
frames, and each pair is scored by the mean flow magnitude of its fastest 5 % of pixels. VBench calls
a pair moving when that exceeds ``6 * min(H, W) / 256`` pixels, and a video dynamic when at least
``round(4 * frames / 16)`` pairs move; its dimension score is the share of dynamic videos.

- ``motion`` is the continuous version, for early stopping: the mean over pairs of the pair score in
  pixels at a short side of 256 (``score * 256 / min(H, W)``), so that 6.0 is VBench's threshold at any
  resolution. A frozen video scores about 0.
- ``dynamic_degree`` is VBench's decision per video (1 dynamic, 0 static); the mean over videos that
  validation and ``vader eval`` report is VBench's dynamic degree.

The default model is ``raft_large`` with torchvision's ``C_T_V1`` weights, the original RAFT trained on
FlyingChairs + FlyingThings3D, which is VBench's ``raft-things.pth``: its thresholds were set on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from vader_core.errors import CheckpointError, MissingWeightsError
from vader_core.hub import first_line, hub_offline
from vader_core.metric import MetricOptions, MetricPlugin
from vader_core.modules import freeze, seeded

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: RAFT needs 8 | H, W and feature maps of at least 16 at 1/8 scale: frames are upscaled to this short side.
MIN_SIDE = 128
#: torchvision weights of each model: VBench's raft-things for the large one, the better of two for the small.
WEIGHTS = {"raft_large": "C_T_V1", "raft_small": "C_T_V2"}


class MotionOptions(MetricOptions):
    model: Literal["raft_large", "raft_small"] = Field(
        "raft_large",
        description="RAFT model of torchvision: `raft_large` (C_T_V1 weights, VBench's raft-things) or `raft_small` "
        "(C_T_V2; 5x fewer parameters, about 2x faster on a GPU, not what VBench's thresholds were set on).",
    )
    weights_path: str | None = Field(
        None,
        description="Local file of the model's torchvision state dict (e.g. `raft_large_C_T_V1-22a6c225.pth`); "
        "default: torchvision's download, kept in the torch hub cache.",
    )
    fps: float | None = Field(
        None,
        gt=0,
        description="Frame rate of the videos: every round(fps / 8)-th frame is used, about 8 per second as in "
        "VBench (Wan's 16 fps: every second frame); null: every frame.",
    )
    flow_updates: int = Field(20, ge=1, description="RAFT's recurrent refinements per pair (VBench: 20).")
    top: float = Field(
        0.05, gt=0, le=1, description="Share of a pair's pixels, the fastest, whose flow magnitude is averaged (0.05)."
    )
    pairs_per_batch: int = Field(8, ge=1, description="Frame pairs given to RAFT at once (memory).")


class DynamicDegreeOptions(MotionOptions):
    threshold: float = Field(
        6.0, gt=0, description="Pair score (pixels at a short side of 256) above which a pair moves (VBench: 6)."
    )


def tiny_raft(seed: int = 0) -> Any:
    """A seeded tiny random RAFT built from torchvision's own RAFT components (raft_small's layout, narrow)."""
    from torch.nn import InstanceNorm2d
    from torchvision.models.optical_flow.raft import (
        RAFT,
        BottleneckBlock,
        CorrBlock,
        FeatureEncoder,
        FlowHead,
        MotionEncoder,
        RecurrentBlock,
        UpdateBlock,
    )

    hidden, context = 16, 28
    with seeded(seed):
        corr = CorrBlock(num_levels=4, radius=3)
        motion = MotionEncoder(
            in_channels_corr=corr.out_channels, corr_layers=(16,), flow_layers=(16, 8), out_channels=20
        )
        update = UpdateBlock(
            motion_encoder=motion,
            recurrent_block=RecurrentBlock(
                input_size=motion.out_channels + context - hidden, hidden_size=hidden, kernel_size=(3,), padding=(1,)
            ),
            flow_head=FlowHead(in_channels=hidden, hidden_size=16),
        )
        return RAFT(
            feature_encoder=FeatureEncoder(block=BottleneckBlock, layers=(8, 8, 12, 16, 24), norm_layer=InstanceNorm2d),
            context_encoder=FeatureEncoder(block=BottleneckBlock, layers=(8, 8, 12, 16, context), norm_layer=None),
            corr_block=corr,
            update_block=update,
        )


def top_mean(magnitude: torch.Tensor, share: float) -> torch.Tensor:
    """Mean of the largest ``int(share * pixels)`` values (at least one) of each map ``(N, H, W)``: ``(N,)``."""
    flat = magnitude.flatten(1)
    k = max(1, int(flat.shape[1] * share))
    return flat.topk(k, dim=1).values.mean(dim=1)


def required_pairs(frames: int) -> int:
    """Moving pairs a video of ``frames`` (sampled) frames needs to be dynamic: VBench's ``round(4 * frames / 16)``,
    at least 1 (VBench's rounding gives 0 for two frames, which would call every 2-frame video dynamic)."""
    return max(1, round(4 * frames / 16))


class Motion(MetricPlugin):
    """Mean over consecutive frame pairs of the fastest 5 % of RAFT flow magnitudes, in pixels at a 256 short side."""

    name = "motion"
    summary = "How much the video moves: RAFT optical flow, top-5% magnitude per frame pair (VBench), guard metric."
    Options: ClassVar = MotionOptions
    value_range = (0.0, float("inf"))

    def __init__(self, options: MotionOptions | None = None) -> None:
        super().__init__(options)
        self.raft: torch.nn.Module | None = None

    # -------------------------------------------------------------------------------------------- loading
    def _state_dict(self) -> dict[str, Any]:
        import torch
        from torchvision.models.optical_flow import Raft_Large_Weights, Raft_Small_Weights

        o = self.options
        enum = {"raft_large": Raft_Large_Weights, "raft_small": Raft_Small_Weights}[o.model]
        weights = getattr(enum, WEIGHTS[o.model])
        filename = Path(weights.url).name
        hint = (
            f"download {weights.url} once (torchvision fetches it into {Path(torch.hub.get_dir()) / 'checkpoints'}) "
            f"or give its path with the metric option `weights_path` (`--set validation.metrics.N.weights_path=PATH`)"
        )
        if o.weights_path:
            path = Path(o.weights_path).expanduser()
            if not path.is_file():
                raise MissingWeightsError(f"{self.name}: `weights_path` {o.weights_path!r}: no such file; {hint}")
        else:
            path = Path(torch.hub.get_dir()) / "checkpoints" / filename
            if not path.is_file():
                if hub_offline():
                    raise MissingWeightsError(
                        f"{self.name}: {o.model} weights `{filename}` are not in the torch hub cache and "
                        f"HF_HUB_OFFLINE is set; {hint}"
                    )
                try:
                    return weights.get_state_dict(progress=False, check_hash=True)
                except Exception as e:  # noqa: BLE001 - no network, a proxy, a bad hash: all mean "not available"
                    raise MissingWeightsError(
                        f"{self.name}: cannot download {o.model} weights `{filename}` ({type(e).__name__}: "
                        f"{first_line(e, 120)}); {hint}"
                    ) from None
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                return load_file(str(path))
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001
            raise CheckpointError(
                f"{self.name}: cannot read {o.model} weights from {path}: {type(e).__name__}: {first_line(e, 160)}"
            ) from None

    def load(self, device: torch.device | str, dtype: torch.dtype) -> None:
        """torchvision's RAFT with its released weights (``weights_path`` or the torch hub cache), in float32.

        The flow runs in float32 whatever the run's dtype: a guard that misjudges motion in bf16 guards nothing.
        """
        from torchvision.models.optical_flow import raft_large, raft_small

        model = {"raft_large": raft_large, "raft_small": raft_small}[self.options.model](weights=None)
        state = self._state_dict()
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise CheckpointError(
                f"{self.name}: the weights do not fit torchvision's {self.options.model}: "
                f"{first_line(e, 200)}; give the {self.options.model} state dict"
            ) from None
        self._setup(model, device)

    def load_tiny(self, device: torch.device | str, dtype: torch.dtype, seed: int = 0) -> None:
        """A tiny random RAFT of torchvision's classes, for tests (its flow is not meaningful)."""
        self._setup(tiny_raft(seed), device)

    def _setup(self, model: Any, device: Any) -> None:
        import torch

        self.raft = freeze(model, device, torch.float32)
        super().load(device, torch.float32)

    # -------------------------------------------------------------------------------------------- scoring
    def sampled(self, video: torch.Tensor) -> torch.Tensor:
        """The frames VBench would use: every ``round(fps / 8)``-th (all frames without ``fps``)."""
        fps = self.options.fps
        stride = max(1, round(fps / 8)) if fps else 1
        return video[:, ::stride]

    def flow(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """RAFT flow ``(N, 2, H, W)`` in pixels from ``first`` to ``second``, frames ``(N, 3, H, W)`` in [0, 1]
        of at least :data:`MIN_SIDE` pixels; the frames are padded to a multiple of 8 by repeating their
        borders, centred (VBench's ``InputPadder``), and the flow is cropped back."""
        import torch
        import torch.nn.functional as F

        h, w = first.shape[-2:]
        ph, pw = -h % 8, -w % 8
        pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
        x = F.pad(torch.cat([first, second]) * 2 - 1, pad, mode="replicate")
        a, b = x.chunk(2)
        flow = self.raft(a, b, num_flow_updates=self.options.flow_updates)[-1]
        return flow[:, :, pad[2] : pad[2] + h, pad[0] : pad[0] + w]

    def pair_scores(self, video: torch.Tensor) -> torch.Tensor:
        """``(B, P)`` scores of the ``P`` consecutive pairs of sampled frames: the mean flow magnitude of the
        fastest ``top`` share of pixels, in pixels at a short side of 256. Frames with a short side under
        :data:`MIN_SIDE` are upscaled to it first (bilinear), which the normalisation cancels."""
        import torch
        import torch.nn.functional as F

        frames = self.sampled(video).to(device=self.device, dtype=torch.float32)
        b, f, c, h, w = frames.shape
        if f < 2:
            raise ValueError(f"metric `{self.name}` needs at least two (sampled) frames, got {f}")
        x = frames.flatten(0, 1)
        if min(h, w) < MIN_SIDE:
            s = MIN_SIDE / min(h, w)
            x = F.interpolate(x, size=(max(MIN_SIDE, round(h * s)), max(MIN_SIDE, round(w * s))), mode="bilinear")
        x = x.view(b, f, c, *x.shape[-2:])
        first, second = x[:, :-1].flatten(0, 1), x[:, 1:].flatten(0, 1)
        n = self.options.pairs_per_batch
        scores = []
        for i in range(0, first.shape[0], n):
            flow = self.flow(first[i : i + n], second[i : i + n])
            scores.append(top_mean(flow.norm(dim=1), self.options.top))
        return (torch.cat(scores) * 256.0 / min(x.shape[-2:])).view(b, f - 1).cpu()

    def compute(self, video: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        return self.pair_scores(video).mean(dim=1)


class DynamicDegree(Motion):
    """VBench's dynamic degree of each video: 1 when enough frame pairs move (RAFT top-5% flow above the
    threshold), else 0; its mean over videos is the share of moving videos."""

    name = "dynamic_degree"
    summary = "VBench's dynamic degree: 1 if enough frame pairs move (RAFT flow), else 0; mean = share moving."
    Options: ClassVar = DynamicDegreeOptions
    value_range = (0.0, 1.0)

    def compute(self, video: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        scores = self.pair_scores(video)
        need = required_pairs(scores.shape[1] + 1)
        return ((scores > self.options.threshold).sum(dim=1) >= need).float()
