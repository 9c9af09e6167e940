"""What a training run does around its steps, one concern per module (the loop is :mod:`vader_core.trainer`).

- :mod:`.validation`: held-out videos and rewards, guard metrics, ``best/``, samples, before/after;
- :mod:`.records`: the run's state, ``metrics.jsonl`` / ``validation.jsonl``, ``summary.json``, the
  reward curve;
- :mod:`.loggers`: TensorBoard, wandb, the progress bar;
- :mod:`.state`: saving a checkpoint, resuming from one, starting afresh;
- :mod:`.optim`: AdamW and the learning-rate schedule, and the update of a step (reduce, clip, step or
  skip);
- :mod:`.distributed`: each process's accelerator and seeds, the reductions and gathers across
  processes, and the skip decision every process agrees on;
- :mod:`.sharding`: FSDP2 and sequence parallelism.
"""
