#!/usr/bin/env bash
# The examples/ plugins as their authors use them: installs ardkit from BUILD_DIR into a scratch
# prefix, builds examples/ against it with nothing but find_package(ardkit) + ardkit_add_plugin,
# lists the plugins, checks a declared need, trains a teacher and a student with them and
# evaluates the student again from its run folder.
set -euo pipefail
build_dir=$1
work=$2
examples=$(cd "$(dirname "$0")/../../examples" && pwd)
rm -rf "$work"
mkdir -p "$work"
cmake --install "$build_dir" --prefix "$work/prefix" > "$work/install.log"
# The SDK is what is installed to build against: the contract's headers and libardkit_sdk. The
# host (libardkit_host, the registry) is installed for the ardkit binary, with no header.
test -f "$work/prefix/include/ardkit/ardkit.hpp"
test -f "$work/prefix/include/ardkit/distill.hpp"
test ! -e "$work/prefix/include/ardkit/host"
test ! -e "$work/prefix/include/ardkit/trainer.hpp"
for lib in libardkit_sdk.so libardkit_host.so; do
  find "$work/prefix" -name "$lib" | grep -q . || { echo "$lib is not installed"; exit 1; }
done
if grep -rl "ardkit_host\|ardkit_registry\|host/include" "$(dirname "$(find "$work/prefix" -name ardkitConfig.cmake)")"; then
  echo "the installed package exports a host target"
  exit 1
fi
launcher=()
if command -v ccache > /dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
# The compiler ardkit was built with: the ABI handshake refuses plugins from another one (the
# sanitizer build is clang's).
compiler=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$build_dir/CMakeCache.txt")
[ -n "$compiler" ] && launcher+=(-DCMAKE_CXX_COMPILER="$compiler")
# No CMAKE_BUILD_TYPE, as an author who does not think of it: the package makes it Release.
cmake -S "$examples" -B "$work/build" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_EXPORT_COMPILE_COMMANDS=ON "${launcher[@]}" > "$work/configure.log"
cmake --build "$work/build" > "$work/build.log"
grep -q -- "-O3" "$work/build/compile_commands.json" || { echo "plugins built unoptimised"; exit 1; }
ardkit=$work/prefix/bin/ardkit
"$ardkit" plugins list --plugin-path "$work/build" | tee "$work/list.txt"
grep -E "^attack +mi_fgsm +0\.1\.0 +example_mi_fgsm\.so" "$work/list.txt"
grep -E "^objective +teacher_trades +0\.1\.0 +example_teacher_trades\.so" "$work/list.txt"
grep -E "^model +mlp +0\.1\.0 +example_mlp\.so" "$work/list.txt"
grep -E "^attack +pgd " "$work/list.txt"  # the installed built-ins are still there
"$ardkit" plugins show teacher_trades --plugin-path "$work/build" | tee "$work/show.txt"
grep -q "needs: a \[teacher\] table, an \[attack\] table, a teacher of the student's label space" "$work/show.txt"
# The objective's declared needs: without [attack] the experiment is refused before it runs.
mkdir -p "$work/edited"
cp "$examples/teacher.toml" "$work/edited/"
sed '/^\[attack\]/,/^steps/d' "$examples/experiment.toml" > "$work/edited/no_attack.toml"
if "$ardkit" validate "$work/edited/no_attack.toml" --plugin-path "$work/build" 2> "$work/no_attack.txt"; then
  echo "an experiment without the [attack] teacher_trades needs was accepted"; exit 1
fi
grep -q "\[objective\] 'teacher_trades' trains on adversarial examples" "$work/no_attack.txt"
# The teacher (teacher.toml) trains first, then the student distills from it.
"$ardkit" run "$examples/experiment.toml" --plugin-path "$work/build" --output "$work/runs" \
  2> "$work/run.log" | tee "$work/run.txt"
grep -q "examples-teacher" "$work/run.log"
results=$(ls "$work"/runs/examples-student-*/results.json)
grep -q '"objective": "teacher_trades"' "$results"
grep -q '"architecture": "mlp"' "$results"
# MI-FGSM hurts the student: robust accuracy below clean (the numbers are the run's own).
python3 - "$results" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["best"]
assert r["attacks"]["mi_fgsm"]["robust_acc"] < r["clean_acc"], r
assert r["attacks"]["pgd20"]["robust_acc"] <= r["attacks"]["mi_fgsm"]["robust_acc"] + 10, r
PY
# The knob the example objective declares moved with the hook: 0 at the first step, 6 later.
metrics=$(ls "$work"/runs/examples-student-*/metrics.jsonl)
python3 - "$metrics" <<'PY'
import json, sys
steps = [json.loads(l) for l in open(sys.argv[1]) if '"type": "step"' in l or '"type":"step"' in l]
betas = [s["knob.beta"] for s in steps]
assert betas[0] == 0.0 and betas[-1] == 6.0, betas[:3] + betas[-3:]
PY
# The run remembers its plugin folder: evaluating it again needs no --plugin-path.
"$ardkit" eval "$(dirname "$results")" --which last --points 64 -o "$work/eval.json" | tee "$work/eval.txt"
grep -q '"mi_fgsm"' "$work/eval.json"
echo "examples built against the installed package, listed, refused without [attack], trained and evaluated"
