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
#include <ardkit/text.hpp>
#include <ardkit/host/threading.hpp>
#include <ardkit/interrupt.hpp>
#include <ardkit/progress.hpp>

#include <ardkit/host/experiment_setup.hpp>

#include "grid_plan.hpp"
#include "results_index.hpp"

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

EvalReport report_from_json(const nlohmann::ordered_json& j) {
  EvalReport r;
  r.points = j.value("points", int64_t{0});
  r.clean_accuracy = j.value("clean_acc", 0.0) / 100;
  r.worst_case = j.value("worst_case_acc", 0.0) / 100;
  if (j.contains("attacks"))
    for (const auto& [name, value] : j["attacks"].items())
      r.attacks.push_back(
          {name, value.value("robust_acc", 0.0) / 100, value.value("seconds", 0.0)});
  return r;
}

// Rows "NAME (last)" and "NAME (best)" from a run folder's results.json.
std::vector<std::pair<std::string, EvalReport>> rows_of(const fs::path& results) {
  std::ifstream in(results);
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(in);
  } catch (const std::exception& e) {
    throw_runtime_error(results.string() + ": unreadable results file (" + e.what() +
                        "); re-run the experiment");
  }
  check_results_json(j, results, true);
  std::vector<std::pair<std::string, EvalReport>> rows;
  for (const char* which : {"last", "best"})
    if (j.contains(which))
      rows.emplace_back(fmt::format("{} ({})", j.value("name", "?"), which),
                        report_from_json(j[which]));
  return rows;
}

const char* kRunHelp = R"(usage: ardkit run EXPERIMENT.toml [options]

Trains and evaluates one experiment in its own run folder (OUTPUT/NAME-HASH, the hash derived
from the resolved configuration). Running a completed experiment again prints its results;
running an interrupted one resumes from its last checkpoint. Ctrl-C checkpoints and stops.
A teacher given as [teacher] experiment = "FILE" is trained first, in the same OUTPUT, unless
its completed run is already there.

options)";

// "[attack] steps = 10, step_size = 0.007 come from objective 'trades'; ..." or "": values the
// file does not write, set by another plugin, which a reader of the file would not expect.
std::string preset_note(const ExperimentConfig& config) {
  if (!config.attack || config.attack->preset_keys.empty())
    return {};
  std::vector<std::string> items;
  for (const auto& key : config.attack->preset_keys)
    items.push_back(key + " = " + format_value(config.attack->params.values().at(key)));
  return fmt::format(
      "[attack] {} {} from objective '{}' (its defaults for the attack); write {} in [attack] to "
      "choose otherwise",
      join(items, ", "), items.size() == 1 ? "comes" : "come", config.objective->plugin,
      items.size() == 1 ? "it" : "them");
}

}  // namespace

