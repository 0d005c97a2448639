# Two entry points for a fresh machine: `make run` (set-up + a real benchmark, CSV and plots in
# reports/) and `make test` (set-up + the test suite). Everything else here serves those two.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is installed on its own, before the project, so that pip never resolves the project's
# torch requirement to a multi-GB CUDA build: first a wheel already on this disk (pip's
# find-links), else PyTorch's CPU index. An importable torch (e.g. a CUDA build) is kept.
TORCH_VERSION ?= 2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: setup run test lint clean

$(BIN)/attnbench: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv --system-site-packages $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null \
	  || $(BIN)/pip install --no-deps --no-index "torch==$(TORCH_VERSION)" \
	  || $(BIN)/pip install --no-deps --index-url $(TORCH_CPU_INDEX) "torch==$(TORCH_VERSION)"
	$(BIN)/pip install -e ".[dev]"
	touch $@

setup: $(BIN)/attnbench

run: setup
	@mkdir -p reports
	out=reports/run-$$(date +%Y%m%d-%H%M%S).csv; \
	$(BIN)/attnbench run --method full,full-explicit,kernelized,skyformer,sbm,smartbird --seq 512..4096 -p density=0.01 --heads 4 --head-dim 64 -o $$out \
	  && $(BIN)/attnbench plot $$out -o reports

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info
