// The training engine on a tiny synthetic run: run folder contents, validation-selected best
// checkpoint, NaN detection, and bit-exact resume after an interrupt.
#include <torch/torch.h>

#include <dlfcn.h>

#include <ATen/autocast_mode.h>
#include <c10/core/CPUAllocator.h>

#include <ardkit/host/cpu_allocator.hpp>
#include <ardkit/host/experiment_setup.hpp>
#include <ardkit/host/lr_schedule.hpp>
#include <ardkit/host/threading.hpp>
#include <ardkit/interrupt.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "experiment_run.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using test::contains;

namespace {

const char* kTiny = R"(
[run]
seed = 3
deterministic = true
[data]
plugin = "synthetic"
train_size = 640
validation = 64
test_size = 128
[student]
plugin = "small_cnn"
conv1 = 16
conv2 = 16
hidden = 64
[objective]
plugin = "pgd_at"
[attack]
plugin = "pgd"
eps = 0.1
steps = 2
[optimizer]
lr = 0.05
[schedule]
type = "multistep"
milestones = [2]
[train]
epochs = 3
batch_size = 32
log_every = 2
[[eval]]
plugin = "pgd"
name = "pgd5"
eps = 0.1
steps = 5
)";

struct TinyRun : test::ExperimentRun {
  explicit TinyRun(const std::vector<std::string>& overrides = {}, const std::string& text = kTiny)
      : ExperimentRun(text, overrides, "tiny.toml") {}
  std::vector<torch::Tensor> final_weights() const {
    auto data = test::make<ardkit::DataSource>(ardkit::PluginKind::data, "synthetic");
    ardkit::BuildContext context;
    context.data = data->spec();
    auto model = test::builtin().create<ardkit::Model>(ardkit::PluginKind::model, "small_cnn",
                                                       experiment.config.student->params, context);
    ardkit::load_weights(*model, run->checkpoint_path("last"));
    return model->parameters();
  }
};

}  // namespace

TEST_CASE("weights_digest is equal for equal weights and tells one changed value apart") {
  const auto small_cnn = [] {
    torch::manual_seed(0);
    auto data = test::make<ardkit::DataSource>(ardkit::PluginKind::data, "synthetic");
    ardkit::BuildContext context;
    context.data = data->spec();
    return test::make<ardkit::Model>(ardkit::PluginKind::model, "small_cnn", {}, context);
  };
  auto a = small_cnn(), b = small_cnn();
  const uint64_t digest = ardkit::weights_digest(*a);
  CHECK(ardkit::weights_digest(*b) == digest);
  {
    torch::NoGradGuard no_grad;
    auto p = b->parameters().back();
    p.view(-1)[0] += 1e-6;  // one float, smallest visible change
  }
  CHECK(ardkit::weights_digest(*b) != digest);
  CHECK(ardkit::weights_digest(*a) == digest);
}

TEST_CASE("atomic writes replace a file whole and fail in one line, leaving nothing behind") {
  test::TempDir dir;
  const auto file = dir / "results.json";
  ardkit::write_file_atomic(file, "first");
  ardkit::write_file_atomic(file, "second");
  std::ifstream in(file);
  CHECK(std::string((std::istreambuf_iterator<char>(in)), {}) == "second");
  CHECK_FALSE(std::filesystem::exists(dir / "results.json.tmp"));
  const auto missing = dir / "absent" / "results.json";
  const std::string message =
      test::error_of([&] { ardkit::write_file_atomic(missing, "x"); }, ardkit::ErrorKind::runtime);
  CHECK(contains(message, "cannot write " + missing.string() + ": No such file or directory"));
  CHECK(contains(message, "the previous file, if any, is unchanged"));
  CHECK(message.find('\n') == std::string::npos);
  // A temporary file that cannot become the target (a folder is in the way) is removed.
  std::filesystem::create_directories(dir / "taken" / "inside");
  test::error_of([&] { ardkit::write_file_atomic(dir / "taken", "x"); },
                 ardkit::ErrorKind::runtime);
  CHECK_FALSE(std::filesystem::exists(dir / "taken.tmp"));
}

