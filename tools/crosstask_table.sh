#!/usr/bin/env bash
# Reproduces docs/methods.md's cross-task table: a GACD student on Fashion-MNIST classes 5-9 distilled
# from a teacher trained on classes 0-4, and a 3-class coarse student distilled from the 10-class
# teacher of experiments/fmnist/distill/, each next to the same student trained on its task alone
# (PGD-AT, TRADES). Shares runs/fmnist-distill with experiments/fmnist/grids/methods.toml, so the 10-class teacher
# is trained once. Soft-label methods (kd, ard, rslad, iad, adaad) refuse these pairs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
bash tools/build.sh
out=runs/fmnist-distill
for experiment in pgd_at_5to9 trades_5to9 gacd_5to9 pgd_at_coarse gacd_coarse; do
  build/bin/ardkit run "experiments/fmnist/crosstask/$experiment.toml" --output "$out"
done
echo
echo "Fashion-MNIST cross-task, eps = 0.1, accuracy (%) on the first 300 test images of each task:"
build/bin/ardkit report "$out"/fmnist-teacher-0to4-* "$out"/fmnist-x-*
