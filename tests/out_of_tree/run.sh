#!/usr/bin/env bash
# Installs ardkit from BUILD_DIR into a scratch prefix, builds the plugin in this folder against
# it with nothing but find_package(ardkit) + ardkit_add_plugin, and runs an experiment using it.
set -euo pipefail
build_dir=$1
work=$2
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work"
mkdir -p "$work"
cmake --install "$build_dir" --prefix "$work/prefix" > "$work/install.log"
launcher=()
if command -v ccache > /dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
cmake -S "$here" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$work/prefix" \
  "${launcher[@]}" > "$work/configure.log"
cmake --build "$work/build" > "$work/build.log"
ardkit=$work/prefix/bin/ardkit
"$ardkit" plugins list --plugin-path "$work/build" | tee "$work/list.txt"
grep -E "^attack +random_corner +0\.1\.0 +noise_attack\.so" "$work/list.txt"
grep -E "^objective +corner_mix +0\.1\.0 +noise_attack\.so" "$work/list.txt"
grep -E "^attack +pgd " "$work/list.txt"  # the installed built-ins are still there
"$ardkit" run "$here/experiment.toml" --plugin-path "$work/build" --output "$work/runs" | tee "$work/run.txt"
grep -E "random_corner" "$work/run.txt"
results=$(ls "$work"/runs/oot-*/results.json)
grep -q '"random_corner"' "$results"
grep -q '"objective": "corner_mix"' "$results"
echo "out-of-tree plugin built, listed and used"