TEST_CASE("a tiny adversarial training run fills its folder") {
  TinyRun r;
  REQUIRE(r.train() == ardkit::TrainOutcome::completed);
  CHECK(fs::exists(r.run->checkpoint_path("last")));
  CHECK(fs::exists(r.run->checkpoint_path("best")));
  std::ifstream results_file(r.run->results_path());
  const auto results = nlohmann::json::parse(results_file);
  CHECK(results["last"]["points"] == 128);
  CHECK(results["last"]["clean_acc"].get<double>() > 30.0);  // 10 classes: chance is 10%
  CHECK(results["last"]["attacks"]["pgd5"]["robust_acc"].get<double>() <=
        results["last"]["clean_acc"].get<double>());
  CHECK(results.contains("best"));
  CHECK(results["train_eps"].get<double>() == doctest::Approx(0.1));
  // The final evaluation's progress files go once results.json has the numbers.
  CHECK_FALSE(fs::exists(r.run->eval_state_path("last")));
  CHECK_FALSE(fs::exists(r.run->eval_state_path("best")));

  std::ifstream metrics(r.run->metrics_path());
  int steps = 0, epochs = 0;
  double last_lr = 0;
  for (std::string line; std::getline(metrics, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j["type"] == "step") {
      ++steps;
      CHECK(j.contains("adv_ce"));
      CHECK(j["images_per_s"].get<double>() > 0);
      CHECK(j.contains("knob.attack.eps"));
    } else if (j["type"] == "epoch") {
      ++epochs;
      CHECK(j.contains("val_robust_acc"));
      last_lr = j["lr"];
    }
  }
  CHECK(epochs == 3);
  CHECK(steps >= 3 * 9);                     // 18 batches per epoch, a line every 2 steps
  CHECK(last_lr == doctest::Approx(0.005));  // multistep milestone at epoch 2, gamma 0.1
}

TEST_CASE("every training step runs at the schedule's learning rate") {
  // The schedule tests compare LrSchedule with the official codes; this checks the trainer
  // applies it at every step, for a per-epoch schedule counted from 1 and a per-batch one.
  for (const std::vector<std::string>& schedule :
       {std::vector<std::string>{"schedule.epoch_base=1"},
        std::vector<std::string>{"schedule.type=\"piecewise\"", "schedule.per=\"batch\"",
                                 "schedule.boundaries=[0.5, 2.25]",
                                 "schedule.values=[0.05, 0.02, 0.01]"}}) {
    CAPTURE(schedule.back());
    auto overrides = schedule;
    overrides.insert(overrides.end(), {"train.log_every=1", "train.validate_every=0"});
    TinyRun r(overrides);
    r.train();
    const ardkit::LrSchedule lr(r.experiment.config.optimizer, r.experiment.config.schedule, 3);
    std::vector<double> expected, logged;
    for (int64_t e = 0; e < 3; ++e)
      for (int64_t i = 0; i < 18; ++i)  // 576 training images, batches of 32
        expected.push_back(lr.at(e, i, 18));
    std::ifstream metrics(r.run->metrics_path());
    for (std::string line; std::getline(metrics, line);) {
      const auto j = nlohmann::json::parse(line);
      if (j["type"] == "step")
        logged.push_back(j["lr"].get<double>());
    }
    REQUIRE(logged.size() == expected.size());
    for (size_t i = 0; i < logged.size(); ++i) {
      CAPTURE(i);
      CHECK(logged[i] == doctest::Approx(expected[i]).epsilon(1e-12));
    }
    CHECK(expected.front() != doctest::Approx(expected.back()));  // the schedule did decay
  }
}

namespace {

// probe_objective (tests/plugins/test_plugins.cpp) in the tiny run.
const std::vector<std::string> kProbe = {"objective.plugin=\"probe_objective\"",
                                         "train.log_every=1", "train.validate_every=0"};

std::vector<nlohmann::json> step_lines(const TinyRun& r) {
  return r.lines("step");
}

// A tensor of the objective's state in a checkpoint (its trainable() module's names).
torch::Tensor objective_state(const fs::path& checkpoint, const std::string& key,
                              bool buffer = false) {
  torch::serialize::InputArchive archive, objective;
  archive.load_from(checkpoint.string());
  archive.read("objective", objective);
  torch::Tensor t;
  const auto dot = key.find('.');
  if (dot == std::string::npos) {
    objective.read(key, t, /*is_buffer=*/buffer || key == "seen" || key == "updates");
  } else {  // a submodule's parameter: Module::save nests an archive per submodule
    torch::serialize::InputArchive sub;
    objective.read(key.substr(0, dot), sub);
    sub.read(key.substr(dot + 1), t);
  }
  return t;
}

// Two runs of one experiment end with bit-identical student weights.
void check_same_student(const TinyRun& a, const TinyRun& b) {
  const auto x = a.final_weights(), y = b.final_weights();
  REQUIRE(x.size() == y.size());
  for (size_t i = 0; i < x.size(); ++i)
    CHECK(torch::equal(x[i], y[i]));
}

}  // namespace

