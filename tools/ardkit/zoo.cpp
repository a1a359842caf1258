// `ardkit zoo list`: the RobustBench model zoo entries ardkit builds by name
// (registry/zoo/robustbench.toml), with their architectures and the zoo's reported accuracies.
#include <fmt/format.h>

#include <iostream>

#include <ardkit/host/config.hpp>
#include <ardkit/host/zoo.hpp>

#include "cli_common.hpp"
#include "commands.hpp"

namespace ardkit::cli {

namespace {

// "depth = 28, width = 10, activation = swish": the entry's parameters after its plugin.
std::string parameters(const toml::table& model) {
  std::string out;
  for (auto&& [key, value] : model) {
    if (key.str() == "plugin" || key.str() == "mean" || key.str() == "std")
      continue;
    std::string text;
    value.visit([&](auto&& v) {
      if constexpr (toml::is_string<decltype(v)>)
        text = v.get();
      else if constexpr (toml::is_number<decltype(v)> || toml::is_boolean<decltype(v)>)
        text = fmt::format("{}", v.get());
    });
    out += fmt::format("{}{} = {}", out.empty() ? "" : ", ", std::string(key.str()), text);
  }
  if (model.contains("mean"))
    out += ", normalizes inside";
  return out;
}

}  // namespace

int zoo_command(const std::vector<std::string>& args) {
  CommonOptions common;
  std::vector<std::string> words;
  po::options_description d(
      "usage: ardkit zoo [list] [options]\n\nThe RobustBench model zoo entries ardkit builds by "
      "name: a model table with zoo = \"NAME\" and file = \"WEIGHTS.pt\" (the checkpoint as the "
      "zoo stores it; ardkit downloads nothing) instead of plugin and checkpoint. Clean and "
      "AutoAttack are the zoo's reported accuracies (%) at its eps. docs/weights.md, \"Teachers "
      "from RobustBench\", says how to fetch a file.\n\noptions");
  add_common(d, common);
  d.add_options()("words", po::value(&words), "list");
  po::positional_options_description positional;
  positional.add("words", -1);
  parse(args, d, positional);
  if (common.help) {
    std::cout << d << "\n";
    return 0;
  }
  if (!words.empty() && !(words.size() == 1 && words[0] == "list"))
    throw_config_error("zoo: expected `list`; see ardkit zoo --help");
  std::cout << fmt::format("{:<50} {:<18} {:>6} {:>6}  {}\n", "name", "architecture", "clean", "AA",
                           "ardkit model");
  for (const auto& e : zoo_entries())
    std::cout << fmt::format(
        "{:<48} {:<18} {:>6.2f} {:>6.2f}  {} ({}; {})\n", e.name, e.architecture, e.clean,
        e.autoattack, e.model["plugin"].value_or(std::string()), parameters(e.model), e.family);
  return 0;
}

}  // namespace ardkit::cli
