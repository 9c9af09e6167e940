"""What a training run does around its steps, one concern per module (the loop is :mod:`vader_core.trainer`).

- :mod:`.validation`: held-out videos and rewards, guard metrics, ``best/``, samples, before/after;
- :mod:`.records`: the run's state, ``metrics.jsonl`` / ``validation.jsonl``, ``summary.json``, the
  reward curve;
- :mod:`.loggers`: TensorBoard, wandb, the progress bar;
- :mod:`.state`: saving a checkpoint and resuming from one;
- :mod:`.distributed`: the reductions and gathers across processes, and the skip decision every
  process agrees on.
"""
