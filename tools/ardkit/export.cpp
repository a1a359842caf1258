// `ardkit export`: a model's weights as a PyTorch state dict file.
#include <fmt/format.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include <ardkit/host/evaluation_setup.hpp>
#include <ardkit/weights.hpp>

#include "cli_common.hpp"
#include "commands.hpp"

namespace ardkit::cli {

int export_command(const std::vector<std::string>& args) {
  CommonOptions common;
  std::string target, which = "best", output;
  std::vector<std::string> overrides;
  po::options_description d(R"(usage: ardkit export TARGET -o OUT.pt [options]

Writes a model's weights (parameters and BatchNorm buffers, under the reference PyTorch names) to
a file that Python reads with torch.load as a dict for model.load_state_dict. TARGET is a run
folder (its student, --which best|last|averaged) or an evaluation file (its [model] and checkpoint).

options)");
  add_common(d, common);
  d.add_options()("output,o", po::value(&output), "the state dict file to write")(
      "which", po::value(&which), "run folders: best | last | averaged checkpoint (default best)")(
      "set", po::value(&overrides)->composing(), "override a key of TARGET's configuration")(
      "target", po::value(&target), "run folder or evaluation file");
  po::positional_options_description positional;
  positional.add("target", 1);
  parse(args, d, positional);
  if (common.help) {
    std::cout << d << "\n";
    return 0;
  }
  if (target.empty() || output.empty())
    throw_config_error("export: usage: ardkit export RUN_FOLDER -o OUT.pt");
  auto [root, file] = evaluation_root(target, which);
  for (const auto& o : overrides)
    apply_override(root, o);
  LoadedEvaluation loaded = load_evaluation(root, file, to_paths(common.plugin_path));
  EvaluationSetup setup = build_evaluation(loaded);
  const StateDict state = model_state_dict(*setup.model);
  if (state.empty())
    throw_config_error(fmt::format("{}: model '{}' has no weights of its own to export",
                                   file.string(), loaded.config.model.plugin));
  const fs::path out(output);
  if (!out.parent_path().empty())
    fs::create_directories(out.parent_path());
  write_pytorch_state_dict(out, state);
  std::cout << fmt::format("wrote {} tensors of {} to {} (torch.load gives a state dict)\n",
                           state.size(), loaded.config.model.plugin, out.string());
  return 0;
}

}  // namespace ardkit::cli
