#!/usr/bin/env bash
# Sets up, builds, and runs the whole test suite (unit, command-line, PyTorch interop and
# out-of-tree plugin tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh --tests
bash tools/build.sh
ctest --test-dir build --output-on-failure -j 2
