// Attack invariants on a small trained model: eps-ball and [0,1], robust <= clean, eps 0 is clean,
// determinism, no parameter gradients, BatchNorm modes honoured and restored, injected losses used.
#include <torch/torch.h>

#include <ardkit/ardkit.hpp>
#include <ardkit/attack_util.hpp>
#include <ardkit/host/evaluator.hpp>
#include <ardkit/interrupt.hpp>
#include <ardkit/text.hpp>

#include "test_util.hpp"

using ardkit::PluginKind;

namespace {

struct Fixture {
  std::shared_ptr<ardkit::DataSource> data;
  std::shared_ptr<ardkit::Model> model;
  ardkit::Batch batch;

  explicit Fixture(bool batch_norm = false) {
    torch::manual_seed(0);
    data = test::make<ardkit::DataSource>(PluginKind::data, "synthetic",
                                          {{"train_size", int64_t{512}}});
    ardkit::BuildContext context;
    context.data = data->spec();
    model = test::make<ardkit::Model>(PluginKind::model, "small_cnn",
                                      {{"conv1", int64_t{16}},
                                       {"conv2", int64_t{16}},
                                       {"hidden", int64_t{64}},
                                       {"batch_norm", batch_norm}},
                                      context);
    // A few epochs of plain training: invariants are only meaningful on a model that is right
    // often.
    torch::optim::SGD sgd(model->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
    model->train();
    const int64_t n = data->size(ardkit::Split::train);
    for (int epoch = 0; epoch < 10; ++epoch)
      for (int64_t lo = 0; lo < n; lo += 32) {
        auto b = data->get(ardkit::Split::train, torch::arange(lo, std::min(n, lo + 32)),
                           ardkit::Augmentation::none());
        sgd.zero_grad();
        torch::nn::functional::cross_entropy(model->logits(b.x), b.y).backward();
        sgd.step();
      }
    model->eval();
    for (auto& p : model->parameters())
      p.mutable_grad() = torch::Tensor();
    batch = data->get(ardkit::Split::test, torch::arange(0, 128), ardkit::Augmentation::none());
  }

  ardkit::AttackTarget target(ardkit::BnMode mode = ardkit::BnMode::eval) {
    ardkit::AttackTarget t;
    t.model = model.get();
    t.bn_mode = mode;
    return t;
  }
};

std::shared_ptr<ardkit::Attack> pgd(double eps, std::map<std::string, ardkit::Value> extra = {}) {
  extra["eps"] = eps;
  return test::make<ardkit::Attack>(PluginKind::attack, "pgd", extra);
}

}  // namespace

TEST_CASE("adversarial examples stay in the eps-ball and in [0,1]") {
  Fixture f;
  const double eps = 0.1;
  for (const char* start : {"none", "uniform", "gaussian"}) {
    for (const char* name : {"pgd", "fgsm"}) {
      CAPTURE(start);
      CAPTURE(name);
      auto attack = test::make<ardkit::Attack>(
          PluginKind::attack, name,
          {{"eps", eps}, {"random_start", std::string(start)}, {"gaussian_std", 0.5}});
      const auto x_adv = attack->perturb(f.target(), f.batch.x, f.batch.y);
      CHECK(x_adv.sizes() == f.batch.x.sizes());
      CHECK((x_adv - f.batch.x).abs().max().item<double>() <= eps + 1e-6);
      CHECK(x_adv.min().item<double>() >= 0.0);
      CHECK(x_adv.max().item<double>() <= 1.0);
      CHECK_FALSE(x_adv.requires_grad());
    }
  }
}

TEST_CASE("robust accuracy is at most clean, and the attack actually hurts") {
  Fixture f;
  const auto report = ardkit::evaluate(
      *f.model, *f.data,
      {{"fgsm", test::make<ardkit::Attack>(PluginKind::attack, "fgsm", {{"eps", 0.2}})},
       {"pgd", pgd(0.2, {{"steps", int64_t{10}}})}},
      {ardkit::Split::test, 0, 64, "test"});
  REQUIRE(report.clean_accuracy > 0.5);
  for (const auto& a : report.attacks) {
    CAPTURE(a.name);
    CHECK(a.accuracy <= report.clean_accuracy);
    CHECK(a.accuracy < report.clean_accuracy - 0.1);
  }
  CHECK(report.worst_case <= std::min(report.attacks[0].accuracy, report.attacks[1].accuracy));
  // PGD-10 is at least as strong as FGSM at the same radius on this model.
  CHECK(report.attacks[1].accuracy <= report.attacks[0].accuracy + 0.02);
}

TEST_CASE("eps 0 gives clean accuracy") {
  Fixture f;
  const auto report =
      ardkit::evaluate(*f.model, *f.data, {{"pgd0", pgd(0.0)}}, {ardkit::Split::test, 0, 100, "t"});
  CHECK(report.attacks[0].accuracy == doctest::Approx(report.clean_accuracy));
}

TEST_CASE("same seed, same adversarial examples, and restarts keep the worst case") {
  Fixture f;
  auto attack = pgd(0.1, {{"restarts", int64_t{3}}, {"steps", int64_t{3}}});
  torch::manual_seed(7);
  const auto a = attack->perturb(f.target(), f.batch.x, f.batch.y);
  torch::manual_seed(7);
  const auto b = attack->perturb(f.target(), f.batch.x, f.batch.y);
  CHECK(torch::equal(a, b));
  torch::NoGradGuard no_grad;
  const auto fooled_restarts = f.model->logits(a).argmax(1).ne(f.batch.y).sum().item<int64_t>();
  torch::manual_seed(7);
  const auto single = pgd(0.1, {{"steps", int64_t{3}}})->perturb(f.target(), f.batch.x, f.batch.y);
  const auto fooled_single = f.model->logits(single).argmax(1).ne(f.batch.y).sum().item<int64_t>();
  CHECK(fooled_restarts >=
        fooled_single);  // the first restart is the single run; later ones only add
}

TEST_CASE("attacks leave parameter gradients undefined") {
  Fixture f;
  for (const char* name : {"pgd", "fgsm"}) {
    auto attack = test::make<ardkit::Attack>(PluginKind::attack, name, {{"eps", 0.1}});
    attack->perturb(f.target(), f.batch.x, f.batch.y);
    for (const auto& p : f.model->parameters())
      CHECK_FALSE(p.grad().defined());
  }
}

namespace {

// Every attack of the suite, with small budgets: (plugin, extra parameters).
std::vector<std::pair<std::string, std::map<std::string, ardkit::Value>>> suite(double eps) {
  return {{"pgd", {{"eps", eps}}},
          {"pgd", {{"eps", eps * 10}, {"norm", std::string("l2")}, {"step_size", eps * 2.5}}},
          {"cw_inf", {{"eps", eps}, {"steps", int64_t{10}}, {"step_size", eps / 4}}},
          {"apgd", {{"eps", eps}, {"steps", int64_t{20}}}},
          {"apgd", {{"eps", eps}, {"steps", int64_t{20}}, {"loss", std::string("dlr")}}},
          {"apgd", {{"eps", eps * 10}, {"steps", int64_t{20}}, {"norm", std::string("l2")}}},
          {"apgd_t", {{"eps", eps}, {"steps", int64_t{10}}, {"target_classes", int64_t{3}}}},
          {"square", {{"eps", eps * 2}, {"queries", int64_t{300}}}},
          {"fab", {{"eps", eps}, {"steps", int64_t{10}}}},
          {"fab", {{"eps", eps * 10}, {"steps", int64_t{10}}, {"norm", std::string("l2")}}},
          {"fab_t", {{"eps", eps}, {"steps", int64_t{10}}, {"target_classes", int64_t{3}}}},
          {"autoattack",
           {{"eps", eps},
            {"steps", int64_t{10}},
            {"target_classes", int64_t{3}},
            {"queries", int64_t{100}}}}};
}

}  // namespace

TEST_CASE(
    "BatchNorm mode: eval leaves running statistics alone, train updates them, mode is restored") {
  Fixture f(/*batch_norm=*/true);
  auto running_mean = [&] {
    for (const auto& item : f.model->named_buffers())
      if (item.key() == "bn1.running_mean")
        return item.value().clone();
    FAIL("no bn1.running_mean");
    return torch::Tensor();
  };
  auto attack = pgd(0.1, {{"steps", int64_t{2}}});
  const auto before = running_mean();
  f.model->train();  // the attack must switch to eval for the duration, then restore train
  attack->perturb(f.target(ardkit::BnMode::eval), f.batch.x, f.batch.y);
  CHECK(torch::equal(before, running_mean()));
  CHECK(f.model->is_training());
  f.model->eval();
  attack->perturb(f.target(ardkit::BnMode::train), f.batch.x, f.batch.y);
  CHECK_FALSE(torch::equal(before, running_mean()));
  CHECK_FALSE(f.model->is_training());
  // Every attack of the suite, in eval mode, leaves the statistics alone.
  for (const auto& entry : suite(0.1)) {
    const auto& [name, params] = entry;
    CAPTURE(entry.first);  // doctest's CAPTURE is a lambda: C++17 cannot capture a binding
    const auto stats = running_mean();
    test::make<ardkit::Attack>(PluginKind::attack, name, params)
        ->perturb(f.target(ardkit::BnMode::eval), f.batch.x, f.batch.y);
    CHECK(torch::equal(stats, running_mean()));
  }
}

TEST_CASE("an injected loss is the one maximized") {
  Fixture f;
  auto target = f.target();
  // A loss with zero gradient: sign(0) = 0, so PGD without a random start cannot move.
  target.loss = [](const torch::Tensor& logits, const torch::Tensor&, const torch::Tensor&) {
    return logits.sum(1) * 0.0;
  };
  const auto x_adv =
      pgd(0.1, {{"random_start", std::string("none")}})->perturb(target, f.batch.x, f.batch.y);
  CHECK(torch::equal(x_adv, f.batch.x));
  // A whole objective replaces model+loss: maximizing -||x_adv||^2 drives pixels towards 0.
  ardkit::AttackTarget shrink;
  shrink.model = f.model.get();
  shrink.objective = [](const torch::Tensor& x, const torch::Tensor&, const torch::Tensor&) {
    return -(x * x).flatten(1).sum(1);
  };
  const auto smaller =
      pgd(0.1, {{"random_start", std::string("none")}})->perturb(shrink, f.batch.x, f.batch.y);
  CHECK(smaller.sum().item<double>() < f.batch.x.sum().item<double>());
}

TEST_CASE("per-sample losses match their definitions") {
  const auto logits = torch::tensor({{2.0f, 1.0f, 0.5f, -1.0f}, {0.0f, 3.0f, 1.0f, 0.5f}});
  const auto labels = torch::tensor({0, 2}, torch::kLong);
  const auto rows = torch::tensor({0, 1}, torch::kLong);
  const auto ce = ardkit::losses::cross_entropy()(logits, labels, rows);
  const auto log_p = torch::log_softmax(logits, 1);
  CHECK(ce[0].item<double>() == doctest::Approx(-log_p[0][0].item<double>()));
  CHECK(ce[1].item<double>() == doctest::Approx(-log_p[1][2].item<double>()));
  // CW: -max(z_y - max_other + kappa, 0): sample 0 margin 1 -> -(1 + kappa); sample 1 margin -2 ->
  // 0 at kappa 1.
  const auto cw = ardkit::losses::cw_margin(1.0)(logits, labels, rows);
  CHECK(cw[0].item<double>() == doctest::Approx(-2.0));
  CHECK(cw[1].item<double>() == doctest::Approx(-0.0));
  // DLR: -(z_y - max_other) / (z_pi1 - z_pi3).
  const auto dlr = ardkit::losses::dlr()(logits, labels, rows);
  CHECK(dlr[0].item<double>() == doctest::Approx(-(2.0 - 1.0) / (2.0 - 0.5)));
  CHECK(dlr[1].item<double>() == doctest::Approx(-(1.0 - 3.0) / (3.0 - 0.5)));
  const auto tdlr =
      ardkit::losses::targeted_dlr(torch::tensor({1, 0}, torch::kLong))(logits, labels, rows);
  CHECK(tdlr[0].item<double>() == doctest::Approx(-(2.0 - 1.0) / (2.0 - 0.5 * (0.5 - 1.0))));
  // KL to a distribution equal to the model's own is zero; to a one-hot it is the CE.
  const auto probs = torch::softmax(logits, 1);
  CHECK(ardkit::losses::kl_to(probs)(logits, labels, rows).abs().max().item<double>() < 1e-6);
  const auto one_hot = torch::one_hot(labels, 4).to(torch::kFloat);
  const auto kl = ardkit::losses::kl_to(one_hot)(logits, labels, rows);
  CHECK(torch::allclose(kl, ce, 1e-5, 1e-6));
  // rows select the side data: reversed rows give each sample the other's target.
  const auto swapped = ardkit::losses::kl_to(one_hot)(logits.flip(0), labels.flip(0), rows.flip(0));
  CHECK(torch::allclose(swapped, ce.flip(0), 1e-5, 1e-6));
}

TEST_CASE("every attack stays in its ball and in [0,1], and hurts the model") {
  Fixture f;
  torch::NoGradGuard outside;  // attacks must turn gradients on themselves
  for (const auto& entry : suite(0.1)) {
    const auto& [name, params] = entry;
    CAPTURE(entry.first);  // doctest's CAPTURE is a lambda: C++17 cannot capture a binding
    const std::string eps = ardkit::format_value(entry.second.at("eps"));
    CAPTURE(eps);
    auto attack = test::make<ardkit::Attack>(PluginKind::attack, name, params);
    const auto threat = attack->threat();
    const auto x_adv = attack->perturb(f.target(), f.batch.x, f.batch.y);
    const auto delta = x_adv - f.batch.x;
    if (threat.norm == "linf")
      CHECK(ardkit::linf_norms(delta).max().item<double>() <= threat.eps + 1e-6);
    else
      CHECK(ardkit::l2_norms(delta).max().item<double>() <= threat.eps + 1e-4);
    CHECK(x_adv.min().item<double>() >= 0.0);
    CHECK(x_adv.max().item<double>() <= 1.0);
    for (const auto& p : f.model->parameters())
      CHECK_FALSE(p.grad().defined());
    const auto clean_correct = f.model->logits(f.batch.x).argmax(1).eq(f.batch.y);
    const auto adv_correct = f.model->logits(x_adv).argmax(1).eq(f.batch.y);
    CHECK((adv_correct & clean_correct).sum().item<int64_t>() <
          clean_correct.sum().item<int64_t>() - 10);
  }
}

TEST_CASE("apgd: same seed same result, eps 0 is clean, at least as strong as pgd") {
  Fixture f;
  auto run = [&](std::map<std::string, ardkit::Value> params) {
    return test::make<ardkit::Attack>(PluginKind::attack, "apgd", params)
        ->perturb(f.target(), f.batch.x, f.batch.y);
  };
  const std::map<std::string, ardkit::Value> base = {{"eps", 0.05}, {"steps", int64_t{20}}};
  torch::manual_seed(1);
  const auto a = run(base);
  torch::manual_seed(2);  // the attack's own seed decides, not the global generator
  CHECK(torch::equal(a, run(base)));
  auto other = base;
  other["seed"] = int64_t{5};
  CHECK_FALSE(torch::equal(a, run(other)));
  const auto report = ardkit::evaluate(
      *f.model, *f.data,
      {{"apgd0", test::make<ardkit::Attack>(PluginKind::attack, "apgd", {{"eps", 0.0}})},
       {"pgd", pgd(0.05, {{"steps", int64_t{20}}})},
       {"apgd", test::make<ardkit::Attack>(PluginKind::attack, "apgd", base)}},
      {ardkit::Split::test, 0, 128, "t"});
  CHECK(report.attacks[0].accuracy == doctest::Approx(report.clean_accuracy));
  CHECK(report.attacks[2].accuracy <= report.attacks[1].accuracy + 0.02);
}

TEST_CASE("DLR losses refuse models with too few classes") {
  auto model_data =
      test::make<ardkit::DataSource>(PluginKind::data, "synthetic", {{"num_classes", int64_t{3}}});
  ardkit::BuildContext context;
  context.data = model_data->spec();
  auto model = test::make<ardkit::Model>(PluginKind::model, "small_cnn", {}, context);
  ardkit::AttackTarget target;
  target.model = model.get();
  const auto batch =
      model_data->get(ardkit::Split::test, torch::arange(0, 4), ardkit::Augmentation::none());
  auto apgd_t = test::make<ardkit::Attack>(PluginKind::attack, "apgd_t", {});
  CHECK(test::contains(
      test::error_of([&] { apgd_t->perturb(target, batch.x, batch.y); }, ardkit::ErrorKind::config),
      "needs at least 4 classes, the model has 3"));
}

TEST_CASE("more PGD steps never help the model on average") {
  Fixture f;
  std::vector<double> accuracy;
  for (int64_t steps : {1, 5, 20}) {
    auto attack = pgd(0.08, {{"steps", steps}, {"step_size", 0.02}});
    const auto report =
        ardkit::evaluate(*f.model, *f.data, {{"pgd", attack}}, {ardkit::Split::test, 0, 128, "t"});
    accuracy.push_back(report.attacks[0].accuracy);
  }
  CAPTURE(accuracy[0]);
  CAPTURE(accuracy[1]);
  CAPTURE(accuracy[2]);
  CHECK(accuracy[1] <= accuracy[0] + 0.02);
  CHECK(accuracy[2] <= accuracy[1] + 0.02);
  CHECK(accuracy[2] < accuracy[0]);
}

namespace {

// Models that fool gradient attacks in the ways AutoAttack's checks look for.
class Wrapped : public ardkit::Model {
 public:
  enum class Flaw { noisy, probabilities, masked };
  Wrapped(std::shared_ptr<ardkit::Model> inner, Flaw flaw) : inner_(std::move(inner)), flaw_(flaw) {
    register_module("inner", inner_);
  }
  ardkit::ModelOutput forward_impl(const torch::Tensor& x) override {
    switch (flaw_) {
      case Flaw::noisy:
        return inner_->forward(x + 0.05 * torch::randn_like(x));
      case Flaw::probabilities: {
        auto out = inner_->forward(x);
        return {torch::softmax(out.logits, 1), out.features};
      }
      case Flaw::masked:  // quantized input: the gradient is zero almost everywhere
        return inner_->forward((x * 4).round() / 4 + 0 * x);
    }
    return {};
  }
  int64_t feature_dim() const override {
    return inner_->feature_dim();
  }

