// Differential tests of the data-free generators against PyTorch (tests/generators/
// make_reference.py, run first by CTest): each plugin, driven by the engine's DataFree for one
// generator update, must give the reference's loss terms and the reference's generator weights
// after the Adam step, from the same initial weights, latent, teacher and student.
#include <doctest/doctest.h>

#include <ardkit/ardkit.hpp>
#include <ardkit/host/data_free.hpp>

#include "../unit/test_util.hpp"

namespace {

namespace fs = std::filesystem;
using ardkit::PluginKind;

constexpr int64_t kSeed = 4321, kBatch = 16;

fs::path reference() {
  return test::reference_dir("ARDKIT_GENERATOR_REFERENCE_DIR");
}

// make_reference.py's TapNet: conv-bn-relu ("block") -> 2x2 average pool -> linear, with ardkit's
// BatchNorm so the bn_stats generator can tap it.
class TapNet : public ardkit::Model {
 public:
  TapNet()
      : conv_(register_module("conv",
                              torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 4, 3).padding(1)))),
        bn_(register_module("bn", ardkit::nn::BatchNorm2d(4))),
        fc_(register_module("fc", torch::nn::Linear(64, 10))) {}
  ardkit::ModelOutput forward(const torch::Tensor& x) override {
    const auto block = torch::relu(bn_(conv_(x)));
    tap("block", block);
    const auto features = torch::avg_pool2d(block, 2).flatten(1);
    return {fc_(features), features};
  }
  int64_t feature_dim() const override {
    return 64;
  }
  std::vector<std::string> tap_names() const override {
    return {"block", "features"};
  }

 private:
  torch::nn::Conv2d conv_;
  ardkit::nn::BatchNorm2d bn_;
  torch::nn::Linear fc_;
};

std::shared_ptr<TapNet> tap_net(const std::string& file) {
  auto net = std::make_shared<TapNet>();
  ardkit::load_weights(*net, reference() / file);
  return net;
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  REQUIRE(a.sizes() == b.sizes());
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

// Loads `values` into `module` by name (parameters and buffers).
void load_into(torch::nn::Module& module, const std::map<std::string, torch::Tensor>& values,
               const std::string& prefix = "") {
  torch::NoGradGuard no_grad;
  for (auto& p : module.named_parameters()) {
    INFO(p.key());
    p.value().copy_(values.at(prefix + p.key()));
  }
  for (auto& b : module.named_buffers()) {
    INFO(b.key());
    b.value().copy_(values.at(prefix + b.key()));
  }
}

struct Case {
  std::shared_ptr<TapNet> teacher, student;
  std::shared_ptr<ardkit::Generator> generator;
  std::unique_ptr<ardkit::DataFree> driver;
  ardkit::Knobs knobs;
};

// One generator update of plugin `name` through the engine's driver: synthesis_steps = 1 at the
// start of an epoch is exactly one update, with the latent drawn right after manual_seed.
std::unique_ptr<Case> one_update(const std::string& name,
                                 std::map<std::string, ardkit::Value> overrides = {}) {
  auto c = std::make_unique<Case>();
  c->teacher = tap_net("teacher.pt");
  c->student = tap_net("student.pt");
  c->teacher->eval();
  for (auto& p : c->teacher->parameters())
    p.set_requires_grad(false);
  c->student->train();
  overrides["synthesis_steps"] = int64_t{1};
  overrides["reinitialize"] = std::string("never");
  overrides["sample_grid"] = false;
  c->generator = test::make<ardkit::Generator>(PluginKind::generator, name, overrides);
  ardkit::DataSpec spec;
  spec.channels = 1;
  spec.height = spec.width = 8;
  spec.num_classes = 10;
  c->driver = std::make_unique<ardkit::DataFree>(*c->generator, *c->teacher, *c->student, c->knobs,
                                                 spec, kBatch, torch::kCPU);
  load_into(c->generator->network(), test::load_tensors(reference() / (name + "_init.pt")));
  torch::manual_seed(kSeed);
  REQUIRE(c->driver->prepare_epoch(0));
  return c;
}

// `tolerance` on weights after the step: Adam moves each weight by about lr * g / (|g| + 1e-8),
// so an element whose gradient is near 1e-8 differs by a fraction of lr between two correct
// float32 implementations (bn_stats: lr 2e-3); a wrong loss moves most elements by ~lr.
void check_update(const std::string& name, Case& c, double tolerance = 2e-5) {
  const auto r = test::load_tensors(reference() / (name + ".pt"));
  const auto& latest = c.driver->latest();
  for (const auto& [key, value] : r)
    if (key.rfind("term.", 0) == 0 && key != "term.attention") {
      const std::string key_shown = key;  // INFO cannot capture a binding (C++17)
      INFO(name << " " << key_shown);
      REQUIRE(latest.count("gen." + key.substr(5)));
      CHECK(latest.at("gen." + key.substr(5)) ==
            doctest::Approx(value.item<double>()).epsilon(1e-5));
    }
  CHECK(latest.at("gen.loss") == doctest::Approx(r.at("loss").item<double>()).epsilon(1e-5));
  for (auto& p : c.generator->network().named_parameters()) {
    INFO(name << " parameter " << p.key());
    CHECK(max_diff(p.value(), r.at("after." + p.key())) < tolerance);
  }
  for (auto& b : c.generator->network().named_buffers()) {
    if (b.key() == "targets")
      continue;
    INFO(name << " buffer " << b.key());
    CHECK(max_diff(b.value(), r.at("after." + b.key())) < 2e-5);
  }
  // The student's BatchNorm statistics: moved by the update where the official code runs the
  // student in train mode inside it (DFAD, ZSKT), untouched where it does not (DAFL's loss never
  // runs the student; FERD's student is in eval mode).
  for (auto& b : c.student->named_buffers()) {
    INFO(name << " student buffer " << b.key());
    CHECK(max_diff(b.value(), r.at("student_after." + b.key())) < 1e-6);
  }
  CHECK(c.student->is_training());  // the update leaves the student's mode as it found it
}

}  // namespace

