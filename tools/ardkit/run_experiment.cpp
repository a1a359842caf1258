// `ardkit run` as an application function: teacher first, the run folder's lock and state, the
// training, and the translation of its errors into one line.
#include "run_experiment.hpp"

#include <fmt/format.h>
#include <torch/torch.h>

#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include <ardkit/host/experiment_setup.hpp>
#include <ardkit/host/run_dir.hpp>
#include <ardkit/interrupt.hpp>
#include <ardkit/progress.hpp>
#include <ardkit/text.hpp>

#include "cli_common.hpp"
#include "results_index.hpp"

namespace ardkit::cli {

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
  for (const std::string& which : checkpoint_kinds())
    if (j.contains(which))
      rows.emplace_back(fmt::format("{} ({})", j.value("name", "?"), which),
                        report_from_json(j[which]));
  return rows;
}

}  // namespace

// See run_experiment.hpp. Values the
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

namespace {

// A completed run's table and folder on stdout.
void print_completed(const fs::path& folder) {
  std::cout << format_report_table(rows_of(folder / "results.json")) << folder.string() << "\n";
}

// Teachers given as other experiments ([teacher], [teachers.NAME]) are trained first, in the
// same run store, with this run's thread count and curves; their own teacher wait applies. 0 when
// every such run is complete, else the first failing run's status.
int train_teachers_first(const LoadedExperiment& experiment, const RunRequest& request) {
  for (const TeacherRun* teacher : experiment.teacher_runs()) {
    if (run_completed(teacher->folder))
      continue;
    log_line(fmt::format("{}: training its [{}] first: {} in {}", request.file, teacher->role,
                         teacher->file.string(), teacher->folder.string()));
    RunRequest first = request;
    first.file = teacher->file.string();
    first.overrides = {"run.output=" + nlohmann::json(teacher->output).dump()};
    for (const auto& o : request.overrides)
      if (o.rfind("run.threads=", 0) == 0 || o.rfind("run.tensorboard=", 0) == 0)
        first.overrides.push_back(o);
    first.lock_wait = request.teacher_wait;
    if (const int status = run_experiment(first); status != 0)
      return status;
  }
  return 0;
}

// Threads, the device and determinism, process-wide, before anything is built.
void prepare_process(const ExperimentConfig& config) {
  set_threads(config.run.get_int("threads"));
  if (config.run.get_string("device") == "cuda" && !torch::cuda::is_available())
    throw_config_error(config.run.origin("device") +
                       ": [run] device = \"cuda\" but no CUDA device is available "
                       "to this LibTorch; use device = \"cpu\"");
  if (config.run.get_bool("deterministic"))
    at::globalContext().setDeterministicAlgorithms(true, false);
}

// False when interrupted while another process holds the folder.
bool lock_run(RunDir& run, const RunRequest& request, const fs::path& folder) {
  // `ardkit grid status` probes the lock for a moment to tell a live run from a dead one; a run
  // starting at that instant waits a few seconds before calling the folder busy.
  constexpr double kProbeGrace = 3;
  try {
    run.lock(std::max(request.lock_wait, kProbeGrace), [&](const std::string& holder) {
      if (request.lock_wait > 0)
        log_line(
            fmt::format("{}: run {} is being trained by process {}; waiting up to {:.0f} s for "
                        "it to finish (--teacher-wait)",
                        request.file, folder.string(), holder, request.lock_wait));
    });
  } catch (const Interrupted&) {
    log_line("interrupted while waiting for another process's run");
    return false;
  }
  return true;
}

// The run remembers every plugin folder it was built from (--plugin-path, ARDKIT_PLUGIN_PATH,
// [run] plugin_path), absolute, so that `ardkit eval RUN` and `export` find the same plugins
// without being told again. plugin_path is not part of the run id.
void record_plugin_path(LoadedExperiment& experiment) {
  std::vector<std::string> folders;
  for (const auto& dir : experiment.registry->search_path())
    if (dir != builtin_plugin_dir())
      folders.push_back(fs::absolute(dir).lexically_normal().string());
  experiment.config.run.set("plugin_path", Value(folders));
}

// Trains in the locked folder and records the outcome in status.json. A failure's whole message
// (a TorchScript traceback runs to dozens of lines) goes to the log; the status file and the
// terminal get one line that points there.
int train_in(RunDir& run, TrainSetup& setup) {
  run.set_state("running");
  try {
    if (train(setup, run) == TrainOutcome::interrupted) {
      run.set_state("interrupted");
      log_line("interrupted; run the same command again to resume from the last checkpoint");
      return 130;
    }
  } catch (const Interrupted&) {
    run.set_state("interrupted");
    log_line("interrupted during evaluation; run the same command again to resume");
    return 130;
  } catch (const std::exception& e) {
    const std::string message = message_of(e);
    const std::string line = one_line(message);
    run.set_state("failed", line);
    log_line("failed: " + message, /*echo=*/false);
    if (line == message)
      throw;
    const auto* error = dynamic_cast<const Error*>(&e);
    throw Error(error ? error->kind() : ErrorKind::runtime,
                fmt::format("{} (the whole message is in {})", line, run.log_path().string()));
  }
  run.set_state("completed");
  return 0;
}

// Closes the run's log file however the run ends.
struct LogFileScope {
  explicit LogFileScope(const fs::path& file) {
    set_log_file(file.string());
  }
  ~LogFileScope() {
    set_log_file({});
  }
};

}  // namespace

// Stages: the teacher, the process, the completed check, the components (before the folder
// exists: a bad dataset path or plugin parameter leaves nothing behind), the lock, the training.
int run_experiment(const RunRequest& request) {
  install_interrupt_handlers();
  LoadedExperiment experiment =
      load_experiment(request.file, request.overrides, request.plugin_path);
  if (const int code = train_teachers_first(experiment, request))
    return code;
  const ExperimentConfig& config = experiment.config;
  prepare_process(config);
  const fs::path folder = fs::path(config.run.get_string("output")) / config.run_id();
  if (run_completed(folder)) {
    std::cerr << fmt::format(
        "run {} already completed; nothing to do (delete the folder to run it again)\n",
        folder.string());
    print_completed(folder);
    return 0;
  }
  TrainSetup setup = build_components(experiment);
  RunDir run(folder, config.run_id(), request.file);
  if (!lock_run(run, request, folder))
    return 130;
  if (run_completed(folder)) {  // the process we waited for finished it
    log_line(fmt::format("run {} was completed by another process; reusing it", folder.string()));
    print_completed(folder);
    return 0;
  }
  record_plugin_path(experiment);
  run.write_config(config.resolved());
  LogFileScope log(run.log_path());
  log_line(fmt::format("run {} ({} threads) in {}", config.run_id(), torch::get_num_threads(),
                       folder.string()));
  if (const std::string note = preset_note(config); !note.empty())
    log_line(note);
  if (const int code = train_in(run, setup))
    return code;
  const std::string table = format_report_table(rows_of(run.results_path()));
  log_line("results (accuracy %, test split):\n" + table, /*echo=*/false);
  std::cout << table << folder.string() << "\n";
  return 0;
}

}  // namespace ardkit::cli
