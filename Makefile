# Two entry points for a fresh machine: `make run` (set-up + a real benchmark, CSV and plots in
# reports/) and `make test` (set-up + the test suite). Everything else here serves those two.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is installed on its own, before the project, so that pip never resolves the project's
# torch requirement to a multi-GB CUDA build: first a wheel already on this disk (pip's
# find-links), else PyTorch's CPU index. An importable torch (e.g. a CUDA build) is kept.
# On a GPU machine, name a CUDA index instead (README, "On a GPU"):
#   make setup TORCH_INDEX=https://download.pytorch.org/whl/cu126
TORCH_VERSION ?= 2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=

.PHONY: setup run test lint clean gpu-check

$(BIN)/attnbench: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv --system-site-packages $(VENV)
ifeq ($(TORCH_INDEX),)
	$(BIN)/python -c "import torch" 2>/dev/null \
	  || $(BIN)/pip install --no-deps --no-index "torch==$(TORCH_VERSION)" \
	  || $(BIN)/pip install --no-deps --index-url $(TORCH_CPU_INDEX) "torch==$(TORCH_VERSION)"
else
	$(BIN)/pip install --index-url $(TORCH_INDEX) "torch==$(TORCH_VERSION)"
	$(BIN)/python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'torch from $(TORCH_INDEX) sees no CUDA GPU')"
endif
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

# The GPU acceptance run (README, "On a GPU"), sized for about 10 minutes on one H100/H200 (an
# estimate, not yet run on a GPU): the CUDA tests, the gpu_check grid (every method at 1k, 4k, 16k,
# bf16, forward and backward), float32 and peak-memory cases at 8k, compiled and CUDA-graph cases
# (their own report: same cases, other timing), a sweep under a small device-memory cap that must
# give 'oom' rows (its own report too), a short timing A/A run (the GPU's one-process threshold),
# and the plots.
# One name for the whole run: `:=` evaluates the date once (`?=` would at each use).
GPU_REPORT := reports/gpu-check-$(shell date +%Y%m%d-%H%M%S).csv
gpu-check: setup
	$(BIN)/python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu-check needs a CUDA GPU')"
	$(BIN)/python -m pytest tests/test_gpu.py tests/test_gpu_ready.py tests/test_causal.py -v
	$(BIN)/attnbench sweep scenarios/gpu_check.toml -o $(GPU_REPORT) --quiet
	$(BIN)/attnbench sweep scenarios/gpu_check.toml -m full,full-explicit,sdpa-flash,flex,skyformer -n 8k --dtype float32,bfloat16 --metrics memory,time -o $(GPU_REPORT) --append --quiet
	$(BIN)/attnbench sweep scenarios/gpu_check.toml -m full,flex,skyformer,bigbird -n 4k --mode forward --compile -o $(GPU_REPORT) --append --quiet
	$(BIN)/attnbench sweep scenarios/gpu_check.toml -m full,sdpa-flash,skyformer -n 4k --mode forward --cuda-graphs -o $(GPU_REPORT:.csv=-graphs.csv) --quiet
	$(BIN)/attnbench sweep scenarios/gpu_check.toml -m full-explicit,sdpa-math -n 8k,16k --dtype float32 --mode forward --max-memory 256MB -o $(GPU_REPORT:.csv=-oom.csv) --quiet
	$(BIN)/python -c "import csv, sys; rows = list(csv.DictReader(open('$(GPU_REPORT:.csv=-oom.csv)'))); sys.exit(0 if any(r['status'] == 'oom' for r in rows) else 'no oom row under --max-memory 256MB')"
	$(BIN)/attnbench sweep llm_prefill_gpu -n 4k,16k -o $(GPU_REPORT:.csv=-prefill.csv) --quiet
	$(BIN)/attnbench sweep llm_decode_gpu -n 8k,128k -o $(GPU_REPORT:.csv=-decode.csv) --quiet
	$(BIN)/python scenarios/timing_aa.py --device cuda --reps 3 --processes 3 --min-time 0.1 --max-time 0.5
	$(BIN)/attnbench plot $(GPU_REPORT) -o reports

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info
