#!/usr/bin/env bash
# Reproduces docs/data-free.md's tables. The PGD-AT teacher of experiments/fmnist/distill/ is
# trained once, on real data; every other student never reads a training image. Four grids, three
# seeds each (experiments/fmnist/grids/datafree*.toml):
#   datafree        each generator feeding RSLAD, DFARD, its ablations and the ITA controls, each
#                   method at its own structure (generator updates per student step differ)
#   datafree_equal  the same at one budget: as many generator updates as student steps
#   datafree_agb    AGB's control: fixed BN-statistics weights swept
#   datafree_gacd   gacd without data, with and without its CE term and CE-guided attack
# Training ends with FGSM and PGD-20 on all 10,000 test images; then AutoAttack (the standard
# suite) on the first 300 with `ardkit eval`, as a gradient-masking check. Every step resumes:
# run the script again after an interruption. Extra arguments go to every grid (e.g. --jobs 1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
bash tools/build.sh
ardkit=build/bin/ardkit
grids=(datafree datafree_equal datafree_agb datafree_gacd)
for grid in "${grids[@]}"; do
  "$ardkit" grid "experiments/fmnist/grids/$grid.toml" "$@"
done
# Exactly the grids' cells (the store also holds other grids' runs, e.g. at eps 0.05).
for grid in "${grids[@]}"; do
  name=$(grep -m1 '^name' "experiments/fmnist/grids/$grid.toml" | cut -d'"' -f2)
  for id in $(grep -o '"run_id": "[^"]*"' "runs/fmnist-distill/grids/$name/cells.json" |
              cut -d'"' -f4); do
    run=runs/fmnist-distill/$id
    [[ -f $run/evals/last-test.json ]] && continue
    "$ardkit" eval "$run" --which last --suite standard --eps 0.1 --points 300 > /dev/null
  done
done
for grid in "${grids[@]}"; do
  echo
  echo "$grid: FGSM and PGD-20 on the 10,000 test images (mean ± std over seeds; budgets per run)"
  "$ardkit" report "experiments/fmnist/grids/$grid.toml" --checkpoint last --format markdown
  echo
  echo "$grid: the standard suite (AutoAttack) on the first 300 test images"
  "$ardkit" report "experiments/fmnist/grids/$grid.toml" --checkpoint eval --format markdown
done
