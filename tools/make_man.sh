#!/usr/bin/env bash
# Writes the ardkit(1) man page from the command's own help (help2man), with one section per
# command from `ardkit COMMAND --help`, so the page never drifts from the program.
set -euo pipefail
ardkit=$1
out=$2
include=$(mktemp)
trap 'rm -f "$include"' EXIT
{
  echo "[COMMANDS]"
  for command in run validate plugins eval export grid report analyze zoo; do
    echo ".SS ardkit $command"
    echo ".nf"
    # Lines starting with a dot or a quote would be roff requests.
    "$ardkit" "$command" --help | sed -e 's/\\/\\\\/g' -e "s/^\([.']\)/\\\\\&\1/"
    echo ".fi"
  done
  echo "[SEE ALSO]"
  echo "README.md, docs/ and CONTRIBUTING.md in the ardkit repository."
} > "$include"
mkdir -p "$(dirname "$out")"
help2man --locale=C.UTF-8 --no-info --no-discard-stderr --section 1 \
  --name "plugin-based adversarial robustness distillation experiments" \
  --include "$include" --output "$out" "$ardkit"