TEST_CASE("an objective is set up with the run's sizes and trains its own module") {
  auto with = [](std::vector<std::string> extra) {
    extra.insert(extra.begin(), kProbe.begin(), kProbe.end());
    return extra;
  };
  TinyRun r(with({"objective.updates_per_batch=2"}));
  REQUIRE(r.train() == ardkit::TrainOutcome::completed);
  const auto lines = step_lines(r);
  REQUIRE(lines.size() == 3 * 18);
  // Sizes from the data and a probe forward: 640 - 64 validation images, small_cnn's 64
  // features and 10 classes, no teacher. Known before the optimizer existed (the head is in it).
  CHECK(lines[0]["setup_train_size"] == 576);
  CHECK(lines[0]["setup_student_features"] == 64);
  CHECK(lines[0]["setup_student_classes"] == 10);
  CHECK(lines[0]["setup_teacher_classes"] == 0);
  CHECK(lines[0]["head_training"] == 1);  // the head follows the student into train mode
  CHECK(lines.front()["head_weight_sum"] != lines.back()["head_weight_sum"]);
  // The custom step ran two optimizer updates per batch; the memory saw each sample once an
  // epoch; both are buffers and sit in the checkpoint.
  const auto last = r.run->checkpoint_path("last");
  CHECK(objective_state(last, "updates").item<double>() == 2 * 3 * 18);
  CHECK(torch::all(objective_state(last, "seen") == 3).item<bool>());

  // The head's own parameter group: at a tiny lr factor it stays where it started.
  TinyRun frozen(with({"optimizer.extra_lr_factor=1e-12"}));
  REQUIRE(frozen.train() == ardkit::TrainOutcome::completed);
  const auto frozen_lines = step_lines(frozen);
  CHECK(frozen_lines.front()["head_weight_sum"].get<double>() ==
        doctest::Approx(frozen_lines.back()["head_weight_sum"].get<double>()).epsilon(1e-9));
  CHECK(frozen_lines.front()["loss"] != frozen_lines.back()["loss"]);  // the student still learns
}

TEST_CASE("soft-label objectives refuse a teacher with another label space") {
  // fixed_linear (tests/plugins) stands in for a teacher trained on another task.
  const auto with_teacher = [](int64_t classes) {
    return std::string(kTiny) +
           "\n[teacher]\nplugin = \"fixed_linear\"\nclasses = " + std::to_string(classes) + "\n";
  };
  const std::vector<std::string> kd = {"objective.plugin=\"kd\"", "train.epochs=1"};
  TinyRun other(kd, with_teacher(3));
  CHECK_THROWS_WITH_AS(other.train(),
                       doctest::Contains("teacher has 3 classes of 'synthetic' and the student 10"),
                       ardkit::Error);
  CHECK_FALSE(fs::exists(other.run->results_path()));
  // The same teacher with the student's label space distills.
  TinyRun same(kd, with_teacher(10));
  CHECK(same.train() == ardkit::TrainOutcome::completed);
  // An objective that does not read soft labels trains next to the other-task teacher.
  TinyRun feature({"objective.plugin=\"probe_objective\"", "train.epochs=1"}, with_teacher(3));
  CHECK(feature.train() == ardkit::TrainOutcome::completed);
  // gacd passes features only, but its reweighting reads the teacher's probabilities of y.
  const std::vector<std::string> gacd = {"objective.plugin=\"gacd\"", "objective.negatives=64",
                                         "train.epochs=1"};
  TinyRun reweighted(gacd, with_teacher(3));
  CHECK_THROWS_WITH_AS(reweighted.train(), doctest::Contains("reweight = \"prob\""), ardkit::Error);
  auto plain = gacd;
  plain.push_back("objective.reweight=\"none\"");
  TinyRun cross_task(plain, with_teacher(3));
  CHECK(cross_task.train() == ardkit::TrainOutcome::completed);
}

TEST_CASE("gacd distills a tapped layer of the student from the teacher's features") {
  TinyRun r({"objective.plugin=\"gacd\"", "objective.negatives=64",
             "objective.student_layer=\"block2\"", "train.epochs=1", "train.log_every=1"},
            std::string(kTiny) + "\n[teacher]\nplugin = \"fixed_linear\"\n");
  REQUIRE(r.train() == ardkit::TrainOutcome::completed);
  const auto lines = step_lines(r);
  REQUIRE_FALSE(lines.empty());
  CHECK(lines.front().contains("contrastive"));
  // The student's head sizes itself from the tap: block2 of small_cnn has conv2 = 16 channels.
  torch::serialize::InputArchive archive, objective, head;
  archive.load_from(r.run->checkpoint_path("last").string());
  archive.read("objective", objective);
  objective.read("embed_s", head);
  torch::Tensor weight;
  head.read("weight", weight);
  CHECK(weight.size(1) == 16);
  TinyRun wrong(
      {"objective.plugin=\"gacd\"", "objective.student_layer=\"layer9\"", "train.epochs=1"},
      std::string(kTiny) + "\n[teacher]\nplugin = \"fixed_linear\"\n");
  CHECK_THROWS_WITH_AS(wrong.train(),
                       doctest::Contains("student_layer: this model has no tap 'layer9'"),
                       ardkit::Error);
}

