// Differential tests of the objectives against PyTorch. Two references, each the same tiny
// BatchNorm network, batch and seed put through one training step:
//  - official_reference/ (committed): written by run_official.py, which runs the official
//    repositories' own training-step functions at recorded commits (official.json names each
//    case's repository, commit, file and function), so a misreading of the official code cannot
//    be shared by the reference and the plugin;
//  - make_reference.py's output (run first by CTest): a readable port of each step, which also
//    covers what has no official code here (plain KD) and RSLAD's float16 teacher.
// Here the same inputs go through the ardkit plugin, the [attack] built from the objective's own
// attack defaults, and one SGD step. Adversarial examples, loss terms and the post-step weights
// and BatchNorm statistics must agree within float tolerance.
#include <doctest/doctest.h>

#include <ardkit/ardkit.hpp>
#include <ardkit/host/config.hpp>
#include <ardkit/host/lr_schedule.hpp>
#include <ardkit/nn/batch_norm.hpp>
#include <ardkit/pytorch_file.hpp>
#include <ardkit/weights.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.hpp"
#include "tiny_net.hpp"

namespace fs = std::filesystem;
using ardkit::PluginKind;

namespace {

fs::path port_reference() {
  return test::reference_dir("ARDKIT_OBJECTIVE_REFERENCE_DIR");
}

fs::path official_reference() {
  return test::reference_dir("ARDKIT_OFFICIAL_REFERENCE_DIR");
}

// The folder the current case reads (the port's unless a test says otherwise).
fs::path& reference_root() {
  static fs::path root;
  return root;
}

fs::path reference() {
  return reference_root().empty() ? port_reference() : reference_root();
}

std::map<std::string, torch::Tensor> load(const std::string& file) {
  return test::load_tensors(reference() / file);
}

// Uses `dir` as the reference folder for the lifetime of the guard.
struct UseReference {
  explicit UseReference(fs::path dir) {
    reference_root() = std::move(dir);
  }
  ~UseReference() {
    reference_root().clear();
  }
};

using objective_test::max_diff;
using objective_test::Recording;
using objective_test::relative;
using objective_test::TinyNet;

std::shared_ptr<TinyNet> tiny(const std::string& file) {
  return objective_test::tiny(reference() / file);
}

using Values = std::map<std::string, ardkit::Value>;

// What one ardkit step gave.
struct Outcome {
  torch::Tensor x_adv;  // undefined for objectives without an attack
  double eps = 0;
  ardkit::LossTerms loss;
  ardkit::StateDict after;  // the student's state dict after the SGD step
};

// One step of `objective` with `params` on the reference folder's inputs; `attack_overrides`
// replace keys of the [attack] the objective's defaults build.
Outcome run_step(const std::string& objective, Values params, int64_t epoch,
                 const Values& attack_overrides = {}, const std::string& batch_name = "batch") {
  const auto batch_file = load(batch_name + ".pt");
  ardkit::Batch batch;
  batch.x = batch_file.at("x");
  batch.y = batch_file.at("y");
  if (objective == "iad" && params.count("variant") &&
      std::get<std::string>(params.at("variant")) == "iad2")
    params["st_teacher_checkpoint"] = (reference() / "st_teacher.pt").string();
  auto student = tiny("student.pt");
  auto teacher = tiny("teacher.pt");
  teacher->eval();
  for (auto& p : teacher->parameters())
    p.set_requires_grad(false);
  const auto objective_params = test::params_for(PluginKind::objective, objective, params);
  ardkit::BuildContext build;  // IAD-II's second teacher sizes itself from the data
  build.data.channels = 1;
  build.data.height = 8;
  build.data.width = 8;
  build.data.num_classes = 10;
  auto plugin = test::builtin().create<ardkit::Objective>(PluginKind::objective, objective,
                                                          objective_params, build);
  // The [attack] an experiment gets when it names pgd and leaves the rest to the objective.
  Values attack_values;
  const auto& info = test::builtin().find(PluginKind::objective, objective).info;
  std::shared_ptr<Recording> attack;
  if (info.attack_defaults) {
    for (const auto& [k, v] : info.attack_defaults(objective_params))
      attack_values[k] = v;
    for (const auto& [k, v] : attack_overrides)
      attack_values[k] = v;
    attack = std::make_shared<Recording>(
        test::make<ardkit::Attack>(PluginKind::attack, "pgd", attack_values));
  }
  ardkit::Knobs knobs;
  plugin->declare_knobs(knobs);
  torch::optim::SGD optimizer(student->parameters(),
                              torch::optim::SGDOptions(0.1).momentum(0.9).weight_decay(2e-4));
  optimizer.zero_grad();
  student->train();
  torch::manual_seed(1234);
  ardkit::StepContext context{*student, teacher.get(), attack.get(), batch, epoch, 0, knobs};
  Outcome out;
  out.loss = plugin->compute(context);
  out.loss.total.backward();
  optimizer.step();
  if (attack) {
    out.x_adv = attack->last;
    out.eps = attack->threat().eps;
  }
  out.after = ardkit::model_state_dict(*student);
  return out;
}

// Whether an outcome reproduces the reference step CASE.pt: same adversarial examples, loss,
// post-step weights and BatchNorm statistics (which count the train-mode forwards and see which
// inputs they ran on).
bool reproduces(const Outcome& o, const std::string& name) {
  const auto r = load(name + ".pt");
  if (r.count("x_adv") && max_diff(o.x_adv, r.at("x_adv")) >= 1e-6)
    return false;
  if (relative(o.loss.total.item<double>(), r.at("loss").item<double>()) >= 1e-5)
    return false;
  for (const auto& [key, value] : o.after)
    if (max_diff(value, r.at("after." + key)) >= 2e-5)
      return false;
  return true;
}

// One step of `objective` with `params` against the reference file CASE.pt, item by item.
void check_case(const std::string& name, const std::string& objective, Values params,
                int64_t epoch = 0, const std::string& batch_name = "batch",
                const Values& attack_overrides = {}) {
  CAPTURE(reference());
  CAPTURE(name);
  const auto r = load(name + ".pt");
  const auto batch_x = load(batch_name + ".pt").at("x");
  const Outcome o = run_step(objective, params, epoch, attack_overrides, batch_name);
  if (r.count("x_adv")) {
    CHECK(max_diff(o.x_adv, r.at("x_adv")) < 1e-6);
    // Inside the ball and the pixel range, and actually moved.
    CHECK((o.x_adv - batch_x).abs().max().item<double>() <= o.eps + 1e-6);
    CHECK(max_diff(o.x_adv, batch_x) > 0.01);
  }
  CHECK(relative(o.loss.total.item<double>(), r.at("loss").item<double>()) < 1e-5);
  for (const auto& [key, value] : r) {
    if (key.rfind("term.", 0) != 0)
      continue;
    const std::string term = key.substr(5);
    CAPTURE(term);
    auto found = std::find_if(o.loss.terms.begin(), o.loss.terms.end(),
                              [&](const auto& t) { return t.first == term; });
    REQUIRE(found != o.loss.terms.end());
    CHECK(relative(found->second.item<double>(), value.item<double>()) < 1e-5);
  }
  size_t compared = 0;
  for (const auto& [key, value] : o.after) {
    const std::string key_shown = key;  // CAPTURE cannot capture a binding (C++17)
    CAPTURE(key_shown);
    REQUIRE(r.count("after." + key));
    CHECK(max_diff(value, r.at("after." + key)) < 2e-5);
    ++compared;
  }
  CHECK(compared == 9);  // conv and fc weight and bias, BatchNorm's five entries
}

const Values kAdaIad = {{"variant", std::string("adaiad")}, {"alpha", 0.9}};
const Values kIad2 = {{"variant", std::string("iad2")}};

}  // namespace

