#!/usr/bin/env bash
# Builds ardkit with AddressSanitizer and UndefinedBehaviorSanitizer into ./build-asan and runs
# tests there. `bash tools/sanitize.sh` runs the unit tests (schemas, registry, engine, data,
# attacks, grids), which CI runs; `bash tools/sanitize.sh all` runs the whole suite, the
# command-line tests included (the ardkit binary they drive is the sanitized one).
set -euo pipefail
cd "$(dirname "$0")/.."
# Warnings stay warnings here: instrumented code makes GCC 12 report false "may be used
# uninitialized" inside libstdc++'s <regex>; the normal build holds the code to -Werror.
if [ ! -f build-asan/build.ninja ]; then
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DARDKIT_WERROR=OFF \
    -DARDKIT_SANITIZE=address,undefined
fi
if [[ "${1:-}" == "all" ]]; then
  cmake --build build-asan
else
  cmake --build build-asan --target unit_tests  # and the plugins it loads
fi
# Leaks are not checked: plugin libraries are never unloaded by design (RTLD_NODELETE), and
# LibTorch keeps its registries until exit. A failed allocation returns null as without ASan, so
# the tests of absurd sizes see the error ardkit reports then. Every other error aborts the test.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:check_initialization_order=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
if [[ "${1:-}" == "all" ]]; then
  ctest --test-dir build-asan --output-on-failure -j 2 -E slurm_backend
else
  ctest --test-dir build-asan --output-on-failure -j 2 -L unit
fi
