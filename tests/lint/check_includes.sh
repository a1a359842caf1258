#!/usr/bin/env bash
# Two include rules a compiler cannot see here:
# - In-tree plugins compile with a precompiled header that includes fmt, so a plugin that uses fmt
#   without including it builds here and fails for an author who copies it out of the tree. Every
#   source under plugins/ and examples/ that names fmt:: must include a fmt header itself.
# - The plugin contract (core/include/ardkit/, what <ardkit/ardkit.hpp> gathers and what is
#   installed as include/ardkit/) never includes the host's internals (ardkit/host/), and no
#   plugin or example does: those may change without an ABI bump.
set -euo pipefail
cd "$(dirname "$0")/../.."
status=0
while IFS= read -r file; do
  if grep -q 'fmt::' "$file" && ! grep -q '#include <fmt/' "$file"; then
    echo "$file: uses fmt:: without #include <fmt/format.h>"
    status=1
  fi
done < <(find plugins examples -name '*.cpp' -o -name '*.hpp' 2> /dev/null | sort)
while IFS= read -r file; do
  if grep -qE '#include [<"]ardkit/host/' "$file"; then
    echo "$file: includes a host header (ardkit/host/); plugins and the contract must not"
    status=1
  fi
done < <({ find core/include/ardkit -maxdepth 1 -name '*.hpp'; find core/include/ardkit/nn plugins examples -name '*.cpp' -o -name '*.hpp'; } 2> /dev/null | sort)
[ "$status" = 0 ] && echo "plugin sources include what they use of fmt; the contract includes no host header"
exit "$status"