TEST_CASE("objectives reproduce one step of the official repositories' own code") {
  // run_official.py ran these with the official argparse defaults, except --alpha 0.9 (ARD,
  // IAD-I, AdaIAD) and --AdaAD_alpha 0.8 so the clean terms count, and AdaAD's README radius.
  UseReference official(official_reference());
  check_case("ard", "ard", {{"alpha", 0.9}});
  check_case("rslad", "rslad", {});
  check_case("rslad_cifar100", "rslad",
             {{"kl_scale", 10.0}, {"student_log", std::string("log_of_softmax")}});
  check_case("iad1", "iad", {{"alpha", 0.9}}, /*epoch=*/60);
  check_case("iad1_before_begin", "iad", {{"alpha", 0.9}}, 59);
  check_case("iad2", "iad", kIad2, 40);  // IAD-II's own defaults: alpha 0.5, begin 40
  check_case("iad2_before_begin", "iad", kIad2, 39);
  check_case("adaad", "adaad", {{"alpha", 0.8}});
  check_case("adaad_cifar100", "adaad",
             {{"alpha", 0.8}, {"kl_reduction", std::string("batchmean")}});
  check_case("adaiad", "iad", kAdaIad, 60);  // T = 30, attack in eval mode: the variant's own
  check_case("adaiad_before_begin", "iad", kAdaIad, 59);
  check_case("pgd_at_adaad", "pgd_at", {{"variant", std::string("adaad")}});
  check_case("pgd_at_adaad_binary", "pgd_at", {{"variant", std::string("adaad")}}, 0,
             "batch_binary", {{"steps", int64_t{1}}});
  check_case("trades", "trades", {});
  check_case("pgd_at", "pgd_at", {});
  check_case("ferd", "ferd", {});  // test.py train_model_ds_at: the pairwise term vanishes
}

