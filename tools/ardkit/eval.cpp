// `ardkit eval`: clean and robust accuracy of one model, from an evaluation file or a run folder.
#include <fmt/format.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include <ardkit/host/evaluation_setup.hpp>
#include <ardkit/host/run_dir.hpp>
#include <ardkit/host/suites.hpp>
#include <ardkit/interrupt.hpp>
#include <ardkit/progress.hpp>
#include <ardkit/text.hpp>
#include <ardkit/version.hpp>

#include "cli_common.hpp"
#include "commands.hpp"

namespace ardkit::cli {
namespace {

const char* kEvalHelp = R"(usage: ardkit eval TARGET [options]

Clean and robust accuracy of one model. TARGET is
  an evaluation file   [model] (a model plugin with checkpoint = "...", or plugin = "torchscript"
                       with file = "..."), [data], optional [[eval]] attack tables, [evaluation]
                       (split, points, batch_size, output) and [run] (seed, device, threads);
  a run folder         its student at checkpoints/best.pt (or --which last), on its [data], against
                       its [[eval]] attacks;
  a model file         a TorchScript model, or with --model PLUGIN a checkpoint of that model
                       plugin, on --data PLUGIN (its keys through --set data.KEY=...).
--suite quick|standard replaces the attacks by a named suite at --eps (quick: FGSM, PGD-20;
standard: FGSM, PGD-20, CW-inf, AutoAttack).
Prints a table and writes a results JSON (default: evals/NAME.json, or RUN/evals/WHICH-SPLIT.json).
Progress is saved next to it (NAME.state.json) after every batch: after an interruption, the same
command continues where it stopped.

options)";

}  // namespace

toml::table parse_toml(const fs::path& file) {
  try {
    return toml::parse_file(file.string());
  } catch (const toml::parse_error& e) {
    throw_config_error(fmt::format("{}:{}:{}: malformed TOML: {}", file.string(),
                                   e.source().begin.line, e.source().begin.column,
                                   std::string(e.description())));
  }
}

toml::table evaluation_of_run(const fs::path& run, const std::string& which) {
  const fs::path config_file = run / "config.toml";
  if (!fs::is_regular_file(config_file))
    throw_config_error(run.string() +
                       ": not a run folder (no config.toml); give a run folder "
                       "written by ardkit run, or an evaluation file");
  const fs::path checkpoint = run / "checkpoints" / (which + ".pt");
  if (!fs::is_regular_file(checkpoint))
    throw_config_error(fmt::format("{}: no {} checkpoint yet (the run has not {}); try --which {}",
                                   checkpoint.string(), which,
                                   which == "best"       ? "validated a model"
                                   : which == "averaged" ? "averaged weights: [train] average_from"
                                                         : "saved one",
                                   which == "best" ? "last" : "best"));
  const toml::table config = parse_toml(config_file);
  toml::table root;
  if (const auto* run_table = config.get_as<toml::table>("run")) {
    toml::table r;
    for (const char* key : {"name", "seed", "device", "threads", "plugin_path"})
      if (const auto* node = run_table->get(key))
        r.insert(key, *node);
    root.insert("run", std::move(r));
  }
  if (const auto* data = config.get_as<toml::table>("data"))
    root.insert("data", *data);
  const auto* student = config.get_as<toml::table>("student");
  if (!student)
    throw_config_error(config_file.string() +
                       ": no [student] table; is this an ardkit run folder?");
  toml::table model = *student;
  model.insert_or_assign("checkpoint", checkpoint.string());
  // The run's own checkpoint now: the starting point's mapping keys and hash are not its.
  for (const char* key : {"checkpoint_key", "strip_prefix", "rename", "strict", "sha256"})
    model.erase(key);
  root.insert("model", std::move(model));
  if (const auto* evals = config.get("eval"))
    root.insert("eval", *evals);
  return root;
}

std::pair<toml::table, fs::path> evaluation_root(const std::string& target,
                                                 const std::string& which) {
  if (std::find(checkpoint_kinds().begin(), checkpoint_kinds().end(), which) ==
      checkpoint_kinds().end())
    throw_config_error("--which must be best, last or averaged, got '" + which + "'");
  if (fs::is_directory(target))
    return {evaluation_of_run(target, which), fs::path(target) / "config.toml"};
  if (!fs::is_regular_file(target))
    throw_config_error(target + ": no such evaluation file or run folder; check the path");
  return {parse_toml(target), target};
}

