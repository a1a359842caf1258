#!/usr/bin/env bash
# Builds ardkit with clang, AddressSanitizer and UndefinedBehaviorSanitizer into ./build-asan,
# with the libFuzzer targets of tests/fuzz, and runs tests there.
#   bash tools/sanitize.sh        the unit tests (schemas, registry, engine, data, attacks,
#                                 grids) and a short run of every fuzz target: what CI runs
#   bash tools/sanitize.sh all    the whole suite, the command-line tests included (the ardkit
#                                 binary they drive is the sanitized one)
# Longer fuzzing runs: tools/fuzz.sh. Clang rather than GCC: libFuzzer is clang's, and clang
# builds this configuration in a third of GCC's time (4 min cold on 2 cores, measured).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f build-asan/build.ninja ]; then
  CC=clang-14 CXX=clang++-14 cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DARDKIT_WERROR=ON -DARDKIT_SANITIZE=address,undefined -DARDKIT_FUZZ=ON
fi
if [[ "${1:-}" == "all" ]]; then
  cmake --build build-asan
else
  cmake --build build-asan --target unit_tests fuzz_toml fuzz_datasets fuzz_pytorch_file fuzz_results
fi
# Leaks are not checked: plugin libraries are never unloaded by design (RTLD_NODELETE), and
# LibTorch keeps its registries until exit. A failed allocation returns null as without ASan, so
# the tests of absurd sizes see the error ardkit reports then. Every other error aborts the test.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:check_initialization_order=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
if [[ "${1:-}" == "all" ]]; then
  ctest --test-dir build-asan --output-on-failure -j 2 -E slurm_backend
else
  ctest --test-dir build-asan --output-on-failure -j 2 -L 'unit|fuzz'
fi
