// Differential tests of the objectives against PyTorch: make_reference.py (run first by CTest)
// writes one training step of each method as its official code writes it; here the same tiny
// BatchNorm network, batch and seed go through the ardkit plugin, the [attack] built from the
// objective's own attack defaults, and one SGD step. Adversarial examples, loss terms and the
// post-step weights and BatchNorm statistics must agree within float tolerance.
#include <doctest/doctest.h>

#include <ardkit/ardkit.hpp>

#include "../unit/test_util.hpp"

namespace fs = std::filesystem;
using ardkit::PluginKind;

namespace {

fs::path reference() {
  return test::reference_dir("ARDKIT_OBJECTIVE_REFERENCE_DIR");
}

std::map<std::string, torch::Tensor> load(const std::string& file) {
  return test::load_tensors(reference() / file);
}

// make_reference.py's TinyNet, parameter for parameter.
class TinyNet : public ardkit::Model {
 public:
  TinyNet()
      : conv_(register_module("conv",
                              torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 4, 3).padding(1)))),
        bn_(register_module("bn", torch::nn::BatchNorm2d(4))),
        fc_(register_module("fc", torch::nn::Linear(64, 10))) {}
  ardkit::ModelOutput forward(const torch::Tensor& x) override {
    const auto h = torch::avg_pool2d(torch::relu(bn_(conv_(x))), 2).flatten(1);
    return {fc_(h), h};
  }
  int64_t feature_dim() const override {
    return 64;
  }

 private:
  torch::nn::Conv2d conv_;
  torch::nn::BatchNorm2d bn_;
  torch::nn::Linear fc_;
};

// Keeps what the wrapped attack returned, to compare the adversarial examples.
class Recording : public test::WrappedAttack {
 public:
  using WrappedAttack::WrappedAttack;
  torch::Tensor perturb(const ardkit::AttackTarget& target, const torch::Tensor& x,
                        const torch::Tensor& y) override {
    last = inner_->perturb(target, x, y);
    return last;
  }
  torch::Tensor last;
};

