#!/usr/bin/env bash
# Compile csrc/*.cu with nvcc (objects only: a CPU torch wheel cannot link CUDA extensions). The CPU
# wheel ships torch's CUDA headers but not the CMake-generated c10/cuda/impl/cuda_cmake_macros.h,
# so a one-line stand-in is written to a temp include folder first.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
command -v nvcc >/dev/null || { echo "no nvcc on this machine: nothing to check"; exit 0; }
SHIM=$(mktemp -d)
mkdir -p "$SHIM/c10/cuda/impl"
printf '#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n' > "$SHIM/c10/cuda/impl/cuda_cmake_macros.h"
INC=$("$PY" -c "import torch.utils.cpp_extension as c; print(' '.join('-I' + p for p in c.include_paths()))")
PYINC=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
for f in csrc/*.cu; do
  nvcc -c "$f" -o "$SHIM/$(basename "$f" .cu).o" -std=c++17 --expt-relaxed-constexpr -Xcompiler -fPIC \
    -I"$SHIM" $INC -I"$PYINC" -DWITH_CUDA
  echo "compiled $f"
done
rm -rf "$SHIM"
