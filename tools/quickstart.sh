#!/usr/bin/env bash
# Sets up, builds, and runs the quickstart: a naturally trained and a PGD-trained small CNN on
# Fashion-MNIST, both evaluated clean / FGSM / PGD-20 at eps 0.1, then one table of both.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
bash tools/build.sh
build/bin/ardkit run experiments/fmnist/natural.toml --output runs/quickstart
build/bin/ardkit run experiments/fmnist/quickstart.toml --output runs/quickstart
echo
echo "Fashion-MNIST, eps = 0.1, accuracy (%) on 2000 test points:"
build/bin/ardkit report runs/quickstart
