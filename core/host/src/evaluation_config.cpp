#include "ardkit/host/evaluation_config.hpp"

#include "ardkit/plugin.hpp"

namespace ardkit {

const ParamSchema& evaluation_schema() {
  static const ParamSchema schema = {
      param::string("split", "test")
          .one_of({"train", "validation", "test"})
          .help("which split of [data] to evaluate on"),
      param::integer("points", 0).at_least(0).help("first N points of the split; 0 = all"),
      param::integer("batch_size", 500).at_least(1).help("evaluation batch size"),
      param::string("output", "")
          .help("results JSON file; default evals/NAME.json (in the run folder for a run)"),
  };
  return schema;
}

EvaluationConfig resolve_evaluation(const toml::table& root, const std::filesystem::path& file,
                                    const PluginLookup& lookup) {
  static const std::vector<std::string> allowed = {"run", "model", "data", "evaluation", "eval"};
  const std::string f = file.string();
  check_top_level(root, f, allowed, "an evaluation file");
  EvaluationConfig c;
  c.file = file;
  c.run = read_host_table(root, "run", run_schema(), f);
  check_folder_name(c.run, "run", "name");
  c.evaluation = read_host_table(root, "evaluation", evaluation_schema(), f);
  static const ParamSchema no_host_keys;
  c.model =
      *read_plugin_table(root, "model", PluginKind::model, true, model_host_schema(), f, lookup);
  c.data = *read_plugin_table(root, "data", PluginKind::data, true, no_host_keys, f, lookup);
  c.evals = read_plugin_tables(root, "eval", PluginKind::attack, eval_host_schema(), f, lookup);
  return c;
}

toml::table EvaluationConfig::resolved() const {
  toml::table out;
  toml::table run_table = to_toml(run);
  run_table.insert_or_assign("name", name());
  out.insert("run", std::move(run_table));
  out.insert("evaluation", to_toml(evaluation));
  out.insert("model", plugin_table_to_toml(model));
  out.insert("data", plugin_table_to_toml(data));
  if (!evals.empty()) {
    toml::array array;
    for (const auto& e : evals)
      array.push_back(plugin_table_to_toml(e));
    out.insert("eval", std::move(array));
  }
  return out;
}

std::string EvaluationConfig::name() const {
  const std::string& n = run.get_string("name");
  return n.empty() ? file.stem().string() : n;
}

}  // namespace ardkit
