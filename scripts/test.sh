#!/usr/bin/env bash
# Builds weft and runs its whole test suite, in each of the given CMake presets
# (default: release, asan, tsan). Installs missing Debian packages first.
#   scripts/test.sh                 # release + ASan/UBSan + TSan
#   scripts/test.sh release         # just one
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
presets=("$@")
((${#presets[@]})) || presets=(release asan tsan)
for p in "${presets[@]}"; do
    echo "=== weft: preset '$p' ==="
    cmake --preset "$p" >/dev/null
    cmake --build --preset "$p" -j"$(nproc)"
    ctest --preset "$p"
done
echo "=== weft: all presets passed: ${presets[*]} ==="