 private:
  std::shared_ptr<ardkit::Model> inner_;
  Flaw flaw_;
};

}  // namespace

TEST_CASE("evaluation warns of randomness, probabilities, zero gradients and gradient masking") {
  Fixture f;
  const std::vector<ardkit::NamedAttack> attacks = {
      {"pgd", pgd(0.2, {{"steps", int64_t{5}}})},
      {"square", test::make<ardkit::Attack>(PluginKind::attack, "square",
                                            {{"eps", 0.2}, {"queries", int64_t{200}}})}};
  auto warnings_of = [&](Wrapped::Flaw flaw) {
    Wrapped model(f.model, flaw);
    return ardkit::join(
        ardkit::evaluate(model, *f.data, attacks, {ardkit::Split::test, 64, 64, "t"}).warnings,
        " | ");
  };
  CHECK(test::contains(warnings_of(Wrapped::Flaw::noisy), "change between two identical forward"));
  CHECK(test::contains(warnings_of(Wrapped::Flaw::probabilities), "look like probabilities"));
  const auto masked = warnings_of(Wrapped::Flaw::masked);
  CHECK(test::contains(masked, "input gradient is exactly zero"));
  CHECK(test::contains(masked, "'square'"));
  CHECK(test::contains(masked, "gradient masking"));
  // The plain model raises none of them.
  const auto clean =
      ardkit::evaluate(*f.model, *f.data, attacks, {ardkit::Split::test, 64, 64, "t"});
  CHECK(clean.warnings.empty());
}

TEST_CASE("autoattack: worst case at most each part's accuracy, stages reported in order") {
  Fixture f;
  using Values = std::map<std::string, ardkit::Value>;
  const double eps = 0.06;
  auto attack = [&](const std::string& name, Values values) {
    values["eps"] = eps;
    return test::make<ardkit::Attack>(PluginKind::attack, name, values);
  };
  const Values small = {{"steps", int64_t{10}}};
  const Values targeted = {{"steps", int64_t{10}}, {"target_classes", int64_t{3}}};
  const std::vector<ardkit::NamedAttack> attacks = {
      {"apgd-ce", attack("apgd", small)},
      {"apgd-t", attack("apgd_t", targeted)},
      {"fab-t", attack("fab_t", targeted)},
      {"square", attack("square", {{"queries", int64_t{100}}, {"rescale_schedule", false}})},
      {"autoattack", attack("autoattack", {{"steps", int64_t{10}},
                                           {"target_classes", int64_t{3}},
                                           {"queries", int64_t{100}}})}};
  const auto report =
      ardkit::evaluate(*f.model, *f.data, attacks, {ardkit::Split::test, 0, 128, "t"});
  const auto& aa = report.attacks.back();
  REQUIRE(aa.stages.size() == 4);
  CHECK(aa.accuracy < report.clean_accuracy);
  double previous = report.clean_accuracy;
  for (size_t k = 0; k < 4; ++k) {
    CAPTURE(report.attacks[k].name);
    CHECK(aa.stages[k].name == report.attacks[k].name);
    CHECK(aa.stages[k].accuracy <= previous);  // each part only removes robust points
    previous = aa.stages[k].accuracy;
    CHECK(aa.accuracy <= report.attacks[k].accuracy + 1e-9);
  }
  CHECK(aa.accuracy == doctest::Approx(aa.stages.back().accuracy));
  // The first part sees exactly what the standalone attack sees: same seed, same points.
  CHECK(aa.stages[0].accuracy == doctest::Approx(report.attacks[0].accuracy));
  CHECK(report.worst_case <= aa.accuracy);
}

TEST_CASE("autoattack versions and errors") {
  const auto parts_error = test::error_of(
      [] {
        test::make<ardkit::Attack>(PluginKind::attack, "autoattack",
                                   {{"version", std::string("custom")}});
      },
      ardkit::ErrorKind::config);
  CHECK(test::contains(parts_error, "needs attacks = [...]"));
  const auto l2_error = test::error_of(
      [] {
        test::make<ardkit::Attack>(PluginKind::attack, "autoattack", {{"norm", std::string("l2")}});
      },
      ardkit::ErrorKind::config);
  CHECK(test::contains(l2_error, "L-inf only"));
  const auto stray = test::error_of(
      [] {
        test::make<ardkit::Attack>(PluginKind::attack, "autoattack",
                                   {{"attacks", std::vector<std::string>{"square"}}});
      },
      ardkit::ErrorKind::config);
  CHECK(test::contains(stray, "only read with version = \"custom\""));
  Fixture f;
  std::vector<ardkit::AttackStage> stages;
  for (const auto& [version, parts] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"plus", {"apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"}},
           {"rand", {"apgd-ce", "apgd-dlr"}}}) {
    const std::string version_shown = version;  // CAPTURE cannot capture a binding (C++17)
    CAPTURE(version_shown);
    auto aa = test::make<ardkit::Attack>(PluginKind::attack, "autoattack",
                                         {{"version", version},
                                          {"eps", 0.05},
                                          {"steps", int64_t{2}},
                                          {"eot_iter", int64_t{2}},
                                          {"target_classes", int64_t{2}},
                                          {"queries", int64_t{20}}});
    aa->perturb_staged(f.target(), f.batch.x.slice(0, 0, 16), f.batch.y.slice(0, 0, 16), stages);
    std::vector<std::string> names;
    for (const auto& stage : stages)
      names.push_back(stage.name);
    CHECK(names == parts);
  }
}

