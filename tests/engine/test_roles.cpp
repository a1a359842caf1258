// Model roles and wrapped objectives: an objective that uses two named teachers and a peer it
// trains with the peer's own optimizer, and one made of another objective. Both are checked when
// the experiment is read, and both resume bit-exactly after an interrupt in mid-epoch.
#include <torch/torch.h>

#include <ardkit/host/experiment_setup.hpp>
#include <ardkit/interrupt.hpp>
#include <ardkit/weights.hpp>

#include "experiment_run.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using test::contains;

namespace {

const char* kBase = R"(
[run]
seed = 5
deterministic = true
[data]
plugin = "synthetic"
train_size = 320
validation = 32
test_size = 64
[student]
plugin = "small_cnn"
conv1 = 8
conv2 = 8
hidden = 32
[optimizer]
lr = 0.05
[train]
epochs = 2
batch_size = 32
log_every = 1
[[eval]]
plugin = "fgsm"
eps = 0.1
)";

// Two frozen teachers (fixed_linear needs no checkpoint) and a peer with its own lr.
const char* kRoles = R"(
[objective]
plugin = "two_teachers_and_peer"
[teachers.clean]
plugin = "fixed_linear"
[teachers.robust]
plugin = "fixed_linear"
[companions.peer]
plugin = "small_cnn"
conv1 = 4
conv2 = 4
hidden = 16
[companions.peer.optimizer]
lr = 0.02
)";

const char* kWrapped = R"(
[objective]
plugin = "plus_weight_norm"
weight = 0.001
[objective.wrapped]
plugin = "probe_objective"
updates_per_batch = 2
)";

const char* kInterrupt = "\n[[hook]]\nplugin = \"interrupt_after\"\nstep = 4\n";
// 320 synthetic samples less 32 for validation, in batches of 32, for 2 epochs.
constexpr int64_t kTrainSamples = 288, kSteps = 2 * 288 / 32;

struct RolesRun : test::ExperimentRun {
  explicit RolesRun(const std::string& text, const std::vector<std::string>& overrides = {})
      : ExperimentRun(std::string(kBase) + text, overrides, "roles.toml") {}
  // A model table's weights as the last checkpoint holds them: the student, or a companion.
  std::vector<torch::Tensor> weights(const std::string& companion = "") const {
    ardkit::TrainSetup setup = ardkit::build_components(experiment);
    if (companion.empty()) {
      ardkit::load_weights(*setup.student, run->checkpoint_path("last"));
      return setup.student->parameters();
    }
    torch::serialize::InputArchive archive, entry, model;
    archive.load_from(run->checkpoint_path("last").string());
    archive.read("companion_" + companion, entry);
    entry.read("model", model);
    setup.companions.at(companion)->load(model);
    return setup.companions.at(companion)->parameters();
  }
};

void check_equal(const std::vector<torch::Tensor>& x, const std::vector<torch::Tensor>& y) {
  REQUIRE(x.size() == y.size());
  for (size_t i = 0; i < x.size(); ++i)
    CHECK(torch::equal(x[i], y[i]));
}

bool any_differs(const std::vector<torch::Tensor>& x, const std::vector<torch::Tensor>& y) {
  for (size_t i = 0; i < x.size(); ++i)
    if (!torch::equal(x[i], y[i]))
      return true;
  return false;
}

// Interrupted at step 4 of 9 in epoch 1, then resumed to the end.
void train_interrupted(RolesRun& run) {
  ardkit::install_interrupt_handlers();
  REQUIRE(run.train() == ardkit::TrainOutcome::interrupted);
  ardkit::clear_interrupt();
  REQUIRE(fs::exists(run.run->checkpoint_path("last")));
  REQUIRE(run.train() == ardkit::TrainOutcome::completed);
}

}  // namespace

TEST_CASE("two named teachers and a peer with its own optimizer, resumed bit-exactly") {
  RolesRun whole(kRoles);
  REQUIRE(whole.train() == ardkit::TrainOutcome::completed);
  const auto steps = whole.lines("step");
  REQUIRE(steps.size() == kSteps);
  for (const auto& line : steps) {
    CHECK(line["lr"].get<double>() == doctest::Approx(0.05));       // the student's
    CHECK(line["peer_lr"].get<double>() == doctest::Approx(0.02));  // the peer's own
    CHECK(line["peer_training"].get<double>() == 1.0);  // mode "follow": train for steps
    CHECK(std::isfinite(line["kl"].get<double>()));
  }
  // Each teacher counts its own queries: one forward per step (the probes are not counted).
  const auto budget = whole.results()["budget"];
  CHECK(budget["teacher_queries.clean"].get<int64_t>() == kTrainSamples * 2);
  CHECK(budget["teacher_queries.robust"].get<int64_t>() == kTrainSamples * 2);

  // The peer learns, from its own optimizer: it leaves its initial weights, and another peer lr
  // (the student's unchanged) ends it elsewhere.
  const auto initial = ardkit::build_components(whole.experiment).companions.at("peer");
  CHECK(any_differs(whole.weights("peer"), initial->parameters()));
  RolesRun slower(kRoles, {"companions.peer.optimizer.lr=0.001"});
  REQUIRE(slower.train() == ardkit::TrainOutcome::completed);
  CHECK(slower.lines("step").back()["peer_lr"].get<double>() == doctest::Approx(0.001));
  CHECK(any_differs(whole.weights("peer"), slower.weights("peer")));

  RolesRun split(std::string(kRoles) + kInterrupt);
  train_interrupted(split);
  check_equal(whole.weights(), split.weights());
  check_equal(whole.weights("peer"), split.weights("peer"));
  CHECK(split.results()["budget"] == budget);

  // A peer whose table fixes its mode keeps it during steps.
  RolesRun eval_peer(kRoles, {"companions.peer.mode=\"eval\"", "train.epochs=1"});
  REQUIRE(eval_peer.train() == ardkit::TrainOutcome::completed);
  CHECK(eval_peer.lines("step").front()["peer_training"].get<double>() == 0.0);
}

