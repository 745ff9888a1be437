# Quick start: `make demo` and `make test` create .venv and install what they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# This machine has a local CPU build of torch; an unpinned torch would pull a multi-GB CUDA build.
# pyproject.toml keeps a range; override TORCH_SPEC elsewhere (e.g. TORCH_SPEC=torch for CUDA).
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= dev
STAMP := $(VENV)/.installed-$(EXTRAS)

.PHONY: install test test-slow test-gpu demo lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check "$(TORCH_SPEC)"
	$(PY) -m pip install -q --disable-pip-version-check -e ".[$(EXTRAS)]"
	# basic-pitch's wheel only provides its ONNX model here; its TensorFlow requirement is not needed
	$(PY) -m pip install -q --disable-pip-version-check --no-deps basic-pitch==0.4.0
	touch $@

test: install
	$(PY) -m pytest -q -m "not slow and not gpu"

test-slow: install
	$(PY) -m pytest -q -m slow

# On a CUDA machine, with a CUDA build of torch: make test-gpu TORCH_SPEC=torch
test-gpu: install
	$(PY) -m pytest -q -m gpu

demo: install
	$(VENV)/bin/clamp3 demo

lint: install
	$(VENV)/bin/ruff check src tests benchmarks evaluation
	$(VENV)/bin/ruff format --check .

bench: install
	$(PY) benchmarks/encode_throughput.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
