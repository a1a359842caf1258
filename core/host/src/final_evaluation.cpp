#include "ardkit/host/final_evaluation.hpp"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "ardkit/host/evaluator.hpp"
#include "ardkit/host/event_file.hpp"
#include "ardkit/progress.hpp"
#include "ardkit/weights.hpp"

namespace fs = std::filesystem;

namespace ardkit {

namespace {

// Ordered: attacks appear in results.json in the order of the experiment's [[eval]] tables.
nlohmann::ordered_json report_json(const EvalReport& report) {
  nlohmann::ordered_json j;
  j["points"] = report.points;
  j["clean_acc"] = 100 * report.clean_accuracy;
  nlohmann::ordered_json attacks = nlohmann::ordered_json::object();
  for (const auto& a : report.attacks)
    attacks[a.name] = {{"robust_acc", 100 * a.accuracy}, {"seconds", a.seconds}};
  j["attacks"] = attacks;
  if (!report.attacks.empty())
    j["worst_case_acc"] = 100 * report.worst_case;
  j["seconds"] = report.seconds;
  if (!report.warnings.empty())
    j["warnings"] = report.warnings;
  return j;
}

using Rows = std::vector<std::pair<std::string, EvalReport>>;

// "last", then "best" when a best checkpoint exists, then "averaged" when the run averaged its
// weights ([train] average_from).
Rows evaluate_checkpoints(TrainSetup& setup, RunDir& run) {
  const Params& tp = setup.config->train;
  Model& student = *setup.student;
  EvalOptions options;
  options.split = Split::test;
  options.points = tp.get_int("eval_points");
  options.batch_size = tp.get_int("eval_batch_size");
  // Random starts are seeded per batch from the run's seed: the same weights always get the same
  // numbers, whichever checkpoint they came from and whether the run resumed.
  options.seed = setup.config->run.get_int("seed");
  // Each checkpoint's evaluation saves its progress after every batch: a run killed during a long
  // AutoAttack resumes mid-attack. The run id pins the settings; the digest pins the weights.
  const auto evaluate_checkpoint = [&](const std::string& which, uint64_t digest) {
    options.label = "test " + which;
    options.state_file = run.eval_state_path(which);
    options.fingerprint = fmt::format("{} {} {:016x}", run.run_id(), which, digest);
    return evaluate(student, *setup.data, setup.evals, options);
  };
  Rows rows;
  const uint64_t last_digest = weights_digest(student);
  rows.emplace_back("last", evaluate_checkpoint("last", last_digest));
  const fs::path best = run.checkpoint_path("best");
  const fs::path averaged = run.checkpoint_path("averaged");
  const auto add_averaged = [&] {
    if (!fs::exists(averaged))
      return;
    load_weights(student, averaged);
    rows.emplace_back("averaged", evaluate_checkpoint("averaged", weights_digest(student)));
  };
  if (!fs::exists(best)) {
    add_averaged();
    return rows;
  }
  load_weights(student, best);
  const uint64_t best_digest = weights_digest(student);
  // Best is often the last epoch: the same weights get the same numbers (evaluation is seeded per
  // batch), so an AutoAttack evaluation is not paid twice.
  if (best_digest == last_digest) {
    log_line("best checkpoint is the last one: its test evaluation is the same");
    rows.emplace_back("best", rows.front().second);
  } else {
    rows.emplace_back("best", evaluate_checkpoint("best", best_digest));
  }
  add_averaged();
  return rows;
}

// What the run was: its names, threat models, and for a data-free run where its data came from.
nlohmann::ordered_json run_description(const TrainSetup& setup, const RunDir& run) {
  const ExperimentConfig& config = *setup.config;
  nlohmann::ordered_json results;
  results["run_id"] = run.run_id();
  results["name"] = config.name();
  results["dataset"] = setup.data->spec().name;
  results["architecture"] = config.student->plugin;
  results["objective"] = config.objective->plugin;
  if (setup.attack) {
    results["threat_model"] = setup.attack->threat().norm == "linf" ? "Linf" : "L2";
    results["train_eps"] = setup.attack->threat().eps;
  }
  // Each attack's threat model beside the numbers: reports plot robustness against eps from it.
  for (const auto& e : setup.evals) {
    results["eps"][e.name] = e.attack->threat().eps;
    results["norm"][e.name] = e.attack->threat().norm;
  }
  // Models named by the model zoo: which entry, which file (its SHA-256) and the architecture
  // ardkit built for it.
  const auto zoo_model = [&](const std::string& role, const PluginTable& table) {
    const std::string name = table.host.get_string("zoo");
    if (name.empty())
      return;
    nlohmann::ordered_json architecture = nlohmann::ordered_json::object();
    for (const auto& [key, value] : table.params.values())
      std::visit([&, k = key](const auto& v) { architecture[k] = v; }, value);
    results["zoo"][role] = {{"name", name},
                            {"file", table.host.get_string("checkpoint")},
                            {"sha256", table.host.get_string("sha256")},
                            {"plugin", table.plugin},
                            {"architecture", architecture}};
  };
  if (config.teacher)
    zoo_model("teacher", *config.teacher);
  if (config.student)
    zoo_model("student", *config.student);
  for (const auto& [name, table] : config.teachers)
    zoo_model("teachers." + name, table);
  if (setup.generator) {
    // What a reader of a data-free result must know: which generator made the training data,
    // and whether any real training-set image was read (for checkpoint selection, or mixed into
    // the student's batches).
    const GeneratorOptions& options = setup.generator_options;
    const bool real = options.real_validation;
    results["data_free"] = {{"generator", config.generator->plugin},
                            {"training_images_read", real || options.real_fraction > 0},
                            {"selection", real ? "real validation split" : "none"}};
    if (options.real_fraction > 0)  // a mixture: part of every student batch was real
      results["data_free"]["real_fraction"] = options.real_fraction;
  }
  return results;
}

// One metrics line per checkpoint: clean, each attack, the worst case (accuracy %).
void append_test_lines(RunDir& run, const Rows& rows, int64_t step) {
  for (const auto& [label, report] : rows) {
    nlohmann::ordered_json line = {{"type", "test"},
                                   {"checkpoint", label},
                                   {"step", step},
                                   {"time", unix_seconds()},
                                   {"clean", 100 * report.clean_accuracy}};
    for (const auto& a : report.attacks)
      line[a.name] = 100 * a.accuracy;
    if (!report.attacks.empty())
      line["worst_case"] = 100 * report.worst_case;
    run.append_metrics(line.dump());
  }
}

}  // namespace

void write_final_results(TrainSetup& setup, RunDir& run, const RunBudget& budget, int64_t step) {
  const Rows rows = evaluate_checkpoints(setup, run);
  append_test_lines(run, rows, step);
  nlohmann::ordered_json results = run_description(setup, run);
  nlohmann::ordered_json spent = nlohmann::ordered_json::object();
  for (const auto& [name, value] : budget)
    spent[name] = value;
  results["budget"] = spent;
  for (const auto& [label, report] : rows)
    results[label] = report_json(report);
  // RobustBench's model_info keys, filled from the last checkpoint's evaluation.
  results["clean_acc"] = results["last"]["clean_acc"];
  if (!setup.evals.empty())
    results["robust_acc"] = results["last"]["worst_case_acc"];
  write_file_atomic(run.results_path(), results.dump(2) + "\n");
  std::error_code ignored;
  for (const std::string& which : checkpoint_kinds())
    fs::remove(run.eval_state_path(which), ignored);  // results.json now holds their numbers
}

}  // namespace ardkit
