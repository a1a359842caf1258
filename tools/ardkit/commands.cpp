#include "commands.hpp"

#include "cli_common.hpp"

#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include <ardkit/host/cpu_allocator.hpp>
#include <ardkit/host/generator_options.hpp>
#include <ardkit/host/threading.hpp>
#include <ardkit/interrupt.hpp>
#include <ardkit/progress.hpp>
#include <ardkit/text.hpp>

#include <ardkit/host/experiment_setup.hpp>

#include "grid_plan.hpp"
#include "results_index.hpp"
#include "run_experiment.hpp"

namespace ardkit::cli {

void add_common(po::options_description& d, CommonOptions& o) {
  d.add_options()("help,h", po::bool_switch(&o.help), "show this help")(
      "plugin-path", po::value(&o.plugin_path)->composing(),
      "extra plugin folder, searched first (repeatable; also ARDKIT_PLUGIN_PATH)");
}

po::variables_map parse(const std::vector<std::string>& args,
                        const po::options_description& visible,
                        const po::positional_options_description& positional) {
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(visible).positional(positional).run(), vm);
  po::notify(vm);
  return vm;
}

std::string read_text(const fs::path& file) {
  std::ifstream in(file);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<fs::path> to_paths(const std::vector<std::string>& items) {
  return {items.begin(), items.end()};
}

void set_threads(int64_t configured) {
  configure_cpu_threads(configured);
  install_caching_cpu_allocator_from_environment();  // docs/performance.md
}

namespace {

const char* kRunHelp = R"(usage: ardkit run EXPERIMENT.toml [options]

Trains and evaluates one experiment in its own run folder (OUTPUT/NAME-HASH, the hash derived
from the resolved configuration). Running a completed experiment again prints its results;
running an interrupted one resumes from its last checkpoint. Ctrl-C checkpoints and stops.
A teacher given as [teacher] experiment = "FILE" is trained first, in the same OUTPUT, unless
its completed run is already there. --tensorboard writes live curves for
`tensorboard --logdir OUTPUT` (docs/experiments.md, "Watching runs").

options)";

}  // namespace

namespace {

// What `run` and `validate` share: EXPERIMENT.toml, --set, --plugin-path and --help.
struct ExperimentArgs {
  CommonOptions common;
  std::string file;
  std::vector<std::string> overrides;
};

void add_experiment_args(po::options_description& d, ExperimentArgs& a) {
  add_common(d, a.common);
  d.add_options()("set", po::value(&a.overrides)->composing(),
                  "override a key: --set train.epochs=2 (repeatable)")(
      "experiment", po::value(&a.file), "experiment TOML file");
}

// False when --help was asked for (and printed); a missing experiment file is a usage error.
bool parse_experiment_args(const std::vector<std::string>& args, const po::options_description& d,
                           const ExperimentArgs& a, const std::string& command) {
  po::positional_options_description positional;
  positional.add("experiment", 1);
  parse(args, d, positional);
  if (a.common.help) {
    std::cout << d << "\n";
    return false;
  }
  if (a.file.empty())
    throw_config_error(
        fmt::format("{0}: missing EXPERIMENT.toml; usage: ardkit {0} EXPERIMENT.toml", command));
  return true;
}

}  // namespace

int run_command(const std::vector<std::string>& args) {
  ExperimentArgs a;
  std::string output;
  int64_t threads = -1;
  double teacher_wait = 2 * 24 * 3600;
  bool tensorboard = false;
  po::options_description d(kRunHelp);
  add_experiment_args(d, a);
  d.add_options()("output,o", po::value(&output),
                  "folder for run folders (overrides [run] output)")(
      "tensorboard", po::bool_switch(&tensorboard),
      "write live curves to RUN/tensorboard/ (as [run] tensorboard = true)")(
      "threads", number(&threads, "threads", int64_t{0}),
      "LibTorch threads (overrides [run] threads; 0 = one per core)")(
      "teacher-wait", number(&teacher_wait, "teacher-wait", 0.0)->default_value(teacher_wait),
      "seconds to wait for a teacher run that another process is training, then reuse it");
  if (!parse_experiment_args(args, d, a, "run"))
    return 0;
  if (!output.empty())
    a.overrides.push_back("run.output=" + nlohmann::json(output).dump());
  if (threads >= 0)
    a.overrides.push_back("run.threads=" + std::to_string(threads));
  if (tensorboard)
    a.overrides.push_back("run.tensorboard=true");
  RunRequest request;
  request.file = a.file;
  request.overrides = a.overrides;
  request.plugin_path = to_paths(a.common.plugin_path);
  request.teacher_wait = teacher_wait;
  return run_experiment(request);
}