namespace {

// Stands for a process killed mid-evaluation: throws Interrupted on its `fail_at`-th call.
class Interrupting : public test::WrappedAttack {
 public:
  Interrupting(ardkit::AttackPtr inner, int fail_at)
      : WrappedAttack(std::move(inner)), fail_at_(fail_at) {}
  int calls = 0;

 protected:
  torch::Tensor run(const ardkit::AttackTarget& target, const Input& in) override {
    if (++calls == fail_at_)
      throw ardkit::Interrupted();
    return inner_->perturb(target, in.x, in.labels);
  }

 private:
  int fail_at_;
};

}  // namespace

TEST_CASE("an interrupted evaluation resumes from its state file with the same numbers") {
  Fixture f;
  test::TempDir dir;
  ardkit::EvalOptions options{ardkit::Split::test, 0, 16, "t"};
  options.seed = 3;
  // Random starts make every batch's result depend on its seed.
  auto make_pgd = [] { return pgd(0.1, {{"steps", int64_t{3}}, {"step_size", 0.02}}); };
  auto make_fgsm = [] {
    return test::make<ardkit::Attack>(PluginKind::attack, "fgsm",
                                      {{"eps", 0.1}, {"random_start", std::string("uniform")}});
  };
  const auto uninterrupted =
      ardkit::evaluate(*f.model, *f.data, {{"fgsm", make_fgsm()}, {"pgd", make_pgd()}}, options);

  options.state_file = dir / "state.json";
  options.fingerprint = "model A";
  auto failing = std::make_shared<Interrupting>(make_pgd(), 3);
  CHECK_THROWS_AS(
      ardkit::evaluate(*f.model, *f.data, {{"fgsm", make_fgsm()}, {"pgd", failing}}, options),
      ardkit::Interrupted);
  REQUIRE(std::filesystem::exists(options.state_file));

  auto counting_fgsm = std::make_shared<Interrupting>(make_fgsm(), -1);
  auto counting_pgd = std::make_shared<Interrupting>(make_pgd(), -1);
  const auto resumed = ardkit::evaluate(*f.model, *f.data,
                                        {{"fgsm", counting_fgsm}, {"pgd", counting_pgd}}, options);
  CHECK(counting_fgsm->calls == 0);  // finished before the interruption
  const int batches =
      static_cast<int>((uninterrupted.clean_accuracy * uninterrupted.points + 15) / 16);
  CHECK(counting_pgd->calls == batches - 2);  // two batches were done
  REQUIRE(resumed.attacks.size() == 2);
  for (size_t k = 0; k < 2; ++k)
    CHECK(resumed.attacks[k].accuracy == uninterrupted.attacks[k].accuracy);
  CHECK(resumed.clean_accuracy == uninterrupted.clean_accuracy);
  CHECK(resumed.worst_case == uninterrupted.worst_case);

  // A state written for other settings is not used.
  options.fingerprint = "model B";
  auto fresh_pgd = std::make_shared<Interrupting>(make_pgd(), -1);
  ardkit::evaluate(*f.model, *f.data, {{"fgsm", make_fgsm()}, {"pgd", fresh_pgd}}, options);
  CHECK(fresh_pgd->calls == batches);
}

TEST_CASE("evaluation leaves the caller's random stream alone") {
  Fixture f;
  torch::manual_seed(42);
  const auto expected = torch::rand({4});
  torch::manual_seed(42);
  ardkit::evaluate(*f.model, *f.data, {{"pgd", pgd(0.1, {{"steps", int64_t{2}}})}},
                   {ardkit::Split::test, 32, 16, "t"});
  CHECK(torch::equal(torch::rand({4}), expected));
}
