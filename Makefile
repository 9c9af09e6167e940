# Set-up and everyday commands. Every target creates the virtual environment and installs what it
# needs, so each works on a fresh clone: `make demo` (offline main job), `make test` (all tests).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
PLUGINS := $(sort $(wildcard plugins/vader-*))
PLUGIN_TESTS := $(wildcard $(addsuffix /tests,$(PLUGINS)))
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test test-core lint format docs bench bench-gpu clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first, pinned, so no other requirement pulls a different build.
$(STAMP): pyproject.toml $(wildcard plugins/*/pyproject.toml) | $(PY)
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q -e ".[test]" $(addprefix -e ,$(PLUGINS))
	touch $(STAMP)

install: $(STAMP)

# A fresh demo each time: vader refuses to overwrite an earlier run's checkpoints.
demo: install
	rm -rf runs/demo-toy
	$(VENV)/bin/vader train --config examples/demo-toy.yaml
	$(PY) -m vader_plugins.toy.quality --run runs/demo-toy
	$(VENV)/bin/vader eval --config runs/demo-toy/config.yaml --lora runs/demo-toy/checkpoints/step-30 \
		--lora-scale 0.75 --lora-scale 1 --metric toy_color --metric toy_direction --max-prompts 41 \
		--batch-size 41 --grid-rows 4 --frames 0,2,4,6 --out runs/demo-toy/eval

# Two workers of one thread each: more torch threads than cores slows the suite tenfold.
test: install
	OMP_NUM_THREADS=1 $(PY) -m pytest tests $(PLUGIN_TESTS) -q -n 2 --durations=10

test-core: install
	$(PY) -m pytest tests -q

# ruff (lint + format) on the whole repository and mypy on vader_core; `make test` checks the same through
# tests/test_lint.py.
lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: install
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

docs: install
	$(PY) -m vader_core.docs_gen docs/cli.md docs/configuration.md

clean:
	rm -rf $(VENV) runs build *.egg-info

# Benchmarks: writes docs/benchmarks.md, docs/benchmarks.json and docs/img/bench-*.png.
bench: install
	$(PY) -m benchmarks.run

# GPU benchmark (needs a CUDA GPU; under 8 minutes on one H100/H200): real-size random-weight backbones,
# one K=1 bf16 training step each; writes docs/benchmarks.json under `gpu`.
bench-gpu: install
	$(PY) -m benchmarks.gpu
