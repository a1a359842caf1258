// `ardkit analyze`: how much of a teacher's representation its students took over, on clean and
// on adversarial inputs (linear CKA, similarity structure, feature shift, agreement).
#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include <ardkit/host/evaluation_setup.hpp>
#include <ardkit/host/run_dir.hpp>
#include <ardkit/interrupt.hpp>
#include <ardkit/progress.hpp>
#include "analysis.hpp"

#include "cli_common.hpp"
#include "commands.hpp"

namespace ardkit::cli {
namespace {

const char* kAnalyzeHelp = R"(usage: ardkit analyze TEACHER STUDENT... [options]

Compares each student's representation with the teacher's on the first --points test images of
the teacher's data. TEACHER and STUDENT are run folders (their best checkpoint, or --which last)
or TorchScript model files (then --data PLUGIN names the data). Each model is attacked with
PGD (--steps, step eps/4, cross-entropy; --eps defaults to the teacher's first [[eval]] radius).
Per student, on penultimate features:
  cka          linear CKA with the teacher on clean inputs
  cka_adv      linear CKA with the teacher, both on the student's adversarial inputs
  struct       correlation of the two models' pairwise cosine-similarity matrices (clean):
               the "structural knowledge" a student took over
  struct_adv   the same on the student's adversarial inputs
  shift        mean ||f(x') - f(x)|| / ||f(x)|| under the model's own attack
  agree        teacher and student predict the same class (clean; '-' across label spaces)
  agree_adv    the same on the student's adversarial inputs
plus clean and PGD accuracy. Prints a table and writes a JSON file (default analysis.json).
Ctrl-C stops it without writing anything; it has no state to resume (500 points take about a
minute per model on 2 cores).

options)";

struct Subject {
  std::string label;
  EvaluationSetup setup;
};

// What one model gives on the analysed points.
struct Views {
  torch::Tensor features, logits;                                // clean
  torch::Tensor adv_features, adv_logits;                        // on its own adversarial inputs
  torch::Tensor teacher_features_on_adv, teacher_logits_on_adv;  // the teacher on those inputs
};

double first_eval_eps(const toml::table& root) {
  if (const auto* evals = root.get_as<toml::array>("eval"))
    for (const auto& entry : *evals)
      if (const auto* table = entry.as_table(); table && table->contains("eps"))
        return table->get("eps")->value_or(-1.0);
  return -1.0;
}

toml::table root_of(const std::string& target, const std::string& which,
                    const std::string& data_plugin, fs::path& file) {
  if (fs::is_directory(target)) {
    file = fs::path(target) / "config.toml";
    return evaluation_of_run(target, which);
  }
  if (!fs::is_regular_file(target))
    throw_config_error(target + ": no such run folder or model file; check the path");
  auto [root, path] = model_file_evaluation(target, "", data_plugin);
  file = path;
  return root;
}

Subject load_subject(const std::string& target, const std::string& which,
                     const std::string& data_plugin, double eps, int64_t steps,
                     const std::vector<fs::path>& plugin_path) {
  fs::path file;
  toml::table root = root_of(target, which, data_plugin, file);
  root.insert_or_assign("eval", toml::array{toml::table{{"plugin", "pgd"},
                                                        {"name", "pgd"},
                                                        {"eps", eps},
                                                        {"steps", steps},
                                                        {"step_size", eps / 4}}});
  const LoadedEvaluation loaded = load_evaluation(root, file, plugin_path);
  // Run folders by their folder name (unique, unlike experiment names), files by their stem.
  const fs::path path = fs::path(target).lexically_normal();
  const std::string label =
      fs::is_directory(target)
          ? fmt::format("{} ({})",
                        (path.has_filename() ? path : path.parent_path()).filename().string(),
                        which)
          : path.stem().string();
  return {label, build_evaluation(loaded)};
}

torch::Tensor cat(const std::vector<torch::Tensor>& parts) {
  return torch::cat(parts, 0);
}

std::optional<double> when(bool ok, double value) {
  return ok ? std::optional<double>(value) : std::nullopt;
}

struct AnalyzeArgs {
  CommonOptions common;
  std::vector<std::string> targets;
  std::string which = "best", data_plugin, output = "analysis.json";
  int64_t points = 500, steps = 20, batch_size = 250, threads = 0;
  double eps = -1;
};

bool parse_analyze_args(const std::vector<std::string>& args, AnalyzeArgs& a) {
  po::options_description d(kAnalyzeHelp);
  add_common(d, a.common);
  d.add_options()("points", number(&a.points, "points", int64_t{1}),
                  "first N test points (default 500)")(
      "eps", number(&a.eps, "eps", 0.0, 1.0),
      "attack radius (default: the teacher's first [[eval]] eps)")(
      "steps", number(&a.steps, "steps", int64_t{0}), "PGD steps (default 20)")(
      "which", po::value(&a.which),
      "run folders: best | last | averaged checkpoint (default best)")(
      "data", po::value(&a.data_plugin), "model files: the data plugin")(
      "batch-size", number(&a.batch_size, "batch-size", int64_t{1}), "batch size (default 250)")(
      "output,o", po::value(&a.output), "JSON file (default analysis.json)")(
      "threads", number(&a.threads, "threads", int64_t{0}), "LibTorch threads (0 = one per core)")(
      "targets", po::value(&a.targets), "teacher, then students");
  po::positional_options_description positional;
  positional.add("targets", -1);
  parse(args, d, positional);
  if (a.common.help) {
    std::cout << d << "\n";
    return false;
  }
  if (a.targets.size() < 2)
    throw_config_error(
        "analyze: give a teacher and at least one student: ardkit analyze "
        "TEACHER_RUN STUDENT_RUN...");
  if (std::find(checkpoint_kinds().begin(), checkpoint_kinds().end(), a.which) ==
      checkpoint_kinds().end())
    throw_config_error("--which must be best, last or averaged, got '" + a.which + "'");
  if (a.points < 2 || a.steps < 1 || a.batch_size < 1)
    throw_config_error("analyze: --points must be at least 2, --steps and --batch-size positive");
  return true;
}

// Every model's clean and adversarial views of the first n test points, attacked batch by
// batch; nullopt when interrupted.
std::optional<std::vector<Views>> collect_views(std::vector<Subject>& subjects, int64_t n,
                                                int64_t batch_size, torch::Tensor& y) {
  Subject& teacher = subjects.front();
  DataSource& data = *teacher.setup.data;
  std::vector<std::vector<std::vector<torch::Tensor>>> parts(
      subjects.size(), std::vector<std::vector<torch::Tensor>>(6));
  std::vector<torch::Tensor> labels;
  const auto run_model = [](Model& model, const torch::Tensor& x) {
    torch::NoGradGuard no_grad;
    BnModeGuard eval_mode(model, BnMode::eval);
    return model.forward(x);
  };
  Progress progress("analyze", (n + batch_size - 1) / batch_size);
  for (int64_t start = 0, b = 0; start < n; start += batch_size, ++b) {
    const auto indices = torch::arange(start, std::min(n, start + batch_size), torch::kLong);
    const Batch batch = data.get(Split::test, indices, Augmentation::none());
    labels.push_back(batch.y);
    for (size_t m = 0; m < subjects.size(); ++m) {
      Model& model = *subjects[m].setup.model;
      AttackTarget target;
      target.model = &model;
      target.bn_mode = BnMode::eval;
      const auto x_adv =
          subjects[m].setup.attacks.front().attack->perturb(target, batch.x, batch.y);
      const auto clean = run_model(model, batch.x);
      const auto adv = run_model(model, x_adv);
      const auto teacher_adv = run_model(*teacher.setup.model, x_adv);
      for (const auto& [k, t] :
           std::vector<std::pair<int, torch::Tensor>>{{0, clean.features},
                                                      {1, clean.logits},
                                                      {2, adv.features},
                                                      {3, adv.logits},
                                                      {4, teacher_adv.features},
                                                      {5, teacher_adv.logits}})
        parts[m][k].push_back(t);
      if (interrupt_requested()) {
        progress.finish("interrupted");
        return std::nullopt;
      }
    }
    progress.update(b + 1, "");
  }
  progress.finish("");
  y = cat(labels);
  std::vector<Views> views;
  for (auto& p : parts)
    views.push_back({cat(p[0]), cat(p[1]), cat(p[2]), cat(p[3]), cat(p[4]), cat(p[5])});
  return views;
}

// One model's measures against the teacher, in the table's column order.
struct Measures {
  std::optional<double> clean, robust, cka, cka_adv, structure, structure_adv, shift, agree,
      agree_adv;
};

Measures measure(const Views& t, const Views& v, const torch::Tensor& y, int64_t num_classes) {
  const auto accuracy = [&](const torch::Tensor& logits) {
    return logits.size(1) == num_classes
               ? std::optional<double>(
                     100 * logits.argmax(1).eq(y).to(torch::kDouble).mean().item<double>())
               : std::nullopt;
  };
  const bool same_labels = v.logits.size(1) == t.logits.size(1);
  Measures r;
  r.clean = accuracy(v.logits);
  r.robust = accuracy(v.adv_logits);
  r.cka = analysis::linear_cka(t.features, v.features);
  r.cka_adv = analysis::linear_cka(v.teacher_features_on_adv, v.adv_features);
  r.structure = analysis::structure_correlation(t.features, v.features);
  r.structure_adv = analysis::structure_correlation(v.teacher_features_on_adv, v.adv_features);
  r.shift = analysis::relative_shift(v.features, v.adv_features);
  r.agree = when(same_labels, analysis::agreement(t.logits, v.logits));
  r.agree_adv = when(same_labels, analysis::agreement(v.teacher_logits_on_adv, v.adv_logits));
  return r;
}

nlohmann::ordered_json measures_json(const std::string& label, bool teacher, const Measures& r) {
  const auto number = [](const std::optional<double>& v) {
    return v ? nlohmann::ordered_json(*v) : nlohmann::ordered_json(nullptr);
  };
  nlohmann::ordered_json row;
  row["model"] = label;
  row["role"] = teacher ? "teacher" : "student";
  row["clean_acc"] = number(r.clean);
  row["pgd_acc"] = number(r.robust);
  row["cka"] = number(r.cka);
  row["cka_adv"] = number(r.cka_adv);
  row["structure"] = number(r.structure);
  row["structure_adv"] = number(r.structure_adv);
  row["shift"] = number(r.shift);
  row["agreement"] = number(r.agree);
  row["agreement_adv"] = number(r.agree_adv);
  return row;
}

std::string measures_row(const std::string& label, size_t width, const Measures& r) {
  const auto cell = [](const std::optional<double>& v, int w, int precision) {
    return v ? fmt::format("{:>{}.{}f}", *v, w, precision) : fmt::format("{:>{}}", "-", w);
  };
  return fmt::format("{:<{}} {} {} {} {} {} {} {} {} {}\n", label, width, cell(r.clean, 7, 2),
                     cell(r.robust, 7, 2), cell(r.cka, 6, 3), cell(r.cka_adv, 7, 3),
                     cell(r.structure, 6, 3), cell(r.structure_adv, 10, 3), cell(r.shift, 6, 3),
                     cell(r.agree, 6, 3), cell(r.agree_adv, 9, 3));
}

}  // namespace

// Stages: the models (each with its PGD attack), their views of the points, the measures
// against the teacher, the JSON file and the table.
int analyze_command(const std::vector<std::string>& args) {
  AnalyzeArgs a;
  if (!parse_analyze_args(args, a))
    return 0;
  set_threads(a.threads);
  if (a.eps < 0) {
    fs::path file;
    a.eps = first_eval_eps(root_of(a.targets[0], a.which, a.data_plugin, file));
    if (a.eps < 0)
      throw_config_error(a.targets[0] +
                         ": names no attack radius; add --eps 0.1 (in [0,1] pixel "
                         "units)");
  }
  const auto plugin_path = to_paths(a.common.plugin_path);
  std::vector<Subject> subjects;
  for (const auto& target : a.targets)
    subjects.push_back(load_subject(target, a.which, a.data_plugin, a.eps, a.steps, plugin_path));
  DataSource& data = *subjects.front().setup.data;
  const int64_t n = std::min(a.points, data.size(Split::test));
  if (n < 2)
    throw_config_error("analyze: the teacher's test split has fewer than 2 points");

  install_interrupt_handlers();
  torch::manual_seed(0);
  torch::Tensor y;
  const auto views = collect_views(subjects, n, a.batch_size, y);
  if (!views) {
    std::cerr << "interrupted; nothing written\n";
    return 130;
  }
  nlohmann::ordered_json j;
  j["teacher"] = subjects.front().label;
  j["dataset"] = data.spec().name;
  j["points"] = n;
  j["attack"] = {{"plugin", "pgd"}, {"eps", a.eps}, {"steps", a.steps}, {"step_size", a.eps / 4}};
  size_t width = 5;
  for (const auto& subject : subjects)
    width = std::max(width, subject.label.size());
  std::string table = fmt::format("{:<{}} {:>7} {:>7} {:>6} {:>7} {:>6} {:>10} {:>6} {:>6} {:>9}\n",
                                  "model", width, "clean", "pgd", "cka", "cka_adv", "struct",
                                  "struct_adv", "shift", "agree", "agree_adv");
  auto rows = nlohmann::ordered_json::array();
  for (size_t m = 0; m < subjects.size(); ++m) {
    const Measures r = measure(views->front(), (*views)[m], y, data.spec().num_classes);
    rows.push_back(measures_json(subjects[m].label, m == 0, r));
    table += measures_row(subjects[m].label, width, r);
  }
  j["models"] = rows;
  const fs::path out(a.output);
  if (!out.parent_path().empty())
    fs::create_directories(out.parent_path());
  write_file_atomic(out, j.dump(2) + "\n");
  std::cout << fmt::format(
                   "{} test points of {}, PGD-{} at eps {}; the teacher row compares the "
                   "teacher with itself\n",
                   n, data.spec().name, a.steps, a.eps)
            << table << out.string() << "\n";
  return 0;
}

}  // namespace ardkit::cli
