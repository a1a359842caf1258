// Differential tests of the attack suite's deterministic pieces against PyTorch:
// make_reference.py (run first by CTest) writes the reference values into
// $ARDKIT_ATTACK_REFERENCE_DIR. Losses and projections must agree to float precision; Auto-PGD,
// given the same seed, must produce the same adversarial examples as the PyTorch port of
// fra31/auto-attack's algorithm (which exercises the step-size schedule, momentum, restarts and
// targeted rounds).
#include <doctest/doctest.h>

#include <ardkit/ardkit.hpp>
#include <ardkit/weights.hpp>

#include "test_util.hpp"

namespace fs = std::filesystem;
using ardkit::PluginKind;

namespace {

fs::path reference() {
  return test::reference_dir("ARDKIT_ATTACK_REFERENCE_DIR");
}

std::map<std::string, torch::Tensor> load(const std::string& file) {
  return test::load_tensors(reference() / file);
}

// The small CNN the reference attacks ran against, with its weights.
std::shared_ptr<ardkit::Model> reference_model() {
  ardkit::BuildContext context;
  context.data.channels = 1;
  context.data.height = 28;
  context.data.width = 28;
  context.data.num_classes = 10;
  auto model = test::make<ardkit::Model>(
      PluginKind::model, "small_cnn",
      {{"conv1", int64_t{8}}, {"conv2", int64_t{16}}, {"hidden", int64_t{32}}}, context);
  ardkit::load_weights(*model, reference() / "apgd_model.pt");
  model->eval();
  return model;
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  REQUIRE(a.sizes() == b.sizes());
  return (a - b).abs().max().item<double>();
}

}  // namespace

TEST_CASE("per-sample losses agree with PyTorch's definitions") {
  auto r = load("losses.pt");
  const auto rows = torch::arange(r["labels"].size(0));
  const auto& z = r["logits"];
  const auto& y = r["labels"];
  namespace L = ardkit::losses;
  CHECK(max_diff(L::cross_entropy()(z, y, rows), r["ce"]) < 1e-5);
  CHECK(max_diff(L::cw_margin(0.0)(z, y, rows), r["cw0"]) < 1e-5);
  CHECK(max_diff(L::cw_margin(50.0)(z, y, rows), r["cw50"]) < 1e-4);
  CHECK(max_diff(L::dlr()(z, y, rows), r["dlr"]) < 1e-5);
  CHECK(max_diff(L::targeted_dlr(r["targets"])(z, y, rows), r["dlr_targeted"]) < 1e-5);
  CHECK(max_diff(L::kl_to(r["probs"])(z, y, rows), r["kl"]) < 1e-5);
}

TEST_CASE("L-inf and L2 projections agree with PyTorch") {
  auto r = load("projections.pt");
  CHECK(max_diff(ardkit::project_linf(r["v"], r["x"], 0.1), r["linf"]) < 1e-6);
  CHECK(max_diff(ardkit::project_l2(r["v"], r["x"], 0.5), r["l2"]) < 1e-5);
}

TEST_CASE("apgd and apgd_t reproduce the reference algorithm's adversarial examples") {
  auto r = load("apgd.pt");
  auto model = reference_model();
  ardkit::AttackTarget target;
  target.model = model.get();
  const std::vector<
      std::pair<std::string, std::pair<std::string, std::map<std::string, ardkit::Value>>>>
      cases = {
          {"apgd_ce", {"apgd", {{"eps", 0.06}, {"steps", int64_t{25}}}}},
          {"apgd_dlr",
           {"apgd", {{"eps", 0.04}, {"steps", int64_t{25}}, {"loss", std::string("dlr")}}}},
          {"apgd_l2",
           {"apgd",
            {{"eps", 1.2},
             {"steps", int64_t{25}},
             {"norm", std::string("l2")},
             {"seed", int64_t{4}},
             {"restarts", int64_t{2}}}}},
          {"apgd_t",
           {"apgd_t",
            {{"eps", 0.035},
             {"steps", int64_t{12}},
             {"target_classes", int64_t{3}},
             {"seed", int64_t{1}}}}},
      };
  for (const auto& [name, spec] : cases) {
    const std::string name_shown = name;  // CAPTURE cannot capture a binding (C++17)
    CAPTURE(name_shown);
    auto attack = test::make<ardkit::Attack>(PluginKind::attack, spec.first, spec.second);
    const auto x_adv = attack->perturb(target, r["x"], r["y"]);
    torch::NoGradGuard no_grad;
    const auto ours = model->logits(x_adv).argmax(1).eq(r["y"]);
    const auto theirs = model->logits(r[name]).argmax(1).eq(r["y"]);
    const double robust_ours = ours.to(torch::kDouble).mean().item<double>();
    const double robust_theirs = theirs.to(torch::kDouble).mean().item<double>();
    MESSAGE(name << ": robust accuracy ardkit " << 100 * robust_ours << "%, reference "
                 << 100 * robust_theirs << "%");
    REQUIRE(robust_theirs > 0.0);
    REQUIRE(robust_theirs < 1.0);
    // Same seed, same algorithm: the same examples, up to float rounding in rare samples.
    const auto same = (x_adv - r[name]).flatten(1).abs().amax(1).lt(1e-4);
    CHECK(same.to(torch::kDouble).mean().item<double>() >= 0.95);
    CHECK(std::abs(robust_ours - robust_theirs) <= 1.0 / 48 + 1e-9);
  }
}