int validate_command(const std::vector<std::string>& args) {
  ExperimentArgs a;
  po::options_description d(
      "usage: ardkit validate EXPERIMENT.toml [options]\n\nChecks an experiment without running "
      "it: TOML syntax, tables and keys against the host's and plugins' schemas, plugin names, "
      "and that every component builds (dataset files readable, checkpoints loadable). A grid "
      "file: every cell's experiment, with the cell's values.\n\n"
      "options");
  add_experiment_args(d, a);
  if (!parse_experiment_args(args, d, a, "validate"))
    return 0;
  const std::string& file = a.file;
  if (is_grid_file(file)) {
    const GridPlan plan = plan_grid(file, {}, a.overrides, "", to_paths(a.common.plugin_path));
    for (size_t i = 0; i < plan.cells.size(); ++i)
      if (!plan.cell_tasks[i].error.empty())
        throw_config_error(
            fmt::format("cell {} ({}): {}", i, plan.cells[i].label(), plan.cell_tasks[i].error));
    std::cout << fmt::format("{}: ok (grid {}: {} cells, {} teacher run(s))\n", file,
                             plan.spec.name, plan.cells.size(), plan.teachers.size());
    return 0;
  }
  LoadedExperiment experiment = load_experiment(file, a.overrides, to_paths(a.common.plugin_path));
  std::vector<std::string> pending;
  for (const TeacherRun* teacher : experiment.teacher_runs())
    if (!fs::exists(teacher->checkpoint))
      pending.push_back(fmt::format("[{}] {}", teacher->role, teacher->file.string()));
  build_components(experiment, pending.empty());
  std::cout << fmt::format(
      "{}: ok (run id {}){}\n", file, experiment.config.run_id(),
      pending.empty() ? ""
      : pending.size() == 1
          ? "; its teacher " + pending[0] + " is trained first by `ardkit run`"
          : "; its teachers " + join(pending, ", ") + " are trained first by `ardkit run`");
  if (const std::string note = preset_note(experiment.config); !note.empty())
    std::cout << note << "\n";
  return 0;
}