TEST_CASE("dafl: DAFL_train.py's loss terms and Adam step, BatchNorm eps 0.8 included") {
  auto c = one_update("dafl");
  check_update("dafl", *c);
  // The quirk is structural: the inner BatchNorms normalize with eps 0.8.
  bool found = false;
  for (const auto& m : c->generator->network().modules(false))
    if (auto* bn = dynamic_cast<torch::nn::BatchNorm2dImpl*>(m.get());
        bn && bn->options.eps() == 0.8)
      found = true;
  CHECK(found);
}

TEST_CASE("dafl: the fork's natural-log entropy with ie 10 is an option") {
  auto c = one_update("dafl", {{"entropy_log", std::string("ln")}, {"ie", 10.0}});
  check_update("dafl_ln", *c);
}

TEST_CASE("dfad: DFAD's negative L1 logit discrepancy and Adam step") {
  auto c = one_update("dfad", {{"latent_dim", int64_t{100}}});
  check_update("dfad", *c);
}

TEST_CASE("zskt: ZSKT's -KL (mean reduction), clipped step, and the attention-transfer term") {
  auto c = one_update("zskt");
  check_update("zskt", *c);
  // The student's extra term on the updated generator's images (same latent).
  const auto r = test::load_tensors(reference() / "zskt.pt");
  ardkit::Batch batch{r.at("student_x"), torch::zeros({kBatch}, torch::kLong), torch::Tensor()};
  ardkit::LossTerms loss{torch::zeros({}), {}};
  c->driver->add_student_terms(loss, batch, 0);
  REQUIRE(loss.terms.size() == 1);
  CHECK(loss.terms[0].first == "gen_attention");
  CHECK(loss.terms[0].second.item<double>() ==
        doctest::Approx(r.at("term.attention").item<double>()).epsilon(1e-5));
  CHECK(loss.total.item<double>() ==
        doctest::Approx(250.0 * r.at("term.attention").item<double>()).epsilon(1e-5));
}

TEST_CASE("bn_stats: DeepInversion's BatchNorm matching through the taps, latent optimized") {
  auto c = one_update("bn_stats");
  check_update("bn_stats", *c, 1e-4);
}

TEST_CASE("adaptive balance reweights the terms of a real update; fixed keeps the method's") {
  auto fixed = one_update("bn_stats");
  auto adaptive = one_update("bn_stats", {{"balance", std::string("adaptive")}});
  const auto& f = fixed->driver->latest();
  const auto& a = adaptive->driver->latest();
  // The same batch and terms; only the weights (logged as gen.w.*) and so the step differ.
  CHECK(a.at("gen.bn") == doctest::Approx(f.at("gen.bn")));
  CHECK(f.count("gen.w.bn") == 0);
  // First observation: m_k = |l_k|, M = sum b_k m_k / sum b_k, w_k = b_k clamp(M / m_k, .1, 10).
  const std::map<std::string, double> base = {{"bn", 5.0}, {"one_hot", 1.0}, {"adversarial", 1.0}};
  double weighted = 0, total = 0;
  for (const auto& [name, b] : base) {
    weighted += b * std::abs(a.at("gen." + name));
    total += b;
  }
  for (const auto& [name, b] : base) {
    const double expected =
        b * std::clamp(weighted / total / std::abs(a.at("gen." + name)), 0.1, 10.0);
    const std::string name_shown = name;  // INFO cannot capture a binding (C++17)
    INFO(name_shown);
    CHECK(a.at("gen.w." + name) == doctest::Approx(expected));
  }
  CHECK(max_diff(fixed->generator->network().named_parameters()["z"],
                 adaptive->generator->network().named_parameters()["z"]) > 0);
}