TEST_CASE("objectives reproduce the ported official steps") {
  check_case("ard", "ard", {{"alpha", 0.9}});
  check_case("rslad", "rslad", {});
  check_case("rslad_half_teacher", "rslad",
             {{"kl_scale", 10.0},
              {"student_log", std::string("log_of_softmax")},
              {"teacher_precision", std::string("half")}});
  check_case("iad1", "iad", {{"alpha", 0.9}, {"begin", int64_t{0}}});
  check_case("iad1_before_begin", "iad", {{"alpha", 0.9}}, /*epoch=*/5);
  check_case("iad2", "iad",
             {{"variant", std::string("iad2")}, {"alpha", 0.5}, {"begin", int64_t{0}}});
  check_case("adaad", "adaad", {{"alpha", 0.8}});
  check_case("trades", "trades", {});
  check_case("pgd_at", "pgd_at", {});
  check_case("pgd_at_adaad", "pgd_at", {{"variant", std::string("adaad")}});
  check_case("adaiad", "iad", kAdaIad, 60);
  check_case("adaiad_before_begin", "iad", kAdaIad, 59);
  check_case("kd", "kd", {});
}

TEST_CASE("the official steps are sensitive to what the objectives get right") {
  // Each mistake a baseline had, or could have, must fail to reproduce the official step, or
  // the comparison above would be vacuous.
  UseReference official(official_reference());
  struct Mistake {
    std::string what, reference, objective;
    Values params;
    int64_t epoch;
    Values attack;
    std::string batch = "batch";
  };
  const auto s = [](const char* v) { return ardkit::Value(std::string(v)); };
  const std::vector<Mistake> mistakes = {
      // With the teacher's softmax as prior the pairwise logit-difference term does not vanish.
      {"FERD's student step with the generator's prior",
       "ferd",
       "ferd",
       {{"prior", s("teacher")}},
       0,
       {}},
      {"FERD attacking in train mode", "ferd", "ferd", {{"attack_bn_mode", s("train")}}, 0, {}},
      {"ARD with batchmean KL",
       "ard",
       "ard",
       {{"alpha", 0.9}, {"kl_reduction", s("batchmean")}},
       0,
       {}},
      {"ARD attacking in eval mode",
       "ard",
       "ard",
       {{"alpha", 0.9}, {"attack_bn_mode", s("eval")}},
       0,
       {}},
      {"Plain_Madry without its clean forward",
       "pgd_at_adaad",
       "pgd_at",
       {{"variant", s("adaad")}, {"clean_forward", false}},
       0,
       {}},
      // Only pixels at 0 or 1 show the clip; a uniform-noise batch has none.
      {"Plain_Madry without clipping the Gaussian start",
       "pgd_at_adaad_binary",
       "pgd_at",
       {{"variant", s("adaad")}},
       0,
       {{"clip_start", false}, {"steps", int64_t{1}}},
       "batch_binary"},
      {"IAD-II with IAD-I's begin = 60",
       "iad2",
       "iad",
       {{"variant", s("iad2")}, {"begin", int64_t{60}}},
       40,
       {}},
      {"IAD-II with IAD-I's alpha = 1",
       "iad2",
       "iad",
       {{"variant", s("iad2")}, {"alpha", 0.75}},
       40,
       {}},
      {"AdaIAD at IAD-I's temperature 1",
       "adaiad",
       "iad",
       {{"variant", s("adaiad")}, {"alpha", 0.9}, {"temperature", 1.0}},
       60,
       {}},
      {"AdaIAD attacking in train mode",
       "adaiad",
       "iad",
       {{"variant", s("adaiad")}, {"alpha", 0.9}, {"attack_bn_mode", s("train")}},
       60,
       {}},
      {"RSLAD CIFAR-100 without the x10",
       "rslad_cifar100",
       "rslad",
       {{"student_log", s("log_of_softmax")}},
       0,
       {}},
      {"AdaAD CIFAR-100 with CIFAR-10's elemmean",
       "adaad_cifar100",
       "adaad",
       {{"alpha", 0.8}},
       0,
       {}},
  };
  for (const auto& m : mistakes) {
    CAPTURE(m.what);
    CHECK_FALSE(
        reproduces(run_step(m.objective, m.params, m.epoch, m.attack, m.batch), m.reference));
  }
}