TEST_CASE("an objective's module and buffers resume bit-exactly") {
  std::vector<std::string> probe = kProbe;
  probe.push_back("objective.updates_per_batch=2");
  TinyRun whole(probe);
  REQUIRE(whole.train() == ardkit::TrainOutcome::completed);
  const std::string interrupted =
      std::string(kTiny) + "\n[[hook]]\nplugin = \"interrupt_after\"\nstep = 23\n";
  TinyRun split(probe, interrupted);
  ardkit::install_interrupt_handlers();
  REQUIRE(split.train() == ardkit::TrainOutcome::interrupted);
  ardkit::clear_interrupt();
  CHECK(objective_state(split.run->checkpoint_path("last"), "updates").item<double>() == 2 * 23);
  REQUIRE(split.train() == ardkit::TrainOutcome::completed);
  for (const std::string key : {"linear.weight", "linear.bias", "seen", "updates"}) {
    CAPTURE(key);
    CHECK(torch::equal(objective_state(whole.run->checkpoint_path("last"), key),
                       objective_state(split.run->checkpoint_path("last"), key)));
  }
  check_same_student(whole, split);
}

TEST_CASE("a gacd run draws CRD's other-class negatives from the engine's training labels") {
  TinyRun r({"objective.plugin=\"gacd\"", "objective.negatives=64",
             "objective.negatives_from=\"other_classes\"", "train.epochs=1"},
            std::string(kTiny) + "\n[teacher]\nplugin = \"fixed_linear\"\n");
  CHECK(r.train() == ardkit::TrainOutcome::completed);
}

TEST_CASE("a gacd run resumes bit-exactly: heads, memory banks and their Z") {
  const std::vector<std::string> gacd = {"objective.plugin=\"gacd\"", "objective.negatives=64"};
  const std::string teacher = "\n[teacher]\nplugin = \"fixed_linear\"\n";
  TinyRun whole(gacd, std::string(kTiny) + teacher);
  REQUIRE(whole.train() == ardkit::TrainOutcome::completed);
  TinyRun split(
      gacd, std::string(kTiny) + teacher + "\n[[hook]]\nplugin = \"interrupt_after\"\nstep = 23\n");
  ardkit::install_interrupt_handlers();
  REQUIRE(split.train() == ardkit::TrainOutcome::interrupted);
  ardkit::clear_interrupt();
  REQUIRE(split.train() == ardkit::TrainOutcome::completed);
  const auto a = whole.run->checkpoint_path("last"), b = split.run->checkpoint_path("last");
  for (const std::string key : {"embed_s.weight", "embed_t.bias"}) {
    CAPTURE(key);
    CHECK(torch::equal(objective_state(a, key), objective_state(b, key)));
  }
  for (const std::string key : {"memory_s", "memory_t", "z_s", "z_t"}) {
    CAPTURE(key);
    const auto value = objective_state(a, key, /*buffer=*/true);
    CHECK(torch::equal(value, objective_state(b, key, true)));
    if (key[0] == 'z')
      CHECK(value.item<double>() > 0);  // fixed at the first batch, carried across the resume
  }
  check_same_student(whole, split);
}

TEST_CASE("an interrupted run resumes to the same weights as an uninterrupted one") {
  // With augmentation: crops and flips are prefetched on another thread and must not matter.
  const std::vector<std::string> augmented = {"data.crop_padding=1", "data.horizontal_flip=true"};
  TinyRun whole(augmented);
  REQUIRE(whole.train() == ardkit::TrainOutcome::completed);

  // Interrupt mid-epoch (step 5 of 18 batches per epoch), as Ctrl-C would.
  const std::string interrupted =
      std::string(kTiny) + "\n[[hook]]\nplugin = \"interrupt_after\"\nstep = 5\n";
  TinyRun split(augmented, interrupted);
  ardkit::install_interrupt_handlers();
  REQUIRE(split.train() == ardkit::TrainOutcome::interrupted);
  ardkit::clear_interrupt();
  CHECK(fs::exists(split.run->checkpoint_path("last")));
  CHECK_FALSE(fs::exists(split.run->results_path()));
  REQUIRE(split.train() == ardkit::TrainOutcome::completed);

  check_same_student(whole, split);
}

