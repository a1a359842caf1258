#pragma once
// Named evaluation suites: an [[eval]] entry `suite = "standard"` (with the threat model's eps)
// stands for the attack tables the field reports, so experiments and `ardkit eval` need not spell
// them out.
//
//   quick      FGSM, PGD-20 (step eps/4)
//   standard   FGSM, PGD-20, CW-inf (20 steps of eps/4), AutoAttack standard
//
// With norm = "l2" the L-inf-only attacks (FGSM, CW-inf) are left out.
#include <string>
#include <vector>

#include <toml++/toml.h>

#include "ardkit/export.hpp"

namespace ardkit {

ARDKIT_API std::vector<std::string> suite_names();

// Replaces every [[eval]] entry that names a suite by that suite's attack tables, in place.
// Errors (unknown suite, missing or unknown keys, a suite entry that also names a plugin) name
// file:line:column and the fix.
ARDKIT_API void expand_suites(toml::table& root, const std::string& file);

}  // namespace ardkit
