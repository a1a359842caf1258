#pragma once
// Evaluation files: which model, on which data, against which attacks. `ardkit eval` reads one,
// or builds one from a run folder.
//
//   [model]                 # a model plugin table, with checkpoint = "..." (or a torchscript file)
//   [data]                  # a data plugin table
//   [evaluation]            # split, points, batch_size, output
//   [[eval]]                # attacks (none: clean accuracy only)
//   [run]                   # seed, device, threads, plugin_path
#include <filesystem>
#include <string>
#include <vector>

#include "ardkit/host/config.hpp"

namespace ardkit {

struct ARDKIT_API EvaluationConfig {
  std::filesystem::path file;
  Params run, evaluation;
  PluginTable data, model;
  std::vector<PluginTable> evals;

  toml::table resolved() const;
  std::string name() const;  // [run] name, else the file's stem
};

ARDKIT_API const ParamSchema& evaluation_schema();
ARDKIT_API EvaluationConfig resolve_evaluation(const toml::table& root,
                                               const std::filesystem::path& file,
                                               const PluginLookup& lookup);

}  // namespace ardkit