TEST_CASE("a loss that becomes NaN stops the run naming the step and the term") {
  TinyRun r({"optimizer.lr=1e30", "train.epochs=2"});
  const auto m = test::error_of([&] { r.train(); }, ardkit::ErrorKind::runtime);
  CHECK(contains(m, "loss term"));
  CHECK(contains(m, "epoch 1 step"));
  CHECK_FALSE(fs::exists(r.run->results_path()));
}

TEST_CASE("a loss that blows up in epoch 2 keeps epoch 1's checkpoint untouched") {
  // The learning rate jumps to 1e30 at epoch 2; the kept `last` must be exactly the weights an
  // uninterrupted one-epoch run ends with, not a checkpoint written after the bad step.
  TinyRun one({"train.epochs=1"});
  REQUIRE(one.train() == ardkit::TrainOutcome::completed);
  TinyRun r({"train.epochs=2", "schedule.milestones=[1]", "schedule.gamma=1e31"});
  const auto m = test::error_of([&] { r.train(); }, ardkit::ErrorKind::runtime);
  CHECK(contains(m, "epoch 2 step"));
  CHECK(contains(m, "last good checkpoint is kept"));
  CHECK_FALSE(fs::exists(r.run->results_path()));
  REQUIRE(fs::exists(r.run->checkpoint_path("last")));
  const auto kept = r.final_weights();
  const auto expected = one.final_weights();
  REQUIRE(kept.size() == expected.size());
  for (size_t i = 0; i < kept.size(); ++i)
    CHECK(torch::equal(kept[i], expected[i]));
}

TEST_CASE("what an objective declares it needs is checked when the experiment is read") {
  std::string text = kTiny;
  const auto at = text.find("[attack]");
  text = text.substr(0, at) + text.substr(text.find("[optimizer]"));
  // Before anything is built, at the objective's plugin key (registration: .needs(...)).
  const std::string no_attack =
      test::error_of([&] { TinyRun r({}, text); }, ardkit::ErrorKind::config);
  CHECK(contains(no_attack, "tiny.toml:16:10: [objective] 'pgd_at' trains on adversarial"));
  CHECK(contains(no_attack, "has no [attack] table"));
  const std::string no_teacher = test::error_of(
      [&] { TinyRun r({"objective.plugin=\"kd\""}, text); }, ardkit::ErrorKind::config);
  CHECK(contains(no_teacher, "[objective] 'kd' distills from a teacher"));
  const auto& registry = test::builtin();
  CHECK(registry.find(ardkit::PluginKind::objective, "rslad")
            .info.has(ardkit::Need::same_label_space));
  CHECK_FALSE(registry.find(ardkit::PluginKind::objective, "gacd")
                  .info.has(ardkit::Need::same_label_space));
  CHECK_FALSE(
      registry.find(ardkit::PluginKind::objective, "trades").info.has(ardkit::Need::teacher));
}

TEST_CASE("a linear_ramp hook moves attack.eps step by step and the run logs it") {
  const std::string ramped =
      std::string(kTiny) +
      "\n[[hook]]\nplugin = \"linear_ramp\"\nknob = \"attack.eps\"\nto = 0.1\nepochs = 1\n";
  TinyRun r({"train.epochs=2"}, ramped);
  REQUIRE(r.train() == ardkit::TrainOutcome::completed);
  std::ifstream metrics(r.run->metrics_path());
  const double steps_per_epoch = 18;  // 576 training samples in batches of 32
  int checked = 0;
  for (std::string line; std::getline(metrics, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j["type"] != "step")
      continue;
    // A step uses the value set after the previous one: from + (to - from) * (step - 1) / ramp.
    const double step = j["step"].get<double>();
    const double expected = 0.1 * std::min(1.0, (step - 1) / steps_per_epoch);
    CHECK(j["knob.attack.eps"].get<double>() == doctest::Approx(expected));
    ++checked;
  }
  CHECK(checked >= 18);
}

TEST_CASE("hooks run at every point of the loop, in order: epoch, step, validation") {
  TinyRun r({"train.epochs=2"}, std::string(kTiny) + "\n[[hook]]\nplugin = \"call_order\"\n");
  REQUIRE(r.train() == ardkit::TrainOutcome::completed);
  const auto epochs = r.lines("epoch");
  REQUIRE(epochs.size() == 2);
  const int64_t steps = 18;  // 576 training samples in batches of 32
  for (int64_t e = 0; e < 2; ++e) {
    CAPTURE(e);
    const auto& line = epochs[e];
    CHECK(line["hook.epoch_begins"] == e + 1);
    CHECK(line["hook.epoch_begin_step"] == steps * e);  // before the epoch's first step
    CHECK(line["hook.step_begins"] == steps * (e + 1));
    CHECK(line["hook.step_ends"] == steps * (e + 1));
    CHECK(line["hook.last_step_begin"] == steps * (e + 1) - 1);  // before its step counted
    // Validation ends before the epoch does, and its hook sees the accuracy the line logs.
    CHECK(line["hook.validation_ends"] == e + 1);
    CHECK(line["hook.epoch_ends_before_validation"] == e);
    CHECK(line["hook.seen_val_clean_acc"] == line["val_clean_acc"]);
  }
}