// TARGET is a model file: an evaluation with that model (TorchScript unless --model names the
// plugin whose checkpoint it is, or --zoo the model zoo entry) on --data, named after the file.
std::pair<toml::table, fs::path> model_file_evaluation(const std::string& target,
                                                       const std::string& model_plugin,
                                                       const std::string& data_plugin,
                                                       const std::string& zoo) {
  if (data_plugin.empty())
    throw_config_error(fmt::format(
        "{}: a model file needs the data to evaluate on: add --data PLUGIN (e.g. --data idx "
        "--set data.root=/usr/share/datasets/fashion-mnist)",
        target));
  if (!zoo.empty() && !model_plugin.empty())
    throw_config_error("--zoo names the architecture: leave out --model");
  toml::table model = !zoo.empty() ? toml::table{{"zoo", zoo}, {"file", target}}
                      : model_plugin.empty()
                          ? toml::table{{"plugin", "torchscript"}, {"file", target}}
                          : toml::table{{"plugin", model_plugin}, {"checkpoint", target}};
  toml::table root{{"model", std::move(model)},
                   {"data", toml::table{{"plugin", data_plugin}}},
                   {"run", toml::table{{"name", fs::path(target).stem().string()}}}};
  return {root, target};
}

namespace {

// --suite: the [[eval]] list becomes one suite entry. Its radius is --eps, else the first
// attack's eps.
void use_suite(toml::table& root, const std::string& suite, double eps, const std::string& norm,
               const fs::path& file) {
  if (eps < 0) {
    if (const auto* evals = root.get_as<toml::array>("eval"))
      for (const auto& entry : *evals)
        if (const auto* table = entry.as_table(); table && table->contains("eps")) {
          eps = table->get("eps")->value_or(-1.0);
          break;
        }
    if (eps < 0)
      throw_config_error(fmt::format(
          "{}: --suite {} needs the radius and no attack in it names one; add --eps 0.1 (in "
          "[0,1] pixel units)",
          file.string(), suite));
  }
  root.insert_or_assign("eval",
                        toml::array{toml::table{{"suite", suite}, {"eps", eps}, {"norm", norm}}});
}

// "0.02,0.05" -> {"0.02", "0.05"}, spaces trimmed.
std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  for (auto item : split(text, ',')) {
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    out.push_back(item);
  }
  return out;
}

nlohmann::ordered_json toml_to_json(const toml::table& table) {
  std::ostringstream text;
  text << toml::json_formatter(table);
  return nlohmann::ordered_json::parse(text.str());
}

}  // namespace

