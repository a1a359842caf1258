// Attack invariants on a small trained model: eps-ball and [0,1], robust <= clean, eps 0 is clean,
// determinism, no parameter gradients, BatchNorm modes honoured and restored, injected losses used.
#include <torch/torch.h>

#include <ardkit/ardkit.hpp>
#include <ardkit/evaluator.hpp>

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

TEST_CASE("same seed, same adversarial examples; restarts keep the worst case") {
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