TEST_CASE("a hook naming an undeclared knob or leaving its range fails while building") {
  // Building is what `ardkit validate` and `ardkit run` do before a run folder exists.
  const std::string hook = "\n[[hook]]\nplugin = \"linear_ramp\"\n";
  auto m = test::error_of(
      [&] {
        TinyRun r({}, kTiny + hook + "knob = \"temprature\"\nto = 4\n");
        ardkit::build_components(r.experiment);
      },
      ardkit::ErrorKind::config);
  CHECK(contains(m, "[hook[0]] (plugin 'linear_ramp'): the knob 'temprature' is not declared"));
  CHECK(contains(m, "declared knobs: attack.eps"));
  m = test::error_of(
      [&] {
        TinyRun r({}, kTiny + hook + "to = -0.05\n");
        ardkit::build_components(r.experiment);
      },
      ardkit::ErrorKind::config);
  CHECK(contains(
      m, "linear_ramp would move the knob 'attack.eps' to -0.05, outside its range [0, 1]"));
}

TEST_CASE("knobs refuse values outside their range, and nan") {
  ardkit::Knobs knobs;
  knobs.declare("temperature", 2.0, ardkit::KnobRange::above(0));
  knobs.declare("free", 0.0);
  knobs.declare("temperature", 9.0);  // a second declaration keeps the first value and range
  CHECK(knobs.get("temperature") == 2.0);
  knobs.set("temperature", 0.5);
  CHECK(knobs.get("temperature") == 0.5);
  CHECK(contains(test::error_of([&] { knobs.set("temperature", 0.0); }, ardkit::ErrorKind::config),
                 "knob 'temperature' set to 0, outside its range > 0"));
  CHECK(
      contains(test::error_of([&] { knobs.set("free", std::nan("")); }, ardkit::ErrorKind::config),
               "outside its range finite"));
  knobs.set("free", -1e9);
  CHECK(contains(test::error_of([&] { knobs.set("tempreature", 1.0); }, ardkit::ErrorKind::config),
                 "did you mean 'temperature'?"));
}

TEST_CASE("the same weights get the same evaluation: with one epoch, best and last agree exactly") {
  // One step from a random start in a wide ball: the outcome is decided by the random start.
  TinyRun r({"train.epochs=1", "objective.plugin=natural", "train.batch_size=8", "eval.0.steps=1",
             "eval.0.eps=0.3", "eval.0.step_size=0.01"});
  REQUIRE(r.train() == ardkit::TrainOutcome::completed);
  std::ifstream results_file(r.run->results_path());
  const auto results = nlohmann::json::parse(results_file);
  REQUIRE(results.contains("best"));
  CHECK(results["best"]["clean_acc"] == results["last"]["clean_acc"]);
  CHECK(results["best"]["attacks"]["pgd5"]["robust_acc"] ==
        results["last"]["attacks"]["pgd5"]["robust_acc"]);
}

TEST_CASE("every distillation objective trains a student from a teacher checkpoint") {
  TinyRun teacher({"train.epochs=1", "data.train_size=128"});
  REQUIRE(teacher.train() == ardkit::TrainOutcome::completed);
  const std::string with_teacher =
      std::string(kTiny) + "\n[teacher]\nplugin = \"small_cnn\"\nconv1 = 16\nconv2 = 16\n" +
      "hidden = 64\ncheckpoint = \"" + teacher.run->checkpoint_path("last").string() + "\"\n";
  for (const auto& [objective, term] :
       std::vector<std::pair<std::string, std::string>>{{"kd", "kl"},
                                                        {"ard", "kl_adv"},
                                                        {"rslad", "kl_adv"},
                                                        {"iad", "kl_self"},
                                                        {"adaad", "kl_adv"},
                                                        {"trades", "kl_robust"}}) {
    const std::string objective_shown = objective;  // CAPTURE cannot capture a binding (C++17)
    CAPTURE(objective_shown);
    std::vector<std::string> overrides = {"objective.plugin=" + objective, "train.epochs=1",
                                          "data.train_size=128"};
    if (objective == "iad")
      overrides.push_back("objective.begin=0");
    TinyRun r(overrides, with_teacher);
    REQUIRE(r.train() == ardkit::TrainOutcome::completed);
    std::ifstream metrics(r.run->metrics_path());
    bool logged = false;
    for (std::string line; std::getline(metrics, line);) {
      const auto j = nlohmann::json::parse(line);
      if (j["type"] == "step")
        logged = logged || (j.contains(term) && std::isfinite(j[term].get<double>()));
    }
    CHECK(logged);
    std::ifstream results_file(r.run->results_path());
    CHECK(nlohmann::json::parse(results_file)["objective"] == objective);
  }
}

