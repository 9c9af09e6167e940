"""Time and peak GPU memory of the guard metrics on Wan-sized videos (480x832, 81 frames at 16 fps).

Random weights of the real architectures (no download): ``motion`` with ``raft_large`` and ``raft_small``
(``fps: 16``: 41 frames, 40 pairs, 20 refinements each) and ``diversity``'s VideoMAE-base features, one video
at a time, in float32 (motion) and bf16 (diversity). Printed: the median time of 3 runs after a warm-up and
the peak memory. The ratio raft_large / raft_small is what choosing the small model saves. Needs a CUDA GPU::

    python plugins/vader-video-rewards/scripts/measure_guard_metrics.py
"""

from __future__ import annotations

import json
import statistics
import time


def timed(fn, video) -> tuple[float, float]:  # noqa: ANN001
    import torch

    fn(video)
    times = []
    torch.cuda.reset_peak_memory_stats()
    for _ in range(3):
        torch.cuda.synchronize()
        t = time.perf_counter()
        fn(video)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times), torch.cuda.max_memory_allocated() / 2**30


def main() -> None:
    import torch
    from torchvision.models.optical_flow import raft_large, raft_small
    from transformers import VideoMAEConfig, VideoMAEModel
    from vader_video_rewards import Diversity, Motion

    video = torch.rand(1, 81, 3, 480, 832)
    rows = []
    for model, builder in (("raft_large", raft_large), ("raft_small", raft_small)):
        m = Motion(Motion.Options(model=model, fps=16))
        m._setup(builder(weights=None), "cuda")
        s, gb = timed(lambda v, m=m: m(v, ["x"]), video)
        rows.append({"metric": f"motion ({model})", "s_per_video": s, "peak_gb": gb})
    d = Diversity()
    d._setup(VideoMAEModel(VideoMAEConfig(use_mean_pooling=True)), "cuda", torch.bfloat16)
    s, gb = timed(lambda v: d.video_features(v, ["x"]), video)
    rows.append({"metric": "diversity (VideoMAE-base features)", "s_per_video": s, "peak_gb": gb})
    rows.append({"ratio raft_large / raft_small": rows[0]["s_per_video"] / rows[1]["s_per_video"]})
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
