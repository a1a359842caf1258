#!/usr/bin/env bash
# Configures (once) and builds ardkit in ./build with Ninja and ccache. Warnings are errors: the
# toolchain is Debian 12's, fixed, so a warning here is a warning everywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f build/build.ninja ] || ! grep -q '^ARDKIT_WERROR:BOOL=ON' build/CMakeCache.txt; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DARDKIT_WERROR=ON
fi
cmake --build build
