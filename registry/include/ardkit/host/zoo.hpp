#pragma once
// Models from the RobustBench model zoo by name: registry/zoo/robustbench.toml (built into the
// library) names each entry's architecture as a model plugin with the zoo's arguments, and the
// zoo's reported accuracies. A model table says `zoo = "cifar10/Linf/NAME"` and `file = "..."`
// instead of `plugin`, its parameters and `checkpoint`.
#include <string>
#include <vector>

#include <toml++/toml.h>

#include "ardkit/export.hpp"

namespace ardkit {

struct ZooEntry {
  std::string name;          // "cifar10/Linf/Wang2023Better_WRN-28-10"
  std::string architecture;  // the zoo's: "WideResNet-28-10"
  std::string family;        // the zoo class it is built as: "DMWideResNet, SiLU"
  std::string paper, eps;
  double clean = 0, autoattack = 0;  // the zoo's reported accuracy (%)
  toml::table model;                 // plugin = "...", and its parameters
};

// Every entry, in the catalogue's order.
ARDKIT_API const std::vector<ZooEntry>& zoo_entries();
// The entry of that name; an unknown name is one error line (with `where`, a suggestion and
// `ardkit zoo list`).
ARDKIT_API const ZooEntry& zoo_entry(const std::string& name, const std::string& where);

// Every model table of `root` ([student], [teacher], [model], [teachers.NAME],
// [companions.NAME]) that names `zoo`: the entry's plugin and parameters go in, `file` becomes
// `checkpoint`, and when the file exists and the table gives no sha256, its SHA-256 is recorded
// (so the resolved configuration, and the run id, name the weights). A table that also sets
// `plugin` or one of the entry's parameters is an error naming the key.
ARDKIT_API void expand_zoo(toml::table& root, const std::string& file);

}  // namespace ardkit
