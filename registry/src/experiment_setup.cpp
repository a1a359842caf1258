#include "ardkit/experiment_setup.hpp"

#include "ardkit/suites.hpp"

#include <fmt/format.h>

namespace ardkit {

LoadedExperiment load_experiment(const std::filesystem::path& file,
                                 const std::vector<std::string>& overrides,
                                 const std::vector<std::filesystem::path>& plugin_path) {
  toml::table root = read_experiment(file, overrides);
  expand_suites(root, file.string());
  LoadedExperiment out;
  out.registry = std::make_unique<Registry>(
      plugin_search_path(plugin_path, experiment_plugin_path(root, file)));
  out.config = resolve_experiment(root, file, out.registry->lookup());
  return out;
}

std::vector<NamedAttack> build_named_attacks(const Registry& r,
                                             const std::vector<PluginTable>& tables,
                                             const std::filesystem::path& file,
                                             const BuildContext& context) {
  std::vector<NamedAttack> out;
  for (const auto& e : tables) {
    const std::string& label = e.host.get_string("name");
    out.push_back({label.empty() ? e.plugin : label,
                   r.create<Attack>(PluginKind::attack, e.plugin, e.params, context)});
  }
  for (size_t i = 0; i < out.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (out[i].name == out[j].name)
        throw_config_error(
            fmt::format("{}: [[eval]] entries {} and {} are both called '{}'; give them distinct "
                        "name = \"...\" labels",
                        file.string(), j, i, out[i].name));
  return out;
}

TrainSetup build_components(const LoadedExperiment& experiment) {
  const ExperimentConfig& c = experiment.config;
  const Registry& r = *experiment.registry;
  TrainSetup setup;
  setup.config = &c;
  // Initial weights and every other random choice of the run follow [run] seed.
  torch::manual_seed(static_cast<uint64_t>(c.run.get_int("seed")));
  BuildContext context;
  context.device = c.run.get_string("device");
  context.seed = c.run.get_int("seed");
  setup.data = r.create<DataSource>(PluginKind::data, c.data->plugin, c.data->params, context);
  context.data = setup.data->spec();
  setup.student = r.create<Model>(PluginKind::model, c.student->plugin, c.student->params, context);
  if (const auto& path = c.student->host.get_string("checkpoint"); !path.empty())
    load_weights(*setup.student, path, weight_options_from(c.student->host));
  if (c.teacher) {
    setup.teacher =
        r.create<Model>(PluginKind::model, c.teacher->plugin, c.teacher->params, context);
    const auto& path = c.teacher->host.get_string("checkpoint");
    if (path.empty())
      throw_config_error(
          fmt::format("{} [teacher]: no checkpoint given; a teacher must be trained: add "
                      "checkpoint = \"RUN/checkpoints/best.pt\"",
                      c.file.string()));
    load_weights(*setup.teacher, path, weight_options_from(c.teacher->host));
  }
  setup.objective =
      r.create<Objective>(PluginKind::objective, c.objective->plugin, c.objective->params, context);
  if (c.attack)
    setup.attack =
        r.create<Attack>(PluginKind::attack, c.attack->plugin, c.attack->params, context);
  setup.evals = build_named_attacks(r, c.evals, c.file, context);
  for (const auto& h : c.hooks)
    setup.hooks.push_back(r.create<Hook>(PluginKind::hook, h.plugin, h.params, context));
  check_requirements(setup);
  return setup;
}

}  // namespace ardkit
