#!/usr/bin/env bash
# Installs every Debian 12 package ardkit needs to build and run; `setup.sh --tests` adds what
# the test suite needs. Run as root. Nothing else is downloaded, ever: data and weights come
# from local paths.
set -euo pipefail
packages=(
  build-essential cmake ninja-build ccache git
  help2man                  # the ardkit(1) man page, written from the command's own help
  libtorch-dev              # LibTorch 1.13 (CPU): tensors, autograd, modules
  libopenblas0-pthread      # BLAS behind LibTorch's matmul: ~2x faster training than reference BLAS
  libboost-dev libboost-filesystem-dev libboost-program-options-dev  # Boost.DLL, Program_options
  libtomlplusplus-dev       # experiment files
  libfmt-dev                # formatting
  nlohmann-json3-dev        # status, metrics and results files
  zlib1g-dev                # gzipped IDX datasets
  libpng-dev                # grids of synthetic samples (data-free runs)
  libsqlitecpp-dev          # the results index of `ardkit report` (SQLite)
  libprotobuf-dev protobuf-compiler  # TensorBoard event files ([run] tensorboard)
  libssl-dev                # SHA-256 of weight files (OpenSSL's libcrypto)
  libjs-chart.js            # charts inlined into `ardkit report --html` pages
  doctest-dev               # unit tests
  python3                   # command-line tests
  dataset-fashion-mnist     # the quickstart's data (/usr/share/datasets/fashion-mnist)
)
if [[ "${1:-}" == "--tests" ]]; then
  packages+=(python3-torch)  # PyTorch: the reference side of the interop differential tests
  packages+=(python3-protobuf)  # decodes the TensorBoard event files in tests/cli/test_watch.py
  packages+=(slurm-wlm munge)  # a real one-node Slurm cluster for the grid's Slurm backend test
  packages+=(chromium)       # headless browser: the HTML report renders without errors
  packages+=(clang-format)   # the formatting check
  packages+=(clang-14 libclang-rt-14-dev)  # the sanitizer build and libFuzzer (tools/sanitize.sh)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
