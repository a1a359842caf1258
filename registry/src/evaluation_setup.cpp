#include "ardkit/host/evaluation_setup.hpp"

#include <fmt/format.h>

#include "ardkit/host/experiment_setup.hpp"
#include "ardkit/host/suites.hpp"
#include "ardkit/host/zoo.hpp"
#include "ardkit/progress.hpp"
#include "ardkit/weights.hpp"

namespace ardkit {

LoadedEvaluation load_evaluation(const toml::table& root, const std::filesystem::path& file,
                                 const std::vector<std::filesystem::path>& plugin_path) {
  LoadedEvaluation out;
  out.registry = std::make_unique<Registry>(
      plugin_search_path(plugin_path, experiment_plugin_path(root, file)));
  toml::table expanded = root;
  expand_suites(expanded, file.string());
  expand_zoo(expanded, file.string());
  out.config = resolve_evaluation(expanded, file, out.registry->lookup());
  return out;
}

EvaluationSetup build_evaluation(const LoadedEvaluation& evaluation) {
  const EvaluationConfig& c = evaluation.config;
  const Registry& r = *evaluation.registry;
  EvaluationSetup setup;
  torch::manual_seed(static_cast<uint64_t>(c.run.get_int("seed")));
  BuildContext context;
  context.device = c.run.get_string("device");
  context.seed = c.run.get_int("seed");
  setup.data = r.create<DataSource>(PluginKind::data, c.data.plugin, c.data.params, context);
  context.data = setup.data->spec();
  setup.model = r.create<Model>(PluginKind::model, c.model.plugin, c.model.params, context);
  const auto& checkpoint = c.model.host.get_string("checkpoint");
  if (!checkpoint.empty())
    load_weights(*setup.model, checkpoint, weight_options_from(c.model.host));
  else if (!setup.model->parameters().empty() && setup.model->parameters().front().requires_grad())
    log_line(
        fmt::format("warning: {} [model] has no checkpoint: evaluating freshly initialised "
                    "weights",
                    c.file.string()));
  setup.model->to(torch::Device(context.device));
  setup.attacks = build_named_attacks(r, c.evals, c.file, context);
  return setup;
}

}  // namespace ardkit