namespace {

struct EvalArgs {
  CommonOptions common;
  std::string target, which = "best", output;
  std::vector<std::string> overrides;
  int64_t threads = -1, points = -1, batch_size = -1, seed = -1;
  std::string eps_list;
  std::string split, suite, norm = "linf", model_plugin, data_plugin, zoo;
  std::vector<double> radii;  // --eps, parsed
};

// --eps "0.02,0.05": radii in [0,1] pixel units.
std::vector<double> parse_radii(const std::string& eps_list) {
  std::vector<double> radii;
  for (const auto& item : eps_list.empty() ? std::vector<std::string>{} : split_list(eps_list)) {
    size_t used = 0;
    double r = -1;
    try {
      r = std::stod(item, &used);
    } catch (const std::exception&) {
    }
    if (used != item.size() || !(r >= 0 && r <= 1))
      throw_config_error(fmt::format(
          "eval: --eps '{}': expected radii in [0,1] pixel units, e.g. --eps 0.02,0.05,0.1", item));
    radii.push_back(r);
  }
  return radii;
}

bool parse_eval_args(const std::vector<std::string>& args, EvalArgs& a) {
  po::options_description d(kEvalHelp);
  add_common(d, a.common);
  d.add_options()("set", po::value(&a.overrides)->composing(),
                  "override a key: --set evaluation.points=500 (repeatable)")(
      "split", po::value(&a.split), "train | validation | test")(
      "points", number(&a.points, "points", int64_t{0}), "first N points of the split (0 = all)")(
      "batch-size", number(&a.batch_size, "batch-size", int64_t{1}), "evaluation batch size")(
      "seed", number(&a.seed, "seed", int64_t{0}), "seed of the attacks' random starts")(
      "suite", po::value(&a.suite), "quick | standard: attack with a named suite instead")(
      "eps", po::value(&a.eps_list),
      "radius in [0,1] pixel units, or several: --eps 0.02,0.05,0.1 evaluates every attack at "
      "each (named ATTACK@EPS); with --suite the default is the first attack's")(
      "norm", po::value(&a.norm), "--suite: linf | l2 (default linf)")(
      "model", po::value(&a.model_plugin), "model files: the model plugin of a checkpoint")(
      "zoo", po::value(&a.zoo),
      "model files: the RobustBench model zoo entry of a checkpoint (`ardkit zoo list`)")(
      "data", po::value(&a.data_plugin), "model files: the data plugin to evaluate on")(
      "which", po::value(&a.which),
      "run folders: best | last | averaged checkpoint (default best)")(
      "output,o", po::value(&a.output), "results JSON file")(
      "threads", number(&a.threads, "threads", int64_t{0}), "LibTorch threads (0 = one per core)")(
      "target", po::value(&a.target), "evaluation file, run folder or model file");
  po::positional_options_description positional;
  positional.add("target", 1);
  parse(args, d, positional);
  if (a.common.help) {
    std::cout << d << "\n";
    return false;
  }
  a.radii = parse_radii(a.eps_list);
  if (a.target.empty())
    throw_config_error("eval: missing TARGET; usage: ardkit eval EVALUATION.toml | RUN_FOLDER");
  return true;
}

// The command-line options as overrides of the evaluation's keys, before any --set.
void add_option_overrides(EvalArgs& a) {
  auto set = [&](const std::string& key, const std::string& value) {
    a.overrides.push_back(key + "=" + value);
  };
  if (!a.split.empty())
    set("evaluation.split", nlohmann::json(a.split).dump());
  if (a.points >= 0)
    set("evaluation.points", std::to_string(a.points));
  if (a.batch_size >= 0)
    set("evaluation.batch_size", std::to_string(a.batch_size));
  if (a.seed >= 0)
    set("run.seed", std::to_string(a.seed));
  if (a.threads >= 0)
    set("run.threads", std::to_string(a.threads));
  if (!a.output.empty())
    set("evaluation.output", nlohmann::json(a.output).dump());
}

// Several radii: every attack (or the suite, built at each radius so its step sizes follow) once
// per radius, named ATTACK@EPS; results keep each entry's eps for robustness curves.
void attacks_at_radii(toml::table& root, const EvalArgs& a, const fs::path& file) {
  toml::array combined;
  for (double r : a.radii) {
    toml::table copy = root;
    if (!a.suite.empty())
      use_suite(copy, a.suite, r, a.norm, file);
    expand_suites(copy, file.string());
    const auto* evals = copy.get_as<toml::array>("eval");
    if (!evals)
      continue;
    for (const auto& node : *evals) {
      toml::table entry = *node.as_table();
      if (a.suite.empty())
        entry.insert_or_assign("eps", r);
      std::string base = entry.contains("name") ? entry.get("name")->value_or(std::string()) : "";
      if (base.empty())
        base = entry.contains("plugin") ? entry.get("plugin")->value_or(std::string("attack"))
                                        : "attack";
      entry.insert_or_assign("name", fmt::format("{}@{}", base, r));
      combined.push_back(std::move(entry));
    }
  }
  if (combined.empty())
    throw_config_error(fmt::format(
        "{}: --eps {} names radii but there is no attack to run at them; add --suite standard",
        file.string(), a.eps_list));
  root.insert_or_assign("eval", std::move(combined));
}

// The suite first, expanded, so that --set can tune its attacks (--set eval.3.queries=1000).
void choose_attacks(toml::table& root, const EvalArgs& a, const fs::path& file) {
  if (a.radii.size() > 1)
    return attacks_at_radii(root, a, file);
  if (!a.suite.empty())
    use_suite(root, a.suite, a.radii.empty() ? -1 : a.radii[0], a.norm, file);
  expand_suites(root, file.string());
  if (a.suite.empty() && a.radii.size() == 1)
    if (auto* evals = root.get_as<toml::array>("eval"))
      for (auto& node : *evals)
        if (auto* entry = node.as_table())
          entry->insert_or_assign("eps", a.radii[0]);
}

EvalOptions eval_options(const EvaluationConfig& c, const fs::path& results) {
  EvalOptions options;
  const std::string split_name = c.evaluation.get_string("split");
  options.split = split_name == "train"        ? Split::train
                  : split_name == "validation" ? Split::validation
                                               : Split::test;
  options.points = c.evaluation.get_int("points");
  options.batch_size = c.evaluation.get_int("batch_size");
  options.label = "eval";
  options.seed = c.run.get_int("seed");
  // The state belongs to these settings: the resolved configuration, less what cannot change
  // the numbers.
  toml::table identity = c.resolved();
  if (auto* run_table = identity.get_as<toml::table>("run"))
    run_table->erase("threads");
  if (auto* evaluation_table = identity.get_as<toml::table>("evaluation"))
    evaluation_table->erase("output");
  std::ostringstream fingerprint;
  fingerprint << identity;
  options.fingerprint = fingerprint.str();
  options.state_file = fs::path(results).replace_extension(".state.json");
  return options;
}

nlohmann::ordered_json attack_results(const EvalReport& report, const EvaluationSetup& setup) {
  nlohmann::ordered_json attacks = nlohmann::ordered_json::object();
  for (size_t i = 0; i < report.attacks.size(); ++i) {
    const auto threat = setup.attacks[i].attack->threat();
    auto& entry = attacks[report.attacks[i].name];
    entry = {{"robust_acc", 100 * report.attacks[i].accuracy},
             {"norm", threat.norm},
             {"eps", threat.eps},
             {"seconds", report.attacks[i].seconds}};
    if (report.attacks[i].stages.empty())
      continue;
    auto stages = nlohmann::ordered_json::array();
    for (const auto& stage : report.attacks[i].stages)
      stages.push_back(
          {{"name", stage.name}, {"robust_acc", 100 * stage.accuracy}, {"seconds", stage.seconds}});
    entry["stages"] = stages;
  }
  return attacks;
}

nlohmann::ordered_json eval_results(const std::string& label, const EvaluationConfig& c,
                                    const EvaluationSetup& setup, const EvalReport& report) {
  nlohmann::ordered_json j;
  j["name"] = label;
  j["model"] = {{"plugin", c.model.plugin}, {"checkpoint", c.model.host.get_string("checkpoint")}};
  for (const char* key : {"zoo", "sha256"})
    if (const std::string value = c.model.host.get_string(key); !value.empty())
      j["model"][key] = value;
  j["dataset"] = setup.data->spec().name;
  j["split"] = c.evaluation.get_string("split");
  j["points"] = report.points;
  j["seed"] = c.run.get_int("seed");
  j["clean_acc"] = 100 * report.clean_accuracy;
  j["attacks"] = attack_results(report, setup);
  if (!report.attacks.empty())
    j["worst_case_acc"] = 100 * report.worst_case;
  j["seconds"] = report.seconds;
  j["warnings"] = report.warnings;
  j["versions"] = {{"ardkit", kVersion}, {"commit", kGitCommit}, {"torch", TORCH_VERSION}};
  j["config"] = toml_to_json(c.resolved());
  return j;
}

}  // namespace

