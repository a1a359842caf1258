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
# No CMAKE_BUILD_TYPE, as an author who does not think of it: the package makes it Release.
cmake -S "$here" -B "$work/build" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_EXPORT_COMPILE_COMMANDS=ON "${launcher[@]}" > "$work/configure.log"
cmake --build "$work/build" > "$work/build.log"
grep -q -- "-O3" "$work/build/compile_commands.json" || { echo "plugin built unoptimised"; exit 1; }
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
# The run remembers its plugin folder: evaluating it again needs no --plugin-path.
"$ardkit" eval "$(dirname "$results")" --which last --points 64 -o "$work/eval.json" | tee "$work/eval.txt"
grep -q '"random_corner"' "$work/eval.json"
echo "out-of-tree plugin built, listed and used"
