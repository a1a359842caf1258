#!/usr/bin/env bash
# Sets up, builds, and runs the whole test suite (unit, command-line, PyTorch interop and
# out-of-tree plugin tests), then the unit tests again under AddressSanitizer and
# UndefinedBehaviorSanitizer (tools/sanitize.sh, its own build in build-asan/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh --tests
bash tools/build.sh
ctest --test-dir build --output-on-failure -j 2
bash tools/sanitize.sh
