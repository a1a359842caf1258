#!/usr/bin/env bash
# Reproduces docs/data-free.md's table: the PGD-AT teacher of experiments/fmnist/distill/
# (trained once, on real data), then students that never read a training image: each data-free
# generator (DAFL, DFAD, ZSKT, BN statistics) feeding ARD and RSLAD, DFARD (BN statistics with
# adaptive balance + RSLAD + the ITA temperature hook) and its two ablations, next to ARD and
# RSLAD distilled with the real training images. Shares runs/fmnist-distill with
# the methods grid (experiments/fmnist/grids/methods.toml). Extra arguments go to every run (e.g. --set run.seed=1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
bash tools/build.sh
out=runs/fmnist-distill
for experiment in dafl_ard dafl_rslad dfad_ard dfad_rslad zskt_ard zskt_rslad bn_stats_ard \
                  bn_stats_rslad dfard dfard_no_ita dfard_no_agb; do
  build/bin/ardkit run "experiments/fmnist/datafree/$experiment.toml" --output "$out" "$@"
done
for real in ard rslad; do
  build/bin/ardkit run "experiments/fmnist/distill/$real.toml" --output "$out" "$@"
done
echo
echo "Fashion-MNIST data-free, eps = 0.1, accuracy (%) on the first 300 test images:"
build/bin/ardkit report "$out"/fmnist-datafree-* "$out"/fmnist-ard-* "$out"/fmnist-rslad-*
