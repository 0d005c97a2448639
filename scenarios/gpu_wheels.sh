#!/usr/bin/env bash
# The project's own dependencies that a GPU machine's Python environment lacks, as wheels that
# scenarios/gpu_check.sh installs there offline (--no-index --no-deps, into a folder on
# PYTHONPATH). Run it on a machine with network; it writes gpu-wheels/ (ignored by git; send it
# beside the working tree), at most 10 MiB.
#
#   bash scenarios/gpu_wheels.sh [PYTHON_VERSION]     # default 3.12, the GPU machine's Python
#
# What the GPU environment is assumed to hold already (a CUDA torch, numpy, pandas, matplotlib,
# rich, typer, nvidia-ml-py, scipy, pytest, safetensors, transformers and what they need) is not
# carried; fvcore's and iopath's own small needs are (tabulate, portalocker, termcolor, yacs). The optional extras (peers, MiniLM weights, ray, selenium) are not carried either:
# their tests and rows skip, saying why.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
target=${1:-3.12}
python=${PYTHON:-python3}
dest=gpu-wheels
limit=$((10 * 1024 * 1024))
# Pinned: the versions the suite runs with (pyproject.toml's ranges admit them).
PURE=(termcolor==3.3.0 yacs==0.1.8 tabulate==0.10.0 portalocker==4.4.2 setuptools==80.9.0)   # setuptools: builds attnbench where the environment has none
SDIST_ONLY=(fvcore==0.1.5.post20221221 iopath==0.1.10)   # no wheel on PyPI: built here, pure Python
COMPILED=(ruptures==1.1.10)                              # a manylinux wheel for the target Python

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$python" -m pip download -q --no-deps --only-binary=:all: -d "$scratch" "${PURE[@]}"
"$python" -m pip wheel -q --no-deps -w "$scratch" "${SDIST_ONLY[@]}"
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version "$target" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$scratch" "${COMPILED[@]}"
size=$(du -cb "$scratch"/*.whl | tail -1 | cut -f1)
if [ "$size" -gt "$limit" ]; then
  echo "gpu_wheels: the wheels take $size bytes, over the 10 MiB that travels with the tree" >&2
  exit 1
fi
rm -rf "$dest"
mkdir -p "$dest"
cp "$scratch"/*.whl "$dest"/
echo "gpu_wheels: $(ls "$dest" | wc -l) wheels for Python $target in $dest/ ($((size / 1024)) KiB):"
ls "$dest"