#if defined(__SANITIZE_ADDRESS__)
#define ARDKIT_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ARDKIT_TEST_ASAN 1
#endif
#endif

TEST_CASE("the caching CPU allocator hands freed blocks out again, within its limit") {
  ardkit::install_caching_cpu_allocator(int64_t{64} << 20);
#ifdef ARDKIT_TEST_ASAN
  CHECK_FALSE(ardkit::caching_cpu_allocator_installed());  // ASan must see every free
  return;
#endif
  REQUIRE(ardkit::caching_cpu_allocator_installed());
  ardkit::release_cached_cpu_memory();
  const auto before = ardkit::caching_cpu_allocator_stats();
  CHECK(before.cached_bytes == 0);

  void* first = nullptr;
  {
    auto a = torch::full({1 << 20}, 3.0f);  // 4 MiB
    first = a.data_ptr();
    CHECK(ardkit::caching_cpu_allocator_stats().live_bytes >= before.live_bytes + (4 << 20));
  }
  CHECK(ardkit::caching_cpu_allocator_stats().cached_bytes == 4 << 20);
  {
    // A little smaller: the same size class, so the same block, with no stale values visible
    // through LibTorch's own initialization.
    auto b = torch::zeros({(1 << 20) - 100});
    CHECK(b.data_ptr() == first);
    CHECK(b.sum().item<float>() == 0.0f);
    CHECK(ardkit::caching_cpu_allocator_stats().hits == before.hits + 1);
    CHECK(ardkit::caching_cpu_allocator_stats().cached_bytes == 0);
  }
  {
    auto small = torch::ones({256});  // 1 KiB: left to malloc
    CHECK(small.sum().item<float>() == 256.0f);
    auto empty = torch::empty({0, 3});  // no data, as with LibTorch's allocator
    CHECK(empty.data_ptr() == nullptr);
    auto* allocator = c10::GetCPUAllocator();
    allocator->raw_deallocate(allocator->raw_allocate(0));  // the raw path takes nothing back too
    void* raw = allocator->raw_allocate((size_t{4} << 20) - 1000);
    CHECK(raw == first);  // ... and serves and caches large blocks like any other
    allocator->raw_deallocate(raw);
  }
  CHECK(ardkit::caching_cpu_allocator_stats().cached_bytes == 4 << 20);

  // At most the limit is kept: three 4 MiB blocks freed under an 8 MiB limit leave two.
  ardkit::install_caching_cpu_allocator(int64_t{8} << 20);
  {
    std::vector<torch::Tensor> blocks;
    for (int i = 0; i < 3; ++i)
      blocks.push_back(torch::empty({1 << 20}));
  }
  CHECK(ardkit::caching_cpu_allocator_stats().cached_bytes == 8 << 20);
  ardkit::release_cached_cpu_memory();
  CHECK(ardkit::caching_cpu_allocator_stats().cached_bytes == 0);
  ardkit::install_caching_cpu_allocator();
}

TEST_CASE("[run] precision = bfloat16 trains its steps under autocast; float16 needs a GPU") {
  const std::vector<std::string> quick = {"train.epochs=1", "train.validate_every=0",
                                          "train.log_every=1"};
  TinyRun full(quick);
  auto bf16_overrides = quick;
  bf16_overrides.push_back("run.precision=\"bfloat16\"");
  TinyRun bf16(bf16_overrides);
  REQUIRE(full.train() == ardkit::TrainOutcome::completed);
  REQUIRE(bf16.train() == ardkit::TrainOutcome::completed);
  CHECK_FALSE(at::autocast::is_cpu_enabled());  // the guard restored the thread's state

  // The same weights at the start, other rounding in every step: the weights part.
  const auto a = full.final_weights(), b = bf16.final_weights();
  REQUIRE(a.size() == b.size());
  bool differ = false;
  for (size_t i = 0; i < a.size(); ++i) {
    CHECK(b[i].dtype() ==
          caffe2::TypeMeta::Make<float>());  // autocast leaves the weights in float32
    differ = differ || !torch::equal(a[i], b[i]);
  }
  CHECK(differ);
  // ... and it still learns: the loss of the last steps is below that of the first.
  const auto steps = bf16.lines("step");
  REQUIRE(steps.size() == 18);
  CHECK(steps.back()["loss"].get<double>() < steps.front()["loss"].get<double>());

  // The key at its default leaves the run's identity as it was before the key existed; another
  // precision is another run.
  auto explicit_default = quick;
  explicit_default.push_back("run.precision=\"float32\"");
  CHECK(TinyRun(explicit_default).experiment.config.run_id() == full.experiment.config.run_id());
  CHECK(bf16.experiment.config.run_id() != full.experiment.config.run_id());

  auto half = quick;
  half.push_back("run.precision=\"float16\"");
  TinyRun on_cpu(half);
  const auto message = test::error_of([&] { on_cpu.train(); }, ardkit::ErrorKind::config);
  CHECK(message.find("precision = \"float16\" needs device = \"cuda\"") != std::string::npos);
  CHECK(message.find("tiny.toml") != std::string::npos);  // where the key came from
}

