#!/usr/bin/env bash
# Fuzzes ardkit's input readers with libFuzzer, each target for SECONDS (default: an hour).
#   bash tools/fuzz.sh [SECONDS] [TARGET...]     TARGET: toml datasets pytorch_file results
# Builds the sanitizer configuration first (tools/sanitize.sh's build-asan/). The corpus grows in
# build-asan/tests/fuzz/corpus/TARGET; a crash, sanitizer report, escaped exception or hang
# stops that target and leaves its input in build-asan/tests/fuzz/findings/. Fix it, then add
# the input to tests/fuzz/regressions/TARGET/: every test run replays it from then on.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-3600}"
shift || true
targets=("$@")
((${#targets[@]})) || targets=(toml datasets pytorch_file results)
if [ ! -f build-asan/build.ninja ]; then
  CC=clang-14 CXX=clang++-14 cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DARDKIT_WERROR=ON -DARDKIT_SANITIZE=address,undefined -DARDKIT_FUZZ=ON
fi
cmake --build build-asan --target "${targets[@]/#/fuzz_}"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
out=build-asan/tests/fuzz
status=0
for t in "${targets[@]}"; do
  seeds=(tests/fuzz/corpus/"$t")
  [ "$t" == toml ] && seeds+=(experiments)
  [ -d tests/fuzz/regressions/"$t" ] && seeds+=(tests/fuzz/regressions/"$t")
  mkdir -p "$out/corpus/$t" "$out/findings"
  echo "== fuzz_$t for ${seconds}s" >&2
  if ! build-asan/bin/fuzz_"$t" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 -max_len=65536 \
      -print_final_stats=1 -artifact_prefix="$out/findings/$t-" "$out/corpus/$t" "${seeds[@]}"; then
    echo "fuzz_$t: finding in $out/findings/ (see above)" >&2
    status=1
  fi
done
exit $status