namespace {

// One GACD step against make_reference.py's gacd_cases: the heads and memory banks start from
// gacd_init.pt, train with the student in one SGD step, and must end where the reference's do.
void check_gacd(const std::string& name, const Values& params) {
  CAPTURE(name);
  const auto r = load(name + ".pt");
  const auto init = load("gacd_init.pt");
  const auto batch_file = load("batch.pt");
  ardkit::Batch batch;
  batch.x = batch_file.at("x");
  batch.y = batch_file.at("y");
  batch.index = torch::arange(batch.x.size(0));
  auto student = tiny("student.pt");
  auto teacher = tiny("teacher.pt");
  teacher->eval();  // parameters left trainable: gacd must not give them gradients itself
  Values all = {{"feature_dim", int64_t{6}}, {"negatives", int64_t{5}}};
  all.insert(params.begin(), params.end());
  const auto objective_params = test::params_for(PluginKind::objective, "gacd", all);
  auto plugin = test::builtin().create<ardkit::Objective>(PluginKind::objective, "gacd",
                                                          objective_params, {});
  ardkit::ObjectiveSetup sizes;
  sizes.train_size = 16;
  sizes.num_classes = sizes.student_classes = sizes.teacher_classes = 10;
  sizes.student_features = sizes.teacher_features = 64;
  if (r.count("train_labels")) {
    const auto labels = r.at("train_labels");
    sizes.train_labels = [labels] { return labels; };
  }
  plugin->setup(sizes);
  auto heads = plugin->trainable();
  REQUIRE(heads);
  {
    torch::NoGradGuard no_grad;
    for (auto& item : heads->named_parameters())
      item.value().copy_(init.at(item.key()));
    for (auto& item : heads->named_buffers())
      item.value().copy_(init.at(item.key()));
  }
  std::map<std::string, ardkit::Value> attack_values;
  for (const auto& [k, v] :
       test::builtin().find(PluginKind::objective, "gacd").info.attack_defaults(objective_params))
    attack_values[k] = v;
  auto attack = std::make_shared<Recording>(
      test::make<ardkit::Attack>(PluginKind::attack, "pgd", attack_values));
  ardkit::Knobs knobs;
  plugin->declare_knobs(knobs);
  auto parameters = student->parameters();
  for (auto& p : heads->parameters())
    parameters.push_back(p);
  torch::optim::SGD optimizer(parameters,
                              torch::optim::SGDOptions(0.1).momentum(0.9).weight_decay(2e-4));
  optimizer.zero_grad();
  student->train();
  torch::manual_seed(1234);
  ardkit::StepContext context{*student, teacher.get(), attack.get(), batch, 0, 0, knobs};
  const auto loss = plugin->compute(context);
  loss.total.backward();
  optimizer.step();
  for (const auto& p : teacher->parameters())
    CHECK_FALSE(p.grad().defined());  // the teacher runs without autograd; only W_t learns

  CHECK(max_diff(attack->last, r.at("x_adv")) < 1e-6);
  CHECK(relative(loss.total.item<double>(), r.at("loss").item<double>()) < 1e-5);
  size_t terms = 0;
  for (const auto& [key, value] : r) {
    if (key.rfind("term.", 0) != 0)
      continue;
    const std::string term = key.substr(5);
    CAPTURE(term);
    auto found = std::find_if(loss.terms.begin(), loss.terms.end(),
                              [&](const auto& t) { return t.first == term; });
    REQUIRE(found != loss.terms.end());
    CHECK(relative(found->second.item<double>(), value.item<double>()) < 1e-5);
    ++terms;
  }
  CHECK(terms >= 3);
  for (const auto& [key, value] : ardkit::model_state_dict(*student)) {
    const std::string key_shown = key;  // CAPTURE cannot capture a binding (C++17)
    CAPTURE(key_shown);
    CHECK(max_diff(value, r.at("after." + key)) < 2e-5);
  }
  // Heads (4 tensors) and, for crd, both banks and their Z constants (4 more); Z is of the order
  // of N * exp(1 / tau), so its tolerance is relative.
  size_t head_entries = 0;
  const auto compare = [&](const std::string& key, const torch::Tensor& value) {
    CAPTURE(key);
    const double scale = std::max(1.0, value.abs().max().item<double>());
    CHECK(max_diff(value, r.at("heads." + key)) < 2e-5 * scale);
    ++head_entries;
  };
  for (const auto& item : heads->named_parameters())
    compare(item.key(), item.value());
  for (const auto& item : heads->named_buffers())
    compare(item.key(), item.value());
  CHECK(head_entries == (objective_params.get_string("estimator") == "crd" ? 8u : 4u));
}

}  // namespace