// Stages: the evaluation's TOML (from the target and the options), its components, the attacks
// batch by batch (resumable), the results file and the table.
int eval_command(const std::vector<std::string>& args) {
  EvalArgs a;
  if (!parse_eval_args(args, a))
    return 0;
  const bool is_run = fs::is_directory(a.target);
  const bool is_model_file =
      fs::is_regular_file(a.target) && fs::path(a.target).extension() != ".toml";
  auto [root, file] = is_model_file
                          ? model_file_evaluation(a.target, a.model_plugin, a.data_plugin, a.zoo)
                          : evaluation_root(a.target, a.which);
  if (!is_model_file && (!a.model_plugin.empty() || !a.data_plugin.empty() || !a.zoo.empty()))
    throw_config_error(
        "--model, --zoo and --data are for model files; an evaluation file or run folder "
        "names its own [model] and [data]");
  add_option_overrides(a);
  choose_attacks(root, a, file);
  for (const auto& o : a.overrides)
    apply_override(root, o);

  LoadedEvaluation evaluation = load_evaluation(root, file, to_paths(a.common.plugin_path));
  const EvaluationConfig& c = evaluation.config;
  set_threads(c.run.get_int("threads"));
  const std::string split_name = c.evaluation.get_string("split");
  fs::path results = c.evaluation.get_string("output");
  if (results.empty())
    results = is_run ? fs::path(a.target) / "evals" / (a.which + "-" + split_name + ".json")
                     : fs::path("evals") / (c.name() + ".json");
  EvaluationSetup setup = build_evaluation(evaluation);
  const EvalOptions options = eval_options(c, results);
  const std::string label = is_run ? fmt::format("{} ({})", c.name(), a.which) : c.name();
  log_line(fmt::format("evaluating {} on {} {} ({} threads)", label, setup.data->spec().name,
                       split_name, torch::get_num_threads()));
  install_interrupt_handlers();
  EvalReport report;
  try {
    report = evaluate(*setup.model, *setup.data, setup.attacks, options);
  } catch (const Interrupted&) {
    std::cerr << fmt::format(
        "interrupted; no results written, progress kept in {}: run the same command again to "
        "continue\n",
        options.state_file.string());
    return 130;
  }
  if (!results.parent_path().empty())
    fs::create_directories(results.parent_path());
  write_file_atomic(results, eval_results(label, c, setup, report).dump(2) + "\n");
  std::error_code ignored;
  fs::remove(options.state_file, ignored);  // the results now hold everything it did
  std::cout << format_report_table({{label, report}}) << results.string() << "\n";
  return 0;
}

}  // namespace ardkit::cli
