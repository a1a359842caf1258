#!/usr/bin/env bash
# Reproduces the README's Fashion-MNIST distillation table: sets up and builds, trains the PGD-AT
# teacher once (experiments/fmnist/distill/teacher.toml, run first by the first student that
# names it), every distillation method from that teacher and the student baselines, then prints
# one table of clean, FGSM, PGD-20, CW-inf and AutoAttack accuracy, last and best checkpoints.
# Re-running reuses finished runs; an interrupted one resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
bash tools/build.sh
out=runs/fmnist-distill
for method in natural pgd_at trades kd ard rslad iad adaad gacd gacd_infonce; do
  build/bin/ardkit run "experiments/fmnist/distill/$method.toml" --output "$out"
done
echo
echo "Fashion-MNIST, eps = 0.1, accuracy (%) on the first 300 test images:"
build/bin/ardkit report "$out"
