// Differential tests of the data-free generators against PyTorch (tests/generators/
// make_reference.py, run first by CTest): each plugin, driven by the engine's DataFree for one
// generator update, must give the reference's loss terms and the reference's generator weights
// after the Adam step, from the same initial weights, latent, teacher and student.
#include <doctest/doctest.h>

#include <ardkit/ardkit.hpp>
#include <ardkit/host/data_free.hpp>
#include <ardkit/nn/batch_norm.hpp>
#include <ardkit/weights.hpp>

#include "test_util.hpp"

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
  explicit TapNet(int64_t channels = 1, int64_t side = 8, bool bias = true)
      : features_(4 * (side / 2) * (side / 2)),
        conv_(register_module(
            "conv",
            torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, 4, 3).padding(1).bias(bias)))),
        bn_(register_module("bn", ardkit::nn::BatchNorm2d(4))),
        fc_(register_module("fc", torch::nn::Linear(features_, 10))) {}
  ardkit::ModelOutput forward_impl(const torch::Tensor& x) override {
    const auto block = torch::relu(bn_(conv_(x)));
    tap("block", block);
    const auto features = torch::avg_pool2d(block, 2).flatten(1);
    return {fc_(features), features};
  }
  int64_t feature_dim() const override {
    return features_;
  }
  std::vector<std::string> tap_names() const override {
    return {"block", "features"};
  }
  std::vector<std::string> resumable_taps() const override {
    return {"block"};
  }
  ardkit::ModelOutput forward_from_impl(const std::string& /*block*/,
                                        const torch::Tensor& block) override {
    const auto features = torch::avg_pool2d(block, 2).flatten(1);
    return {fc_(features), features};
  }

 private:
  int64_t features_;
  torch::nn::Conv2d conv_;
  ardkit::nn::BatchNorm2d bn_;
  torch::nn::Linear fc_;
};

