"""vader's benchmark suite: `python -m benchmarks.run` (or `make bench`)."""