// Trains and evaluates one experiment, or reports its completed run; a teacher given as another
// experiment runs first, in the same run store, unless its run is already complete.
// `teacher_wait`: how long to wait for a teacher run that another process holds (several students
// of one teacher started together, as a Slurm array does); `lock_wait`: the same for this run.
static int run_file(const std::string& file, const std::vector<std::string>& overrides,
                    const std::vector<fs::path>& plugin_path, double teacher_wait,
                    double lock_wait = 0) {
  install_interrupt_handlers();
  LoadedExperiment experiment = load_experiment(file, overrides, plugin_path);
  if (const auto& teacher = experiment.teacher_run; teacher && !run_completed(teacher->folder)) {
    log_line(fmt::format("{}: training its teacher first: {} in {}", file, teacher->file.string(),
                         teacher->folder.string()));
    std::vector<std::string> teacher_overrides = {"run.output=" +
                                                  nlohmann::json(teacher->output).dump()};
    for (const auto& o : overrides)
      if (o.rfind("run.threads=", 0) == 0)
        teacher_overrides.push_back(o);
    if (const int code = run_file(teacher->file.string(), teacher_overrides, plugin_path,
                                  teacher_wait, teacher_wait))
      return code;
  }
  const ExperimentConfig& config = experiment.config;
  set_threads(config.run.get_int("threads"));
  if (config.run.get_string("device") == "cuda" && !torch::cuda::is_available())
    throw_config_error(config.run.origin("device") +
                       ": [run] device = \"cuda\" but no CUDA device is available "
                       "to this LibTorch; use device = \"cpu\"");
  if (config.run.get_bool("deterministic"))
    at::globalContext().setDeterministicAlgorithms(true, false);

  const fs::path folder = fs::path(config.run.get_string("output")) / config.run_id();
  if (run_completed(folder)) {
    std::cerr << fmt::format(
        "run {} already completed; nothing to do (delete the folder to run it again)\n",
        folder.string());
    std::cout << format_report_table(rows_of(folder / "results.json"));
    std::cout << folder.string() << "\n";
    return 0;
  }
  // Build everything before the run folder exists: a bad dataset path or plugin parameter leaves
  // nothing behind.
  TrainSetup setup = build_components(experiment);
  RunDir run(folder, config.run_id(), file);
  // `ardkit grid status` probes the lock for a moment to tell a live run from a dead one; a run
  // starting at that instant waits a few seconds before calling the folder busy.
  constexpr double kProbeGrace = 3;
  try {
    run.lock(std::max(lock_wait, kProbeGrace), [&](const std::string& holder) {
      if (lock_wait > 0)
        log_line(
            fmt::format("{}: run {} is being trained by process {}; waiting up to {:.0f} s for "
                        "it to finish (--teacher-wait)",
                        file, folder.string(), holder, lock_wait));
    });
  } catch (const Interrupted&) {
    log_line("interrupted while waiting for another process's run");
    return 130;
  }
  if (run_completed(folder)) {  // the process we waited for finished it
    log_line(fmt::format("run {} was completed by another process; reusing it", folder.string()));
    std::cout << format_report_table(rows_of(folder / "results.json")) << folder.string() << "\n";
    return 0;
  }
  // The run remembers every plugin folder it was built from (--plugin-path, ARDKIT_PLUGIN_PATH,
  // [run] plugin_path), absolute, so that `ardkit eval RUN` and `export` find the same plugins
  // without being told again. plugin_path is not part of the run id.
  std::vector<std::string> folders;
  for (const auto& dir : experiment.registry->search_path())
    if (dir != builtin_plugin_dir())
      folders.push_back(fs::absolute(dir).lexically_normal().string());
  experiment.config.run.set("plugin_path", Value(folders));
  run.write_config(config.resolved());
  set_log_file(run.log_path().string());
  log_line(fmt::format("run {} ({} threads) in {}", config.run_id(), torch::get_num_threads(),
                       folder.string()));
  if (const std::string note = preset_note(config); !note.empty())
    log_line(note);
  run.set_state("running");
  try {
    if (train(setup, run) == TrainOutcome::interrupted) {
      run.set_state("interrupted");
      log_line("interrupted; run the same command again to resume from the last checkpoint");
      set_log_file({});
      return 130;
    }
  } catch (const Interrupted&) {
    run.set_state("interrupted");
    log_line("interrupted during evaluation; run the same command again to resume");
    set_log_file({});
    return 130;
  } catch (const std::exception& e) {
    // The whole message (a TorchScript traceback runs to dozens of lines) goes to the log; the
    // status file and the terminal get one line that points there.
    const std::string message = message_of(e);
    const std::string line = one_line(message);
    run.set_state("failed", line);
    log_line("failed: " + message, /*echo=*/false);
    set_log_file({});
    if (line == message)
      throw;
    const auto* error = dynamic_cast<const Error*>(&e);
    throw Error(error ? error->kind() : ErrorKind::runtime,
                fmt::format("{} (the whole message is in {})", line, run.log_path().string()));
  }
  run.set_state("completed");
  const std::string table = format_report_table(rows_of(run.results_path()));
  log_line("results (accuracy %, test split):\n" + table, /*echo=*/false);
  set_log_file({});
  std::cout << table << folder.string() << "\n";
  return 0;
}

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
  po::options_description d(kRunHelp);
  add_experiment_args(d, a);
  d.add_options()("output,o", po::value(&output),
                  "folder for run folders (overrides [run] output)")(
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
  return run_file(a.file, a.overrides, to_paths(a.common.plugin_path), teacher_wait);
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
  const auto& teacher = experiment.teacher_run;
  const bool teacher_pending = teacher && !fs::exists(teacher->checkpoint);
  build_components(experiment, !teacher_pending);
  std::cout << fmt::format("{}: ok (run id {}){}\n", file, experiment.config.run_id(),
                           teacher_pending ? fmt::format("; its teacher {} is trained first by "
                                                         "`ardkit run`",
                                                         teacher->file.string())
                                           : "");
  if (const std::string note = preset_note(experiment.config); !note.empty())
    std::cout << note << "\n";
  return 0;
}

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
  if (words[0] == "list" && words.size() == 1) {
    std::vector<const PluginEntry*> sorted;
    for (const auto& e : registry.entries())
      sorted.push_back(&e);
    std::sort(sorted.begin(), sorted.end(), [](const PluginEntry* a, const PluginEntry* b) {
      return std::make_pair(std::string(kind_name(a->info.kind)), a->info.name) <
             std::make_pair(std::string(kind_name(b->info.kind)), b->info.name);
    });
    if (markdown) {
      std::cout << "| kind | name | summary |\n| --- | --- | --- |\n";
      for (const auto* e : sorted) {
        std::string summary;  // a '|' inside a cell would end it
        for (char ch : e->info.summary)
          summary += ch == '|' ? std::string("\\|") : std::string(1, ch);
        std::cout << fmt::format("| {} | `{}` | {} |\n", kind_name(e->info.kind), e->info.name,
                                 summary);
      }
      return registry.broken().empty() ? 0 : 1;
    }
    size_t name_width = 4, library_width = 7;
    for (const auto* e : sorted) {
      name_width = std::max(name_width, e->info.name.size());
      library_width = std::max(library_width, e->library.filename().string().size());
    }
    std::cout << fmt::format("{:<10} {:<{}} {:<8} {:<{}} {}\n", "kind", "name", name_width,
                             "version", "library", library_width, "summary");
    for (const auto* e : sorted)
      std::cout << fmt::format("{:<10} {:<{}} {:<8} {:<{}} {}\n", kind_name(e->info.kind),
                               e->info.name, name_width, e->info.version,
                               e->library.filename().string(), library_width, e->info.summary);
    std::cout << fmt::format("\n{} plugins from {}\n", sorted.size(), [&] {
      std::vector<std::string> dirs;
      for (const auto& p : registry.search_path())
        dirs.push_back(p.string());
      return join(dirs, ":");
    }());
    if (!registry.broken().empty()) {
      const size_t n = registry.broken().size();
      std::cout << fmt::format("\n{} {} failed to load (their plugins are missing):\n", n,
                               n == 1 ? "library" : "libraries");
      for (const auto& b : registry.broken())
        std::cout << "  " << b.error << "\n";
    }
    return 0;
  }
  if (words[0] == "show" && words.size() == 2) {
    const auto matches = registry.find_any(words[1]);
    if (matches.empty()) {
      std::vector<std::string> names;
      for (const auto& e : registry.entries())
        names.push_back(e.info.name);
      throw_plugin_error(fmt::format("no plugin named '{}'{}; `ardkit plugins list` shows them all",
                                     words[1], did_you_mean(words[1], names)));
    }
    for (const auto* e : matches) {
      std::cout << fmt::format("{} {} {} — {}\n  library: {}\n", kind_name(e->info.kind),
                               e->info.name, e->info.version, e->info.summary, e->library.string());
      if (e->info.schema.empty())
        std::cout << "  (no parameters)\n";
      else
        std::cout << "  parameters:\n";
      for (const auto& spec : e->info.schema) {
        std::cout << fmt::format(
            "    {:<16} {:<13} {:<22} {}{}\n", spec.key, type_name(spec.type),
            spec.required() ? "required" : "= " + spec.default_text(), spec.doc,
            spec.constraint_text().empty() ? "" : " (" + spec.constraint_text() + ")");
      }
      if (e->info.kind == PluginKind::objective) {
        std::vector<std::string> needs;
        for (const auto& [need, text] :
             {std::pair{Need::teacher, "a [teacher] table"},
              std::pair{Need::attack, "an [attack] table"},
              std::pair{Need::same_label_space, "a teacher of the student's label space"}})
          if (e->info.has(need))
            needs.push_back(text);
        for (const auto& role : e->info.roles)
          needs.push_back("[" + role + "]");
        if (e->info.wraps_part)
          needs.push_back(fmt::format("an [objective.wrapped] {} table (the {} it is made of)",
                                      kind_name(e->info.wrapped_kind),
                                      kind_name(e->info.wrapped_kind)));
        std::cout << "  needs: "
                  << (needs.empty() ? "nothing beyond data and a student" : join(needs, ", "))
                  << "\n";
      }
      if (e->info.attack_defaults) {
        // Shown for the objective's default parameters; other values may change them.
        Params defaults;
        fill_defaults(e->info.schema, defaults);
        std::vector<std::string> items;
        for (const auto& [key, value] : e->info.attack_defaults(defaults))
          items.push_back(key + " = " + format_value(value));
        std::cout << "  [attack] defaults (keys the attack plugin has, unless written): "
                  << join(items, ", ") << "\n";
      }
    }
    return 0;
  }
  throw_config_error("plugins: expected `list` or `show NAME`; see ardkit plugins --help");
}

}  // namespace ardkit::cli