std::shared_ptr<TinyNet> tiny(const std::string& file) {
  auto net = std::make_shared<TinyNet>();
  ardkit::load_weights(*net, reference() / file);
  return net;
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  REQUIRE(a.sizes() == b.sizes());
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

// One step of `objective` with `params` against the reference file CASE.pt.
void check_case(const std::string& name, const std::string& objective,
                std::map<std::string, ardkit::Value> params, int64_t epoch = 0) {
  CAPTURE(name);
  const auto r = load(name + ".pt");
  const auto batch_file = load("batch.pt");
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
  std::map<std::string, ardkit::Value> attack_values;
  const auto& info = test::builtin().find(PluginKind::objective, objective).info;
  std::shared_ptr<Recording> attack;
  if (info.attack_defaults) {
    for (const auto& [k, v] : info.attack_defaults(objective_params))
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
  const ardkit::LossTerms loss = plugin->compute(context);
  loss.total.backward();
  optimizer.step();

  if (r.count("x_adv")) {
    CHECK(max_diff(attack->last, r.at("x_adv")) < 1e-6);
    // Inside the ball and the pixel range, and actually moved.
    CHECK((attack->last - batch.x).abs().max().item<double>() <= attack->threat().eps + 1e-6);
    CHECK(max_diff(attack->last, batch.x) > 0.01);
  }
  CHECK(std::abs(loss.total.item<double>() - r.at("loss").item<double>()) <
        1e-5 * std::max(1.0, std::abs(r.at("loss").item<double>())));
  size_t terms = 0;
  for (const auto& [key, value] : r) {
    if (key.rfind("term.", 0) != 0)
      continue;
    ++terms;
    const std::string term = key.substr(5);
    CAPTURE(term);
    auto found = std::find_if(loss.terms.begin(), loss.terms.end(),
                              [&](const auto& t) { return t.first == term; });
    REQUIRE(found != loss.terms.end());
    CHECK(std::abs(found->second.item<double>() - value.item<double>()) <
          1e-5 * std::max(1.0, std::abs(value.item<double>())));
  }
  CHECK(terms > 0);
  // Parameters after the step, and BatchNorm's running statistics (which count the train-mode
  // forwards and see which inputs they ran on).
  const auto after = ardkit::model_state_dict(*student);
  size_t compared = 0;
  for (const auto& [key, value] : after) {
    CAPTURE(key);
    REQUIRE(r.count("after." + key));
    CHECK(max_diff(value, r.at("after." + key)) < 2e-5);
    ++compared;
  }
  CHECK(compared == 9);  // conv and fc weight and bias, BatchNorm's five entries
}

}  // namespace

TEST_CASE("objectives reproduce one official training step") {
  check_case("ard", "ard", {{"alpha", 0.9}});
  check_case("rslad", "rslad", {});
  check_case("iad1", "iad", {{"alpha", 0.9}, {"begin", int64_t{0}}});
  check_case("iad1_before_begin", "iad", {{"alpha", 0.9}}, /*epoch=*/5);
  check_case("iad2", "iad",
             {{"variant", std::string("iad2")}, {"alpha", 0.5}, {"begin", int64_t{0}}});
  check_case("adaad", "adaad", {{"alpha", 0.8}});
  check_case("trades", "trades", {});
  check_case("pgd_at", "pgd_at", {});
  check_case("pgd_at_adaad", "pgd_at", {{"variant", std::string("adaad")}});
  check_case("adaiad", "iad", {{"variant", std::string("adaiad")}, {"alpha", 0.9}}, 60);
  check_case("adaiad_before_begin", "iad", {{"variant", std::string("adaiad")}, {"alpha", 0.9}},
             59);
  check_case("kd", "kd", {});
}

TEST_CASE("the reference step is sensitive to what the objectives get right") {
  // Guards against a vacuous comparison: a different KL reduction or BatchNorm mode must not
  // reproduce the official step.
  const auto r = load("ard.pt");
  auto student = tiny("student.pt");
  auto teacher = tiny("teacher.pt");
  teacher->eval();
  const auto batch_file = load("batch.pt");
  ardkit::Batch batch;
  batch.x = batch_file.at("x");
  batch.y = batch_file.at("y");
  for (const auto& [key, value] : std::vector<std::pair<std::string, ardkit::Value>>{
           {"kl_reduction", std::string("batchmean")}, {"attack_bn_mode", std::string("eval")}}) {
    CAPTURE(key);
    auto s = tiny("student.pt");
    const auto params =
        test::params_for(PluginKind::objective, "ard", {{"alpha", 0.9}, {key, value}});
    auto plugin =
        test::builtin().create<ardkit::Objective>(PluginKind::objective, "ard", params, {});
    std::map<std::string, ardkit::Value> attack_values;
    for (const auto& [k, v] :
         test::builtin().find(PluginKind::objective, "ard").info.attack_defaults(params))
      attack_values[k] = v;
    auto attack = test::make<ardkit::Attack>(PluginKind::attack, "pgd", attack_values);
    ardkit::Knobs knobs;
    plugin->declare_knobs(knobs);
    s->train();
    torch::manual_seed(1234);
    ardkit::StepContext context{*s, teacher.get(), attack.get(), batch, 0, 0, knobs};
    const auto loss = plugin->compute(context);
    torch::Tensor running_mean;
    for (const auto& [k, v] : ardkit::model_state_dict(*s))
      if (k == "bn.running_mean")
        running_mean = v;
    const bool same_loss = std::abs(loss.total.item<double>() - r.at("loss").item<double>()) < 1e-5;
    const bool same_stats = max_diff(running_mean, r.at("after.bn.running_mean")) < 1e-6;
    CHECK_FALSE((same_loss && same_stats));
  }
}