std::shared_ptr<TapNet> tap_net(const std::string& file, int64_t channels = 1, int64_t side = 8,
                                bool bias = true) {
  auto net = std::make_shared<TapNet>(channels, side, bias);
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
  auto made = test::make_generator(name, overrides);
  c->generator = made.generator;
  ardkit::DataSpec spec;
  spec.channels = 1;
  spec.height = spec.width = 8;
  spec.num_classes = 10;
  c->driver = std::make_unique<ardkit::DataFree>(*c->generator, made.options, *c->teacher,
                                                 *c->student, c->knobs, spec, kBatch, torch::kCPU);
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

// ---- Several updates against the official code (tests/generators/run_official.py) ----
// The official training loops themselves ran, on make_reference.py's CIFAR-shaped start, for a
// few iterations of generator and student updates; here the plugin runs the same iterations
// through the engine's DataFree driver, with the student's official loss and optimizer, and every
// generator term, student loss, student batch and the final weights must agree. The student's
// learning rate at each step is the official one (the trainer's schedules are checked against
// the official codes' in the objective tests); the generator's follows from the plugin's
// lr_schedule, and is checked against the official generator's.
namespace {

using Tensors = std::map<std::string, torch::Tensor>;

fs::path official() {
  return test::reference_dir("ARDKIT_GENERATOR_OFFICIAL_DIR");
}

// A tensor run_official.py stored whole, or as a fingerprint (the sum, the sum of squares and
// the values at fixed positions) when it has more than 4096 values.
void check_tensor(const Tensors& r, const std::string& key, const torch::Tensor& actual,
                  double tolerance) {
  INFO(key);
  if (r.count(key)) {
    CHECK(max_diff(actual, r.at(key)) < tolerance);
    return;
  }
  REQUIRE(r.count("fp.idx." + key));
  const auto flat = actual.detach().to(torch::kDouble).flatten();
  CHECK(max_diff(flat.index_select(0, r.at("fp.idx." + key)), r.at("fp.val." + key)) < tolerance);
  CHECK(std::abs(flat.sum().item<double>() - r.at("fp.sum." + key).item<double>()) <
        tolerance * static_cast<double>(flat.numel()));
  CHECK(flat.pow(2).sum().item<double>() ==
        doctest::Approx(r.at("fp.sq." + key).item<double>()).epsilon(1e-4));
}

std::vector<double> values(const torch::Tensor& t) {
  const auto d = t.to(torch::kDouble).contiguous();
  return {d.data_ptr<double>(), d.data_ptr<double>() + d.numel()};
}

struct Replay {
  std::string name;
  std::map<std::string, ardkit::Value> overrides;
  // The student's official loss on a batch (before the generator's student terms are added).
  std::function<ardkit::LossTerms(Case&, const ardkit::Batch&, int64_t step)> loss;
  std::function<std::unique_ptr<torch::optim::Optimizer>(TapNet&)> optimizer;
  double student_clip = 0;
  double tolerance = 1e-4;
};

void set_lr(torch::optim::Optimizer& o, double lr) {
  for (auto& group : o.param_groups())
    group.options().set_lr(lr);
}

void replay(const Replay& p) {
  const auto r = test::load_tensors(official() / (p.name + ".pt"));
  auto c = std::make_unique<Case>();
  c->teacher = tap_net("official_teacher.pt", 3, 32, false);
  c->student = tap_net("official_student.pt", 3, 32, false);
  c->teacher->eval();
  for (auto& t : c->teacher->parameters())
    t.set_requires_grad(false);
  c->student->train();
  const auto lrs = values(r.at("lr.student"));
  const auto generator_lrs = values(r.at("lr.generator"));
  auto overrides = p.overrides;
  overrides["synthesis_steps"] = int64_t{0};
  overrides["reinitialize"] = std::string("never");
  overrides["sample_grid"] = false;
  overrides["latent_dim"] = int64_t{100};
  overrides["iterations"] = static_cast<int64_t>(generator_lrs.size());  // 1 update each
  auto made = test::make_generator(p.name, overrides);
  c->generator = made.generator;
  ardkit::DataSpec spec;
  spec.channels = 3;
  spec.height = spec.width = 32;
  spec.num_classes = 10;
  c->driver = std::make_unique<ardkit::DataFree>(*c->generator, made.options, *c->teacher,
                                                 *c->student, c->knobs, spec, kBatch, torch::kCPU);
  load_into(c->generator->network(),
            test::load_tensors(reference() / ("official_" + p.name + "_init.pt")));
  // The same start as the official run: a PyTorch that initialises differently fails here, and
  // then the reference needs regenerating, not the plugin fixing.
  for (auto& [prefix, module] : std::vector<std::pair<std::string, torch::nn::Module*>>{
           {"start.teacher.", c->teacher.get()},
           {"start.student.", c->student.get()},
           {"start.generator.", &c->generator->network()}}) {
    for (auto& t : module->named_parameters())
      check_tensor(r, prefix + t.key(), t.value(), 1e-7);
    for (auto& t : module->named_buffers())
      check_tensor(r, prefix + t.key(), t.value(), 1e-7);
  }
  const auto& o = c->driver->options();
  const int64_t steps = c->driver->steps_per_epoch();
  REQUIRE(static_cast<size_t>(steps) == lrs.size());
  REQUIRE(static_cast<size_t>(o.iterations * o.generator_steps) == generator_lrs.size());
  auto optimizer = p.optimizer(*c->student);
  int64_t updates = 0;
  // The generator's terms of the update just made, and the learning rate it used.
  auto check_update_terms = [&](int64_t s) {
    const auto& latest = c->driver->latest();
    for (const auto& [key, value] : r)
      if (key.rfind("gen.", 0) == 0) {
        const std::string key_shown = key;  // INFO cannot capture a binding (C++17)
        INFO(p.name << " update " << updates << " " << key_shown);
        REQUIRE(latest.count(key));
        CHECK(latest.at(key) == doctest::Approx(values(value).at(updates)).epsilon(p.tolerance));
      }
    INFO(p.name << " update " << updates);
    CHECK(o.lr * (o.lr_schedule == "follow" ? lrs[s] / lrs[0] : 1.0) ==
          doctest::Approx(generator_lrs.at(updates)));
    ++updates;
  };
  torch::manual_seed(kSeed);
  REQUIRE(c->driver->prepare_epoch(0));
  const int64_t k = o.student_steps;
  for (int64_t s = 0; s < steps; ++s) {
    INFO(p.name << " student step " << s);
    set_lr(*optimizer, lrs[s]);
    c->driver->set_lr_scale(lrs[s] / lrs[0]);
    const ardkit::Batch batch = c->driver->next_batch(0, s);
    if (o.order == "generator_first" && s % k == 0)
      for (int64_t g = 0; g < o.generator_steps; ++g)
        check_update_terms(s);
    check_tensor(r, "x." + std::to_string(s), batch.x, p.tolerance);
    ardkit::LossTerms loss = p.loss(*c, batch, s);
    c->driver->add_student_terms(loss, batch, 0);
    CHECK(loss.total.item<double>() ==
          doctest::Approx(values(r.at("student.loss")).at(s)).epsilon(p.tolerance));
    optimizer->zero_grad();
    loss.total.backward();
    if (p.student_clip > 0)
      torch::nn::utils::clip_grad_norm_(c->student->parameters(), p.student_clip);
    optimizer->step();
    c->driver->after_step(0, s);
    if (o.order == "student_first" && (s + 1) % k == 0)
      check_update_terms(s);
  }
  CHECK(updates == static_cast<int64_t>(generator_lrs.size()));
  for (auto& t : c->student->named_parameters())
    check_tensor(r, "student." + t.key(), t.value(), p.tolerance);
  for (auto& t : c->student->named_buffers())
    check_tensor(r, "student." + t.key(), t.value(), p.tolerance);
  // A conv bias right before a BatchNorm has no true gradient: Adam moves it by rounding noise,
  // within lr per step (run_official.py stores that bound).
  for (auto& t : c->generator->network().named_parameters()) {
    const auto loose = r.find("loose.generator." + t.key());
    check_tensor(r, "generator." + t.key(), t.value(),
                 loose == r.end() ? p.tolerance : loose->second.item<double>());
  }
  for (auto& t : c->generator->network().named_buffers())
    if (!r.count("skip.generator." + t.key()))
      check_tensor(r, "generator." + t.key(), t.value(), p.tolerance);
}

// The kd objective with T = 1 and alpha = 1: KL(softmax T || softmax S), reduced as `reduction`.
std::function<ardkit::LossTerms(Case&, const ardkit::Batch&, int64_t)> kd_loss(
    const std::string& reduction) {
  auto objective = std::shared_ptr<ardkit::Objective>(test::make<ardkit::Objective>(
      PluginKind::objective, "kd",
      {{"alpha", 1.0}, {"temperature", 1.0}, {"kl_reduction", reduction}}));
  auto knobs = std::make_shared<ardkit::Knobs>();
  objective->declare_knobs(*knobs);
  return [objective, knobs](Case& c, const ardkit::Batch& batch, int64_t step) {
    ardkit::StepContext context{*c.student, c.teacher.get(), nullptr, batch, 0, step, *knobs};
    return objective->compute(context);
  };
}

std::unique_ptr<torch::optim::Optimizer> adam(TapNet& student, double lr) {
  return std::make_unique<torch::optim::Adam>(student.parameters(), torch::optim::AdamOptions(lr));
}

}  // namespace

TEST_CASE("dafl: DAFL-train.py's own loop for 4 iterations (generator and KD student updates)") {
  // One backward per iteration through the generator's terms and the student's KD term on the
  // same images (detached): ardkit's generator_first / update_batch, the kd objective with T 1.
  replay({"dafl", {}, kd_loss("batchmean"), [](TapNet& s) { return adam(s, 2e-3); }});
}

TEST_CASE("dfad: DFAD_cifar.py's own train() for 2 iterations (5 student steps, 1 generator)") {
  // ardkit ships no L1 objective (its DFAD experiments distil with ARD or RSLAD): DFAD's student
  // loss, F.l1_loss(S(x), T(x)), is written here.
  replay({"dfad",
          {},
          [](Case& c, const ardkit::Batch& batch, int64_t) {
            const auto s = c.student->logits(batch.x);
            torch::Tensor t;
            {
              torch::NoGradGuard no_grad;
              t = c.teacher->logits(batch.x);
            }
            const auto l1 = torch::l1_loss(s, t);
            return ardkit::LossTerms{l1, {{"l1", l1.detach()}}};
          },
          [](TapNet& s) {
            return std::make_unique<torch::optim::SGD>(
                s.parameters(), torch::optim::SGDOptions(0.1).momentum(0.9).weight_decay(5e-4));
          }});
}

TEST_CASE("zskt: solver.py's own run() for 3 pseudo-batches (cosine lrs, clipped, attention)") {
  // Student: PyTorch's default KL reduction (elementwise mean) plus 250 x attention transfer,
  // Adam 2e-3 clipped at norm 5; the generator's lr follows the student's cosine.
  replay({"zskt", {}, kd_loss("elemmean"), [](TapNet& s) { return adam(s, 2e-3); }, 5.0});
}

TEST_CASE("ferd: Train_Gen_Module.train for 2 epochs of 3 updates (reset, IFD, class weights)") {
  // IBD_module_cmi.py's own train() twice, with test.py's update of the class probabilities in
  // between, on the CIFAR-shaped TapNets: the uniformity term perturbs the teacher's block (its
  // feature map before pooling, what pop = 3 is to FERD's WRN). kornia's crops and flips are
  // off on both sides (their draws are kornia's); the two fixes of the published label update
  // are the plugin's (ferd.cpp). Two warmup epochs: no student step, so the official's order of
  // random draws is the engine's.
  const auto r = test::load_tensors(official() / "ferd.pt");
  auto teacher = tap_net("official_teacher.pt", 3, 32, false);
  auto student = tap_net("official_student.pt", 3, 32, false);
  teacher->eval();
  for (auto& t : teacher->parameters())
    t.set_requires_grad(false);
  student->train();
  for (auto& [prefix, module] : std::vector<std::pair<std::string, torch::nn::Module*>>{
           {"start.teacher.", teacher.get()}, {"start.student.", student.get()}}) {
    for (auto& t : module->named_parameters())
      check_tensor(r, prefix + t.key(), t.value(), 1e-7);
    for (auto& t : module->named_buffers())
      check_tensor(r, prefix + t.key(), t.value(), 1e-7);
  }
  auto [generator, options] = test::make_generator("ferd", {{"synthesis_steps", int64_t{3}},
                                                            {"warmup_epochs", int64_t{2}},
                                                            {"sample_grid", false},
                                                            {"latent_dim", int64_t{100}},
                                                            {"synthesis_crop_padding", int64_t{0}},
                                                            {"synthesis_flip", false}});
  ardkit::DataSpec spec;
  spec.channels = 3;
  spec.height = spec.width = 32;
  spec.num_classes = 10;
  ardkit::Knobs knobs;
  ardkit::DataFree driver(*generator, options, *teacher, *student, knobs, spec, kBatch,
                          torch::kCPU);
  torch::manual_seed(kSeed);
  auto& net = generator->network();
  for (int64_t e = 0; e < 2; ++e) {
    INFO("epoch " << e);
    REQUIRE(driver.prepare_epoch(e));
    CHECK(driver.steps_in(e) == 0);
    // The last update's terms (train() returns those), the labels drawn, the best batch pooled.
    for (const char* term : {"loss", "bn", "adversarial", "one_hot", "uniformity"}) {
      INFO(term);
      CHECK(driver.latest().at(std::string("gen.") + term) ==
            doctest::Approx(values(r.at(std::string("gen.") + term)).at(e)).epsilon(1e-4));
    }
    CHECK(torch::equal(net.named_buffers()["targets"], r.at("labels." + std::to_string(e))));
    REQUIRE(driver.pool().size() == static_cast<size_t>(e + 1));
    // The second epoch's images pass float32 rounding through the first epoch's class weights
    // and three latent steps of 0.015: within 5e-4 of pixel range (2e-4 seen), where a wrong
    // term moves them by the order of the latent's step.
    check_tensor(r, "best." + std::to_string(e), driver.pool().back(), 5e-4);
    CHECK(max_diff(net.named_buffers()["label_prob"], r.at("label_prob." + std::to_string(e))) <
          5e-5);
  }
  CHECK(driver.generator_updates() == 6);
  // Six Adam updates carry PyTorch's and LibTorch's last-bit differences into the weights: up to
  // 1.7e-4 seen (a BatchNorm bias), where a wrong term moves them by the order of the lr, 1e-3.
  for (auto& t : net.named_parameters())
    if (t.key() != "z")
      check_tensor(r, "generator." + t.key(), t.value(), 3e-4);
  for (auto& t : net.named_buffers())
    if (t.key() != "targets" && t.key() != "label_prob")
      check_tensor(r, "generator." + t.key(), t.value(), 1e-4);
  // FERD's teacher and student stay in eval() during synthesis: no statistic moved.
  for (auto& t : teacher->named_buffers())
    CHECK(max_diff(t.value(), r.at("teacher." + t.key())) == 0);
  for (auto& t : student->named_buffers())
    CHECK(max_diff(t.value(), r.at("student." + t.key())) == 0);
  CHECK(student->is_training());
}

TEST_CASE("ferd: a teacher it cannot run on from, or a wrong ifd_tap, is a one-line error") {
  auto teacher = tap_net("teacher.pt");
  auto student = tap_net("student.pt");
  ardkit::DataSpec spec;
  spec.channels = 1;
  spec.height = spec.width = 8;
  spec.num_classes = 10;
  ardkit::GeneratorSetup setup{spec, torch::kCPU, kBatch, teacher.get(), student.get()};
  auto wrong = test::make<ardkit::Generator>(PluginKind::generator, "ferd",
                                             {{"ifd_tap", std::string("features")}});
  CHECK_THROWS_WITH_AS(wrong->setup(setup),
                       doctest::Contains("is not a 4-D feature map the teacher can run on from"),
                       ardkit::Error);
  // Without the uniformity term no tap is needed; with it the default is the last 4-D one.
  auto plain = test::make<ardkit::Generator>(PluginKind::generator, "ferd", {{"uni", 0.0}});
  CHECK_NOTHROW(plain->setup(setup));
  CHECK_THROWS_WITH_AS(teacher->forward_from("features", torch::zeros({1, 64})),
                       doctest::Contains("cannot run from tap 'features'; it can from: block"),
                       ardkit::Error);
}
