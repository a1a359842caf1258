#include "ardkit/host/experiment_setup.hpp"

#include "ardkit/host/suites.hpp"
#include "ardkit/host/zoo.hpp"

#include <fmt/format.h>

#include <sstream>

namespace ardkit {

namespace {

namespace fs = std::filesystem;

LoadedExperiment load(const fs::path& file, const std::vector<std::string>& overrides,
                      const std::vector<fs::path>& plugin_path, std::vector<fs::path>& chain);

// Replaces `experiment = "FILE"` (relative to this file's folder) in the teacher table `table`
// ([teacher] or [teachers.NAME], called `label`) by that experiment's [student] plugin and
// parameters and the checkpoint its run leaves in this experiment's run store; the checkpoint
// path carries the teacher's run id, so this run's id changes whenever the teacher's
// configuration does. Null when the table names no experiment.
std::optional<TeacherRun> resolve_teacher_experiment(toml::table& root, toml::table* teacher,
                                                     const std::string& label, const fs::path& file,
                                                     const std::vector<fs::path>& plugin_path,
                                                     std::vector<fs::path>& chain) {
  if (!teacher || !teacher->contains("experiment"))
    return std::nullopt;
  const auto where = [&](const char* key) {
    return source_position(file.string(), teacher->get(key)->source());
  };
  const auto* name = teacher->get_as<std::string>("experiment");
  if (!name)
    throw_config_error(where("experiment") + ": [" + label +
                       "] experiment must be a string naming an experiment file");
  for (const auto& [key, node] : *teacher)
    if (key.str() != "experiment" && key.str() != "use")
      throw_config_error(
          fmt::format("{}: [{}] '{}' cannot be combined with experiment = ...: the teacher is that "
                      "experiment's [student] with its trained weights; remove '{}'",
                      where(std::string(key.str()).c_str()), label, key.str(), key.str()));
  std::string use = "best";
  if (teacher->contains("use")) {
    const auto* u = teacher->get_as<std::string>("use");
    if (!u || (u->get() != "best" && u->get() != "last"))
      throw_config_error(where("use") + ": [" + label +
                         "] use must be \"best\" (validation-selected) or \"last\"");
    use = u->get();
  }
  fs::path teacher_file = fs::path(name->get());
  if (teacher_file.is_relative())
    teacher_file = file.parent_path() / teacher_file;
  if (!fs::exists(teacher_file))
    throw_config_error(
        fmt::format("{}: [{}] experiment file {} not found (paths are relative "
                    "to this experiment file's folder)",
                    where("experiment"), label, teacher_file.string()));
  const fs::path canonical = fs::weakly_canonical(teacher_file);
  for (const auto& f : chain)
    if (f == canonical)
      throw_config_error(fmt::format("{}: [{}] experiment {} is its own teacher (a cycle)",
                                     where("experiment"), label, teacher_file.string()));
  const auto* run = root.get_as<toml::table>("run");
  const auto* output_node = run ? run->get_as<std::string>("output") : nullptr;
  const std::string output = output_node ? output_node->get() : "runs";
  toml::table quoted;
  quoted.insert("v", output);
  std::ostringstream text;  // "v = \"...\"": a TOML string, escapes included
  text << toml::toml_formatter(quoted);
  LoadedExperiment loaded =
      load(teacher_file, {"run.output" + text.str().substr(2)}, plugin_path, chain);
  TeacherRun out;
  out.role = label;
  out.file = teacher_file;
  out.output = output;
  out.folder = fs::path(output) / loaded.config.run_id();
  out.checkpoint = out.folder / "checkpoints" / (use + ".pt");
  out.data = loaded.config.data;
  const PluginTable& student = *loaded.config.student;
  toml::table replaced = to_toml(student.params);
  replaced.insert("plugin", student.plugin);
  replaced.insert("checkpoint", out.checkpoint.string());
  replaced.insert("experiment", teacher_file.string());
  replaced.insert("use", use);
  *teacher = std::move(replaced);
  return out;
}

// [teacher] and every [teachers.NAME] given as an experiment.
void resolve_teacher_experiments(toml::table& root, const fs::path& file,
                                 const std::vector<fs::path>& plugin_path,
                                 std::vector<fs::path>& chain, LoadedExperiment& out) {
  out.teacher_run = resolve_teacher_experiment(root, root.get_as<toml::table>("teacher"), "teacher",
                                               file, plugin_path, chain);
  if (auto* named = root.get_as<toml::table>("teachers"))
    for (auto&& [key, value] : *named) {
      const std::string label = "teachers." + std::string(key.str());
      if (auto run =
              resolve_teacher_experiment(root, value.as_table(), label, file, plugin_path, chain))
        out.named_teacher_runs.emplace(std::string(key.str()), std::move(*run));
    }
}

LoadedExperiment load(const fs::path& file, const std::vector<std::string>& overrides,
                      const std::vector<fs::path>& plugin_path, std::vector<fs::path>& chain) {
  toml::table root = read_experiment(file, overrides);
  expand_suites(root, file.string());
  expand_zoo(root, file.string());
  chain.push_back(fs::weakly_canonical(file));
  LoadedExperiment out;
  resolve_teacher_experiments(root, file, plugin_path, chain, out);
  out.registry = std::make_unique<Registry>(
      plugin_search_path(plugin_path, experiment_plugin_path(root, file)));
  out.config = resolve_experiment(root, file, out.registry->lookup());
  chain.pop_back();
  return out;
}

}  // namespace

LoadedExperiment load_experiment(const std::filesystem::path& file,
                                 const std::vector<std::string>& overrides,
                                 const std::vector<std::filesystem::path>& plugin_path) {
  std::vector<fs::path> chain;
  return load(file, overrides, plugin_path, chain);
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

namespace {

// [teachers.NAME] and [companions.NAME], built last: the random draws of runs without them stay
// where they were. A named teacher needs weights as [teacher] does; a companion starts from its
// checkpoint when it has one, else from the seeded initialisation.
void build_role_models(const LoadedExperiment& experiment, const Registry& r,
                       const BuildContext& context, bool load_teacher_weights, TrainSetup& setup) {
  const ExperimentConfig& c = experiment.config;
  for (const auto& [name, table] : c.teachers) {
    ModelPtr teacher = r.create<Model>(PluginKind::model, table.plugin, table.params, context);
    const auto& path = table.host.get_string("checkpoint");
    if (path.empty() && !teacher->pretrained())
      throw_config_error(
          fmt::format("{} [{}]: no weights given; a teacher must be trained: add checkpoint = "
                      "\"RUN/checkpoints/best.pt\" or experiment = \"TEACHER.toml\"",
                      c.file.string(), table.table));
    const auto run = experiment.named_teacher_runs.find(name);
    if (run != experiment.named_teacher_runs.end() && load_teacher_weights &&
        !std::filesystem::exists(path))
      throw_config_error(fmt::format(
          "{} [{}]: experiment {} has no {} yet: `ardkit run {}` trains it first", c.file.string(),
          table.table, run->second.file.string(), path, c.file.string()));
    if (!path.empty() && (load_teacher_weights || run == experiment.named_teacher_runs.end()))
      load_weights(*teacher, path, weight_options_from(table.host));
    setup.teachers[name] = std::move(teacher);
  }
  for (const auto& [name, companion] : c.companions) {
    const PluginTable& table = companion.model;
    ModelPtr model = r.create<Model>(PluginKind::model, table.plugin, table.params, context);
    if (const auto& path = table.host.get_string("checkpoint"); !path.empty())
      load_weights(*model, path, weight_options_from(table.host));
    setup.companions[name] = std::move(model);
  }
}

}  // namespace

TrainSetup build_components(const LoadedExperiment& experiment, bool load_teacher_weights) {
  const ExperimentConfig& c = experiment.config;
  const Registry& r = *experiment.registry;
  TrainSetup setup;
  setup.config = &c;
  // Initial weights and every other random choice of the run follow [run] seed.
  torch::manual_seed(static_cast<uint64_t>(c.run.get_int("seed")));
  BuildContext context;
  context.device = c.run.get_string("device");
  context.seed = c.run.get_int("seed");
  // A data-free run reads no training-set file (unless it selects checkpoints on the real
  // validation split, which is carved out of the training set).
  context.train_split = !c.generator || c.generator->host.get_bool("real_validation") ||
                        c.generator->host.get_real("real_fraction") > 0;
  setup.data = r.create<DataSource>(PluginKind::data, c.data->plugin, c.data->params, context);
  context.data = setup.data->spec();
  setup.student = r.create<Model>(PluginKind::model, c.student->plugin, c.student->params, context);
  if (const auto& path = c.student->host.get_string("checkpoint"); !path.empty())
    load_weights(*setup.student, path, weight_options_from(c.student->host));
  setup.teacher_data = context.data;
  if (c.teacher) {
    // A teacher from another experiment is built for that experiment's data (its classes may
    // differ: cross-task distillation); any other teacher for this experiment's.
    BuildContext teacher_context = context;
    if (const auto& run = experiment.teacher_run; run && run->data) {
      BuildContext spec_only = context;  // only the shape and classes are needed
      spec_only.train_split = false;
      teacher_context.data =
          r.create<DataSource>(PluginKind::data, run->data->plugin, run->data->params, spec_only)
              ->spec();
    }
    setup.teacher_data = teacher_context.data;
    setup.teacher =
        r.create<Model>(PluginKind::model, c.teacher->plugin, c.teacher->params, teacher_context);
    const auto& path = c.teacher->host.get_string("checkpoint");
    if (path.empty() && !setup.teacher->pretrained())
      throw_config_error(
          fmt::format("{} [teacher]: no weights given; a teacher must be trained: add "
                      "checkpoint = \"RUN/checkpoints/best.pt\" or experiment = \"TEACHER.toml\"",
                      c.file.string()));
    if (const auto& run = experiment.teacher_run;
        run && load_teacher_weights && !std::filesystem::exists(path))
      throw_config_error(
          fmt::format("{} [teacher]: experiment {} has no {} yet: `ardkit run {}` trains it first",
                      c.file.string(), run->file.string(), path, c.file.string()));
    if (!path.empty() && load_teacher_weights)
      load_weights(*setup.teacher, path, weight_options_from(c.teacher->host));
  }
  {
    // An objective made of another gets the inner one's table as its part (PluginInfo::wraps).
    BuildContext objective_context = context;
    PluginPart wrapped;
    if (const auto& inner = c.objective->wrapped) {
      wrapped.kind = r.find(PluginKind::objective, c.objective->plugin).info.wrapped_kind;
      wrapped.plugin = inner->plugin;
      wrapped.params = inner->params;
      objective_context.wrapped = &wrapped;
    }
    setup.objective = r.create<Objective>(PluginKind::objective, c.objective->plugin,
                                          c.objective->params, objective_context);
  }
  if (c.attack)
    setup.attack =
        r.create<Attack>(PluginKind::attack, c.attack->plugin, c.attack->params, context);
  setup.evals = build_named_attacks(r, c.evals, c.file, context);
  for (const auto& h : c.hooks)
    setup.hooks.push_back(r.create<Hook>(PluginKind::hook, h.plugin, h.params, context));
  if (c.generator) {
    setup.generator = r.create<Generator>(PluginKind::generator, c.generator->plugin,
                                          c.generator->params, context);
    setup.generator_options = generator_options_from(c.generator->host);
  }
  build_role_models(experiment, r, context, load_teacher_weights, setup);
  check_requirements(setup);
  return setup;
}

std::vector<const TeacherRun*> LoadedExperiment::teacher_runs() const {
  std::vector<const TeacherRun*> out;
  if (teacher_run)
    out.push_back(&*teacher_run);
  for (const auto& [name, run] : named_teacher_runs)
    out.push_back(&run);
  return out;
}

}  // namespace ardkit