TEST_CASE("configure_cpu_threads gives the cores to one pool: OpenBLAS runs single-threaded") {
  const int before = torch::get_num_threads();
  ardkit::configure_cpu_threads(2);
  CHECK(torch::get_num_threads() == 2);
  // LibTorch's BLAS, found among the loaded libraries as configure_cpu_threads finds it; Debian's
  // LibTorch links OpenBLAS, so the function must be there.
  const auto blas_threads =
      reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  REQUIRE(bool(blas_threads));
  CHECK(blas_threads() == 1);
  // Denormals flush to zero on this thread: a product below float's normal range is 0.
  const auto tiny = torch::full({1}, 1e-30f) * torch::full({1}, 1e-10f);
  CHECK(tiny.item<float>() == 0.0f);
  ardkit::configure_cpu_threads(before);
}

TEST_CASE("[optimizer] grad_clip bounds every step's update by lr x the clip") {
  // Plain SGD (no momentum, no weight decay): a step moves the weights by lr x the gradient, so
  // a clipped gradient norm c bounds the whole run's movement by steps x lr x c.
  const std::vector<std::string> sgd = {"optimizer.momentum=0.0", "optimizer.weight_decay=0.0",
                                        "train.epochs=1", "schedule.milestones=[5]"};
  const auto moved = [&](std::vector<std::string> overrides) {
    TinyRun r(overrides);
    ardkit::TrainSetup setup = ardkit::build_components(r.experiment);
    std::vector<torch::Tensor> before;
    for (const auto& p : setup.student->parameters())
      before.push_back(p.detach().clone());
    REQUIRE(ardkit::train(setup, *r.run) == ardkit::TrainOutcome::completed);
    double squared = 0;
    const auto after = setup.student->parameters();
    for (size_t i = 0; i < before.size(); ++i)
      squared += (after[i].detach() - before[i]).pow(2).sum().item<double>();
    return std::sqrt(squared);
  };
  const int64_t steps = (640 - 64 + 31) / 32;
  const double clip = 1e-3, lr = 0.05;
  auto clipped = sgd;
  clipped.push_back("optimizer.grad_clip=" + std::to_string(clip));
  const double with_clip = moved(clipped), without = moved(sgd);
  CHECK(with_clip <= steps * lr * clip * (1 + 1e-4));
  CHECK(with_clip > 0.5 * steps * lr * clip);  // clipped, not stopped: the gradients are larger
  CHECK(without > 10 * steps * lr * clip);
}

TEST_CASE("Model::tap_shapes probes sizes and leaves taps, values and mode as they were") {
  auto data = test::make<ardkit::DataSource>(ardkit::PluginKind::data, "synthetic",
                                             {{"height", int64_t{16}}, {"width", int64_t{16}}});
  ardkit::BuildContext context;
  context.data = data->spec();
  auto model = test::make<ardkit::Model>(ardkit::PluginKind::model, "small_cnn", {}, context);
  model->set_taps({"features"});
  model->train();
  model->forward(torch::rand({3, 1, 16, 16}));
  const auto features = model->tapped("features");
  const auto shapes = model->tap_shapes({"block1", "block2"}, torch::zeros({2, 1, 16, 16}));
  CHECK(shapes.at("block1") == std::vector<int64_t>{2, 32, 8, 8});
  CHECK(shapes.at("block2") == std::vector<int64_t>{2, 64, 4, 4});
  CHECK(model->is_training());
  CHECK(model->tapped().size() == 1);
  CHECK(model->tapped("features").data_ptr() == features.data_ptr());
  model->forward(torch::rand({3, 1, 16, 16}));
  CHECK(model->tapped().count("block1") == 0);  // still only what was asked for
}