namespace {

std::vector<const PluginEntry*> sorted_entries(const Registry& registry) {
  std::vector<const PluginEntry*> sorted;
  for (const auto& e : registry.entries())
    sorted.push_back(&e);
  std::sort(sorted.begin(), sorted.end(), [](const PluginEntry* a, const PluginEntry* b) {
    return std::make_pair(std::string(kind_name(a->info.kind)), a->info.name) <
           std::make_pair(std::string(kind_name(b->info.kind)), b->info.name);
  });
  return sorted;
}

// docs/plugins.md's table: kind, name, summary. Non-zero when a library failed to load, so the
// table is never written from a partial registry.
int list_markdown(const Registry& registry) {
  std::cout << "| kind | name | summary |\n| --- | --- | --- |\n";
  for (const auto* e : sorted_entries(registry)) {
    std::string summary;  // a '|' inside a cell would end it
    for (char ch : e->info.summary)
      summary += ch == '|' ? std::string("\\|") : std::string(1, ch);
    std::cout << fmt::format("| {} | `{}` | {} |\n", kind_name(e->info.kind), e->info.name,
                             summary);
  }
  return registry.broken().empty() ? 0 : 1;
}

int list_plugins(const Registry& registry) {
  const auto sorted = sorted_entries(registry);
  size_t name_width = 4, library_width = 7;
  for (const auto* e : sorted) {
    name_width = std::max(name_width, e->info.name.size());
    library_width = std::max(library_width, e->library.filename().string().size());
  }
  std::cout << fmt::format("{:<10} {:<{}} {:<8} {:<{}} {}\n", "kind", "name", name_width, "version",
                           "library", library_width, "summary");
  for (const auto* e : sorted)
    std::cout << fmt::format("{:<10} {:<{}} {:<8} {:<{}} {}\n", kind_name(e->info.kind),
                             e->info.name, name_width, e->info.version,
                             e->library.filename().string(), library_width, e->info.summary);
  std::vector<std::string> dirs;
  for (const auto& p : registry.search_path())
    dirs.push_back(p.string());
  std::cout << fmt::format("\n{} plugins from {}\n", sorted.size(), join(dirs, ":"));
  if (!registry.broken().empty()) {
    const size_t n = registry.broken().size();
    std::cout << fmt::format("\n{} {} failed to load (their plugins are missing):\n", n,
                             n == 1 ? "library" : "libraries");
    for (const auto& b : registry.broken())
      std::cout << "  " << b.error << "\n";
  }
  return 0;
}

// What an objective needs beyond data and a student: tables, roles, a wrapped part.
std::string objective_needs(const PluginInfo& info) {
  std::vector<std::string> needs;
  for (const auto& [need, text] :
       {std::pair{Need::teacher, "a [teacher] table"}, std::pair{Need::attack, "an [attack] table"},
        std::pair{Need::same_label_space, "a teacher of the student's label space"}})
    if (info.has(need))
      needs.push_back(text);
  for (const auto& role : info.roles)
    needs.push_back("[" + role + "]");
  if (info.wraps_part)
    needs.push_back(fmt::format("an [objective.wrapped] {} table (the {} it is made of)",
                                kind_name(info.wrapped_kind), kind_name(info.wrapped_kind)));
  return needs.empty() ? "nothing beyond data and a student" : join(needs, ", ");
}

void print_schema(const ParamSchema& schema) {
  for (const auto& spec : schema)
    std::cout << fmt::format(
        "    {:<16} {:<13} {:<22} {}{}\n", spec.key, type_name(spec.type),
        spec.required() ? "required" : "= " + spec.default_text(), spec.doc,
        spec.constraint_text().empty() ? "" : " (" + spec.constraint_text() + ")");
}

void show_plugin(const PluginEntry& e) {
  std::cout << fmt::format("{} {} {} — {}\n  library: {}\n", kind_name(e.info.kind), e.info.name,
                           e.info.version, e.info.summary, e.library.string());
  std::cout << (e.info.schema.empty() ? "  (no parameters)\n" : "  parameters:\n");
  print_schema(e.info.schema);
  if (e.info.kind == PluginKind::generator) {
    // The host's keys of the same [generator] table, with this plugin's defaults.
    std::cout << "  engine keys (how the host drives it; the defaults are this plugin's):\n";
    print_schema(generator_engine_schema(e.info));
  }
  if (e.info.kind == PluginKind::objective)
    std::cout << "  needs: " << objective_needs(e.info) << "\n";
  if (e.info.attack_defaults) {
    // Shown for the objective's default parameters; other values may change them.
    Params defaults;
    fill_defaults(e.info.schema, defaults);
    std::vector<std::string> items;
    for (const auto& [key, value] : e.info.attack_defaults(defaults))
      items.push_back(key + " = " + format_value(value));
    std::cout << "  [attack] defaults (keys the attack plugin has, unless written): "
              << join(items, ", ") << "\n";
  }
}

int show_plugins(const Registry& registry, const std::string& name) {
  const auto matches = registry.find_any(name);
  if (matches.empty()) {
    std::vector<std::string> names;
    for (const auto& e : registry.entries())
      names.push_back(e.info.name);
    throw_plugin_error(fmt::format("no plugin named '{}'{}; `ardkit plugins list` shows them all",
                                   name, did_you_mean(name, names)));
  }
  for (const auto* e : matches)
    show_plugin(*e);
  return 0;
}

}  // namespace

int plugins_command(const std::vector<std::string>& args) {
  CommonOptions common;
  std::vector<std::string> words;
  po::options_description d(
      "usage: ardkit plugins [list | show NAME] [options]\n\n  list        every plugin: kind, "
      "name, version, "
      "library, summary\n  show NAME   a plugin's parameters: type, default, allowed range, "
      "doc\n\noptions");
  add_common(d, common);
  bool markdown = false;
  d.add_options()("words", po::value(&words), "list | show NAME")(
      "markdown", po::bool_switch(&markdown),
      "list: a Markdown table of kind, name and summary (what docs/plugins.md holds)");
  po::positional_options_description positional;
  positional.add("words", -1);
  parse(args, d, positional);
  if (common.help) {
    std::cout << d << "\n";
    return 0;
  }
  if (words.empty())
    words = {"list"};
  Registry registry(plugin_search_path(to_paths(common.plugin_path), {}));
  if (words[0] == "list" && words.size() == 1)
    return markdown ? list_markdown(registry) : list_plugins(registry);
  if (words[0] == "show" && words.size() == 2)
    return show_plugins(registry, words[1]);
  throw_config_error("plugins: expected `list` or `show NAME`; see ardkit plugins --help");
}

}  // namespace ardkit::cli
