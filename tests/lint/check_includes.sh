#!/usr/bin/env bash
# An include rule a compiler cannot see here: in-tree plugins compile with a precompiled header
# that includes fmt, so a plugin that uses fmt without including it builds here and fails for an
# author who copies it out of the tree. Every source under plugins/ and examples/ that names fmt::
# must include a fmt header itself. (That the contract and the plugins include no host header is
# a build fact: libardkit_sdk and the plugins cannot see host/include; see the test sdk_is_apart.)
set -euo pipefail
cd "$(dirname "$0")/../.."
status=0
while IFS= read -r file; do
  if grep -q 'fmt::' "$file" && ! grep -q '#include <fmt/' "$file"; then
    echo "$file: uses fmt:: without #include <fmt/format.h>"
    status=1
  fi
done < <(find plugins examples -name '*.cpp' -o -name '*.hpp' 2> /dev/null | sort)
[ "$status" = 0 ] && echo "plugin sources include what they use of fmt"
exit "$status"