TEST_CASE("gacd reproduces its documented step: both estimators, banks, reweighting, guides") {
  check_gacd("gacd_crd", {});
  check_gacd("gacd_infonce", {{"estimator", std::string("infonce")},
                              {"reweight", std::string("power")},
                              {"kl_weight", 0.5}});
  check_gacd("gacd_guide_ce", {{"guide", std::string("ce")}, {"reweight", std::string("none")}});
  // CRD's negatives, from the other classes' samples only (the reference asserts that of its
  // draws, and the loss and banks below depend on every drawn index).
  check_gacd("gacd_crd_other_classes", {{"negatives_from", std::string("other_classes")}});
}

TEST_CASE("gacd refuses other-class negatives without the training labels") {
  auto plugin = test::builtin().create<ardkit::Objective>(
      PluginKind::objective, "gacd",
      test::params_for(PluginKind::objective, "gacd",
                       {{"negatives_from", std::string("other_classes")}}),
      {});
  ardkit::ObjectiveSetup sizes;
  sizes.train_size = 4;
  sizes.num_classes = sizes.student_classes = sizes.teacher_classes = 10;
  sizes.student_features = sizes.teacher_features = 8;
  CHECK_THROWS_WITH_AS(plugin->setup(sizes), doctest::Contains("needs the training labels"),
                       ardkit::Error);
  sizes.train_labels = [] { return torch::full({4}, 3, torch::kLong); };
  CHECK_THROWS_WITH_AS(plugin->setup(sizes), doctest::Contains("one class only"), ardkit::Error);
  sizes.train_labels = [] { return torch::tensor({3, 3, 1, 3}, torch::kLong); };
  CHECK_NOTHROW(plugin->setup(sizes));
}

