#!/usr/bin/env bash
# Installs what weft needs to build, test and benchmark on Debian (bookworm or later).
# Runs apt-get only for packages that are missing. Usage: scripts/setup.sh [--perf]
#   (no flag)  build + tests: compiler, CMake, pkg-config, Concurrency Kit, jemalloc, cmocka
#   --perf     also the perf suite's peers and tools: oneTBB, libuv, OpenMP (libgomp ships
#              with gcc; LLVM's libomp, built with clang), OpenSSL's libcrypto (UTS SHA-1),
#              gnuplot, python3
set -euo pipefail
pkgs=(build-essential cmake pkg-config libck-dev libjemalloc-dev libcmocka-dev)
if [[ "${1:-}" == "--perf" ]]; then
    pkgs+=(g++ clang libtbb-dev libuv1-dev libomp-dev libssl-dev gnuplot-nox python3)
fi
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "weft setup: installing ${missing[*]}"
    sudo_cmd=()
    [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
    echo "weft setup: all packages present"
fi