TEST_CASE("model roles are checked when the experiment is read, before a run folder exists") {
  const std::string roles = kRoles;
  const auto error = [](const std::string& text) {
    return test::error_of([&] { RolesRun r(text); }, ardkit::ErrorKind::config);
  };
  // A role the objective declared and the experiment lacks.
  const std::string no_robust =
      roles.substr(0, roles.find("[teachers.robust]")) + roles.substr(roles.find("[companions"));
  auto m = error(no_robust);
  CHECK(contains(m, "uses a model in the role teachers.robust"));
  CHECK(contains(m, "no [teachers.robust] table"));
  CHECK(contains(m, "roles.toml:"));
  // A table no role names: it would be silently ignored.
  m = error(roles + "[teachers.spare]\nplugin = \"fixed_linear\"\n");
  CHECK(contains(m, "uses no model in the role teachers.spare"));
  CHECK(contains(m, "it uses teachers.clean, teachers.robust, companions.peer"));
  m = error(std::string(kWrapped) + "[companions.peer]\nplugin = \"small_cnn\"\n");
  CHECK(contains(m, "[companions.peer]"));
  CHECK(contains(m, "it uses none"));
  // A named teacher from an experiment is that experiment's student: no plugin beside it; a
  // wrong key in a companion's optimizer is named.
  const std::string clean = "[teachers.clean]\nplugin = \"fixed_linear\"\n";
  std::string from_experiment = roles;
  from_experiment.replace(roles.find(clean), clean.size(), clean + "experiment = \"t.toml\"\n");
  m = error(from_experiment);
  CHECK(contains(m, "[teachers.clean] 'plugin' cannot be combined with experiment = ..."));
  m = error(roles + "lrr = 0.1\n");
  CHECK(contains(m, "lrr"));
  CHECK(contains(m, "companions.peer.optimizer"));
  m = error(roles + "[companions.peer.schedule]\ntype = \"cosine_typo\"\n");
  CHECK(contains(m, "cosine_typo"));
  CHECK(contains(m, "companions.peer.schedule"));
  // Names of roles are identifiers.
  m = error(std::string(kWrapped) + "[teachers]\n\"a b\" = {plugin = \"fixed_linear\"}\n");
  CHECK(contains(m, "letters, digits and '_'"));
}

TEST_CASE("an objective wrapping another adds its terms, carries the inner's needs and state") {
  RolesRun whole(kWrapped);
  REQUIRE(whole.train() == ardkit::TrainOutcome::completed);
  const auto steps = whole.lines("step");
  REQUIRE(steps.size() == kSteps);
  // The wrapper's term on every loss, and the inner objective's custom step (two updates per
  // batch, counted by its own buffer) still runs.
  CHECK(steps.back()["weight_norm"].get<double>() > 0);
  CHECK(steps.back()["wrapper_steps"].get<double>() == kSteps);
  CHECK(steps.back()["updates"].get<double>() == 2 * kSteps - 1);
  // The wrapper's term is in the loss: without it the student ends elsewhere.
  RolesRun plain(kWrapped, {"objective.weight=0.0"});
  REQUIRE(plain.train() == ardkit::TrainOutcome::completed);
  CHECK(any_differs(whole.weights(), plain.weights()));

  // Resumed in mid-epoch: the inner's head and buffers and the wrapper's counter carry over.
  RolesRun split(std::string(kWrapped) + kInterrupt);
  train_interrupted(split);
  check_equal(whole.weights(), split.weights());
  CHECK(split.lines("step").back()["wrapper_steps"].get<double>() == kSteps);
  CHECK(split.lines("step").back()["updates"] == steps.back()["updates"]);

  // The inner objective's attack defaults apply under the wrapper: RSLAD's gaussian start.
  const test::ExperimentRun rslad(
      std::string(kBase) +
          "[objective]\nplugin = \"plus_weight_norm\"\n[objective.wrapped]\nplugin = "
          "\"rslad\"\n[teacher]\nplugin = \"fixed_linear\"\n[attack]\nplugin = \"pgd\"\n",
      {}, "wrapped_rslad.toml");
  CHECK(rslad.experiment.config.attack->params.get_string("random_start") == "gaussian");
  CHECK(rslad.experiment.config.objective->needs(ardkit::Need::teacher));

  // What the inner objective needs, the wrapper needs; and the inner table must be there.
  auto m = test::error_of(
      [&] {
        RolesRun r(
            "[objective]\nplugin = \"plus_weight_norm\"\n[objective.wrapped]\nplugin = "
            "\"pgd_at\"\n");
      },
      ardkit::ErrorKind::config);
  CHECK(contains(m, "trains on adversarial examples"));
  m = test::error_of([&] { RolesRun r("[objective]\nplugin = \"plus_weight_norm\"\n"); },
                     ardkit::ErrorKind::config);
  CHECK(contains(m, "add a [objective.wrapped] table"));
  m = test::error_of([&] { RolesRun r(std::string(kWrapped) + "nonsense = 1\n"); },
                     ardkit::ErrorKind::config);
  CHECK(contains(m, "objective.wrapped"));
  CHECK(contains(m, "nonsense"));
}