namespace {

// The learning rate of every step of a shipped experiment, as its LrSchedule gives it.
std::vector<double> ardkit_lrs(const fs::path& file, int64_t epochs, int64_t steps,
                               const std::vector<std::string>& overrides = {}) {
  const toml::table root = ardkit::read_experiment(file, overrides);
  const auto optimizer =
      ardkit::read_host_table(root, "optimizer", ardkit::optimizer_schema(), file.string());
  const auto schedule =
      ardkit::read_host_table(root, "schedule", ardkit::schedule_schema(), file.string());
  const auto train = ardkit::read_host_table(root, "train", ardkit::train_schema(), file.string());
  REQUIRE(train.get_int("epochs") == epochs);
  const ardkit::LrSchedule lr(optimizer, schedule, epochs);
  std::vector<double> out;
  for (int64_t e = 0; e < epochs; ++e)
    for (int64_t i = 0; i < steps; ++i)
      out.push_back(lr.at(e, i, steps));
  return out;
}

size_t first_difference(const std::vector<double>& a, const std::vector<double>& b) {
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    if (std::abs(a[i] - b[i]) > 1e-9 * std::max(1.0, std::abs(b[i])))
      return i;
  return a.size() == b.size() ? a.size() : std::min(a.size(), b.size());
}

nlohmann::json official_schedules() {
  std::ifstream in(official_reference() / "official.json");
  REQUIRE(in.good());
  return nlohmann::json::parse(in).at("schedules");
}

fs::path experiments_dir() {
  return test::reference_dir("ARDKIT_EXPERIMENTS_DIR");
}

}  // namespace

TEST_CASE("every shipped paper setting has the official learning rate at every step") {
  // run_official.py ran each official training loop for its full length, two batches an epoch,
  // and recorded the learning rate at every optimizer step.
  const auto schedules = official_schedules();
  CHECK(schedules.size() >= 14);
  for (const auto& [experiment, entry] : schedules.items()) {
    const std::string experiment_shown = experiment;  // CAPTURE cannot capture a binding (C++17)
    CAPTURE(experiment_shown);
    const std::string source = entry.at("source").get<std::string>();
    CAPTURE(source);
    const auto official = entry.at("lr").get<std::vector<double>>();
    const auto ours = ardkit_lrs(experiments_dir() / experiment, entry.at("epochs").get<int64_t>(),
                                 entry.at("steps_per_epoch").get<int64_t>());
    const size_t at = first_difference(ours, official);
    CAPTURE(at);
    CHECK(at == official.size());
    // The paper settings train on the whole training set, as the official scripts do.
    const toml::table root = ardkit::read_experiment(experiments_dir() / experiment, {});
    CHECK(root["data"]["validation"].value_or(int64_t{-1}) == 0);
  }
}

TEST_CASE("the schedule comparison catches an epoch counted from the wrong end") {
  // The two mistakes the shipped files had: TRADES' milestones read 0-based (one extra epoch at
  // 10x the lr) and IAD's lr_schedule(epoch + 1) read as Rice's per-batch fraction.
  const auto schedules = official_schedules();
  const std::vector<std::pair<std::string, std::vector<std::string>>> mistakes = {
      {"cifar10/trades.toml", {"schedule.epoch_base=0"}},
      {"cifar100/trades.toml", {"schedule.epoch_base=0"}},
      {"cifar10/pgd_at.toml", {"schedule.epoch_base=0", "schedule.per=\"batch\""}},
  };
  for (const auto& [experiment, overrides] : mistakes) {
    const std::string experiment_shown = experiment;  // CAPTURE cannot capture a binding (C++17)
    CAPTURE(experiment_shown);
    const auto& entry = schedules.at(experiment);
    const auto official = entry.at("lr").get<std::vector<double>>();
    const auto ours = ardkit_lrs(experiments_dir() / experiment, entry.at("epochs").get<int64_t>(),
                                 entry.at("steps_per_epoch").get<int64_t>(), overrides);
    CHECK(first_difference(ours, official) < official.size());
  }
}