TEST_CASE("square reproduces the reference random search") {
  auto r = load("square.pt");
  auto model = reference_model();
  ardkit::AttackTarget target;
  target.model = model.get();
  auto attack =
      test::make<ardkit::Attack>(PluginKind::attack, "square",
                                 {{"eps", 0.2}, {"queries", int64_t{200}}, {"seed", int64_t{2}}});
  const auto x_adv = attack->perturb(target, r["x"], r["y"]);
  torch::NoGradGuard no_grad;
  const double ours =
      model->logits(x_adv).argmax(1).eq(r["y"]).to(torch::kDouble).mean().item<double>();
  const double theirs =
      model->logits(r["square"]).argmax(1).eq(r["y"]).to(torch::kDouble).mean().item<double>();
  MESSAGE("square: robust accuracy ardkit " << 100 * ours << "%, reference " << 100 * theirs
                                            << "%");
  REQUIRE(theirs > 0.0);
  REQUIRE(theirs < 1.0);
  CHECK(max_diff(x_adv, r["square"]) < 1e-5);
}

namespace {

// Robust accuracy of `model` on x_adv.
double robust_accuracy(ardkit::Model& model, const torch::Tensor& x_adv, const torch::Tensor& y) {
  torch::NoGradGuard no_grad;
  return model.logits(x_adv).argmax(1).eq(y).to(torch::kDouble).mean().item<double>();
}

}  // namespace

TEST_CASE("fab and fab_t reproduce the reference algorithm's adversarial examples") {
  auto r = load("fab.pt");
  auto model = reference_model();
  ardkit::AttackTarget target;
  target.model = model.get();
  using Values = std::map<std::string, ardkit::Value>;
  const std::vector<std::tuple<std::string, std::string, Values>> cases = {
      {"fab_linf",
       "fab",
       {{"eps", 0.035}, {"steps", int64_t{20}}, {"restarts", int64_t{2}}, {"seed", int64_t{5}}}},
      {"fab_t_linf",
       "fab_t",
       {{"eps", 0.035}, {"steps", int64_t{20}}, {"target_classes", int64_t{3}}}},
      {"fab_l2",
       "fab",
       {{"eps", 0.7},
        {"steps", int64_t{20}},
        {"norm", std::string("l2")},
        {"restarts", int64_t{2}},
        {"seed", int64_t{5}}}},
      {"fab_t_l2",
       "fab_t",
       {{"eps", 0.7},
        {"steps", int64_t{20}},
        {"norm", std::string("l2")},
        {"target_classes", int64_t{3}}}},
  };
  for (const auto& [name, plugin, values] : cases) {
    const std::string name_shown = name;  // CAPTURE cannot capture a binding (C++17)
    CAPTURE(name_shown);
    auto attack = test::make<ardkit::Attack>(PluginKind::attack, plugin, values);
    const auto x_adv = attack->perturb(target, r["x"], r["y"]);
    const double ours = robust_accuracy(*model, x_adv, r["y"]);
    const double theirs = robust_accuracy(*model, r[name], r["y"]);
    MESSAGE(name << ": robust accuracy ardkit " << 100 * ours << "%, reference " << 100 * theirs
                 << "%");
    REQUIRE(theirs > 0.0);
    REQUIRE(theirs < 1.0);
    const auto same = (x_adv - r[name]).flatten(1).abs().amax(1).lt(1e-4);
    CHECK(same.to(torch::kDouble).mean().item<double>() >= 0.95);
    CHECK(std::abs(ours - theirs) <= 1.0 / 32 + 1e-9);
  }
}

TEST_CASE("autoattack composes its parts as the reference does") {
  auto r = load("autoattack.pt");
  auto model = reference_model();
  ardkit::AttackTarget target;
  target.model = model.get();
  auto attack = test::make<ardkit::Attack>(PluginKind::attack, "autoattack",
                                           {{"eps", 0.05},
                                            {"steps", int64_t{10}},
                                            {"target_classes", int64_t{3}},
                                            {"queries", int64_t{100}}});
  std::vector<ardkit::AttackStage> stages;
  const auto x_adv = attack->perturb_staged(target, r["x"], r["y"], stages);
  REQUIRE(stages.size() == 4);
  const std::vector<std::string> names = {"apgd-ce", "apgd-t", "fab-t", "square"};
  double previous = 1.0;
  for (size_t k = 0; k < stages.size(); ++k) {
    CAPTURE(names[k]);
    CHECK(stages[k].name == names[k]);
    const auto& theirs = r["robust_after_" + names[k]];
    const double ours_acc = stages[k].robust.to(torch::kDouble).mean().item<double>();
    const double theirs_acc = theirs.to(torch::kDouble).mean().item<double>();
    MESSAGE("after " << names[k] << ": ardkit " << 100 * ours_acc << "%, reference "
                     << 100 * theirs_acc << "%");
    CHECK(std::abs(ours_acc - theirs_acc) <= 1.0 / 40 + 1e-9);
    CHECK(ours_acc <= previous);  // a later part only removes robust points
    previous = ours_acc;
  }
  const double final_acc = robust_accuracy(*model, x_adv, r["y"]);
  CHECK(final_acc == doctest::Approx(previous));
  CHECK(final_acc == doctest::Approx(robust_accuracy(*model, r["adv"], r["y"])).epsilon(0.03));
}
