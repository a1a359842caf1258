// The 2022-2025 methods (mtard, igdm, dgad, peeraid) against their official code, over one and
// several steps. run_official.py ran each official training loop (their own functions, at the
// commits official.json records) on make_reference.py's TinyNets, for one batch and for three
// steps (IGDM: two epochs of two batches, so its e / E ramp moves); here the same nets go
// through ardkit's objective with its own step() (PeerAiD updates its peer there), the attack
// built from the objective's defaults, and SGD. Adversarial examples of the last step, its loss
// and terms, and every weight and BatchNorm statistic of the student (and PeerAiD's peer) after
// the last step must agree.
#include <doctest/doctest.h>

#include <ardkit/ardkit.hpp>

#include "test_util.hpp"
#include "tiny_net.hpp"

using ardkit::PluginKind;
using objective_test::max_diff;
using objective_test::relative;
using objective_test::tiny;
using Values = std::map<std::string, ardkit::Value>;

namespace {

std::filesystem::path official() {
  return test::reference_dir("ARDKIT_OFFICIAL_REFERENCE_DIR");
}

// One method's run: the plugin, its parameters, and what it is wrapped around (igdm).
struct Method {
  std::string plugin;
  Values params;
  std::string inner;  // empty: not a wrapper
  Values inner_params;
  Values attack;  // replaces keys of the attack the objective's defaults build
  std::string batch = "batch";
};

// What `epochs` x `batches` ardkit steps gave.
struct Outcome {
  torch::Tensor x_adv;
  double eps = 0;
  ardkit::LossTerms loss;
  ardkit::StateDict student, peer;
};

std::shared_ptr<ardkit::Objective> build(const Method& m) {
  ardkit::BuildContext context;
  ardkit::PluginPart part;
  if (!m.inner.empty()) {
    part = {PluginKind::objective, m.inner,
            test::params_for(PluginKind::objective, m.inner, m.inner_params)};
    context.wrapped = &part;
  }
  return test::builtin().create<ardkit::Objective>(
      PluginKind::objective, m.plugin, test::params_for(PluginKind::objective, m.plugin, m.params),
      context);
}

std::shared_ptr<objective_test::Recording> attack_for(const Method& m) {
  // A wrapper attacks as the objective it wraps (the experiment loader does the same).
  const std::string& attacker = m.inner.empty() ? m.plugin : m.inner;
  const auto params = test::params_for(PluginKind::objective, attacker,
                                       m.inner.empty() ? m.params : m.inner_params);
  Values values;
  for (const auto& [k, v] :
       test::builtin().find(PluginKind::objective, attacker).info.attack_defaults(params))
    values[k] = v;
  for (const auto& [k, v] : m.attack)
    values[k] = v;
  return std::make_shared<objective_test::Recording>(
      test::make<ardkit::Attack>(PluginKind::attack, "pgd", values));
}

Outcome run(const Method& m, int64_t epochs, int64_t batches) {
  const auto batch_file = test::load_tensors(official() / (m.batch + ".pt"));
  ardkit::Batch batch;
  batch.x = batch_file.at("x");
  batch.y = batch_file.at("y");
  auto student = tiny(official() / "student.pt");
  auto teacher = tiny(official() / "teacher.pt");
  auto clean_teacher = tiny(official() / "clean_teacher.pt");
  auto peer = tiny(official() / "peer.pt");
  objective_test::freeze(*teacher);
  objective_test::freeze(*clean_teacher);
  auto objective = build(m);
  const auto& info = test::builtin().find(PluginKind::objective, m.plugin).info;
  const bool has_peer = std::count(info.roles.begin(), info.roles.end(), "companions.peer") > 0;
  ardkit::ObjectiveSetup setup;
  setup.epochs = epochs;
  setup.train_size = batch.x.size(0);
  setup.num_classes = setup.student_classes = setup.teacher_classes = 10;
  setup.student_features = setup.teacher_features = 64;
  objective->setup(setup);
  auto attack = attack_for(m);
  ardkit::Knobs knobs;
  objective->declare_knobs(knobs);
  const auto sgd = [](ardkit::Model& net) {
    return torch::optim::SGD(net.parameters(),
                             torch::optim::SGDOptions(0.1).momentum(0.9).weight_decay(2e-4));
  };
  auto optimizer = sgd(*student);
  auto peer_optimizer = sgd(*peer);
  ardkit::StepContext c{*student, teacher.get(), attack.get(), batch, 0, 0, knobs};
  c.optimizer = &optimizer;
  c.teachers = {{"clean", clean_teacher.get()}};
  if (has_peer) {
    c.teacher = nullptr;
    c.companions = {{"peer", peer.get()}};
    c.companion_optimizers = {{"peer", &peer_optimizer}};
  }
  torch::manual_seed(1234);
  Outcome out;
  for (int64_t e = 0; e < epochs; ++e) {
    for (int64_t b = 0; b < batches; ++b) {
      student->train();
      peer->train();
      c.epoch = e;
      out.loss = objective->step(c);
      c.step += 1;
    }
  }
  out.x_adv = attack->last;
  out.eps = attack->threat().eps;
  out.student = ardkit::model_state_dict(*student);
  if (has_peer)
    out.peer = ardkit::model_state_dict(*peer);
  return out;
}

// How far an outcome is from the reference CASE.pt, in its worst item relative to its
// tolerance: < 1 reproduces it.
double distance(const Outcome& o, const std::string& name, bool report) {
  const auto r = test::load_tensors(official() / (name + ".pt"));
  double worst = max_diff(o.x_adv, r.at("x_adv")) / 1e-6;
  const auto note = [&](const std::string& what, double d) {
    if (report) {
      CAPTURE(what);
      CHECK(d < 1);
    }
    worst = std::max(worst, d);
  };
  note("x_adv", worst);
  note("loss", relative(o.loss.total.item<double>(), r.at("loss").item<double>()) / 1e-5);
  for (const auto& [key, value] : r) {
    if (key.rfind("term.", 0) != 0)
      continue;
    const std::string term = key.substr(5);
    auto found = std::find_if(o.loss.terms.begin(), o.loss.terms.end(),
                              [&](const auto& t) { return t.first == term; });
    REQUIRE_MESSAGE(found != o.loss.terms.end(), "the plugin reports no term " << term);
    note("term " + term, relative(found->second.item<double>(), value.item<double>()) / 1e-5);
  }
  size_t compared = 0;
  const auto compare = [&](const ardkit::StateDict& state, const std::string& prefix) {
    for (const auto& [key, value] : state) {
      REQUIRE_MESSAGE(r.count(prefix + key), "the reference has no " << prefix << key);
      note(prefix + key, max_diff(value, r.at(prefix + key)) / 2e-5);
      ++compared;
    }
  };
  compare(o.student, "after.");
  compare(o.peer, "peer_after.");
  if (report)
    CHECK(compared == (o.peer.empty() ? 9u : 18u));  // conv, fc, BatchNorm's five, per net
  return worst;
}

const auto s = [](const char* v) { return ardkit::Value(std::string(v)); };

// igdm.py as published: AdaAD's adversarial KL as the base (batchmean, no clean forward), its
// inner attack with step 8/255 in a 2/255 ball, E = 200 constant; alpha 50 so the term counts.
Method igdm_official() {
  return {"igdm",
          {{"alpha", 50.0}, {"ramp_epochs", int64_t{200}}},
          "adaad",
          {{"alpha", 1.0}, {"kl_reduction", s("batchmean")}, {"clean_forward", false}},
          {{"eps", 2.0 / 255}, {"step_size", 8.0 / 255}}};
}

Method peeraid_official() {
  return {"peeraid", {{"ce_weight", 0.5}}};  // lambda1 0.5, so the CE term counts
}

Method dgad_official() {
  Method m{"dgad", {}};
  m.batch = "batch_dgad";  // the teacher right on half of it, so both groups count
  return m;
}

}  // namespace

TEST_CASE("mtard, igdm, dgad and peeraid reproduce their official training loops") {
  struct Case {
    std::string reference;
    Method method;
    int64_t epochs, batches;
  };
  const std::vector<Case> cases = {
      {"mtard", {"mtard", {}}, 1, 1},        {"mtard_3", {"mtard", {}}, 1, 3},
      {"igdm", igdm_official(), 1, 1},       {"igdm_3", igdm_official(), 2, 2},
      {"dgad", dgad_official(), 1, 1},       {"dgad_3", dgad_official(), 1, 3},
      {"peeraid", peeraid_official(), 1, 1}, {"peeraid_3", peeraid_official(), 1, 3},
  };
  for (const auto& c : cases) {
    CAPTURE(c.reference);
    const Outcome o = run(c.method, c.epochs, c.batches);
    distance(o, c.reference, /*report=*/true);
    // Inside the ball, and actually moved.
    const auto x = test::load_tensors(official() / (c.method.batch + ".pt")).at("x");
    CHECK((o.x_adv - x).abs().max().item<double>() <= o.eps + 1e-6);
    CHECK(max_diff(o.x_adv, x) > 1e-3);
  }
}

TEST_CASE("the newer methods' comparisons fail on plausible mistakes") {
  // Each mistake must move the outcome outside the tolerance, or the comparison above would
  // not show that the plugin gets it right.
  struct Mistake {
    std::string what, reference;
    Method method;
    int64_t epochs, batches;
  };
  auto igdm_papers_attack = igdm_official();
  igdm_papers_attack.attack = {};  // the papers' 8/255 ball, step 2/255
  auto igdm_clean_forward = igdm_official();
  igdm_clean_forward.inner_params["clean_forward"] = true;
  auto igdm_elemmean = igdm_official();
  igdm_elemmean.params["kl_reduction"] = s("elemmean");
  auto igdm_run_epochs = igdm_official();
  igdm_run_epochs.params["ramp_epochs"] = int64_t{0};  // E = the run's 2 epochs, not 200
  auto dgad_no_exchange = dgad_official();
  dgad_no_exchange.params["exchange"] = false;
  auto dgad_train_mode = dgad_official();
  dgad_train_mode.params["attack_bn_mode"] = s("train");
  const std::vector<Mistake> mistakes = {
      {"IGDM with the papers' attack instead of igdm.py's swapped one", "igdm", igdm_papers_attack,
       1, 1},
      {"IGDM over an AdaAD that also forwards S(x)", "igdm_3", igdm_clean_forward, 2, 2},
      {"IGDM's KL averaged over classes too", "igdm", igdm_elemmean, 1, 1},
      {"IGDM ramped over the run's epochs, not igdm.py's 200", "igdm_3", igdm_run_epochs, 2, 2},
      {"MTARD's balance frozen at 1/2", "mtard_3", {"mtard", {{"balance_rate", 0.0}}}, 1, 3},
      {"MTARD with batchmean KL", "mtard", {"mtard", {{"kl_scale", 10.0}}}, 1, 1},
      {"DGAD without exchanging the wrong teacher's logits", "dgad", dgad_no_exchange, 1, 1},
      {"DGAD attacking in train mode", "dgad", dgad_train_mode, 1, 1},
      {"PeerAiD without the temperature factor",
       "peeraid",
       {"peeraid", {{"ce_weight", 0.5}, {"temperature", 1.0}}},
       1,
       1},
      {"PeerAiD with lambda1 = 0 (the README's CIFAR-10 value, not this case's)",
       "peeraid",
       {"peeraid", {}},
       1,
       1},
      {"PeerAiD's peer without the student's KL",
       "peeraid_3",
       {"peeraid", {{"ce_weight", 0.5}, {"peer_kl_weight", 0.0}}},
       1,
       3},
  };
  for (const auto& m : mistakes) {
    CAPTURE(m.what);
    CHECK(distance(run(m.method, m.epochs, m.batches), m.reference, /*report=*/false) >= 1);
  }
}

TEST_CASE("igdm refuses to wrap an objective that publishes no adversarial examples") {
  Method m{"igdm", {}, "kd", {}};
  auto objective = build(m);
  const auto batch_file = test::load_tensors(official() / "batch.pt");
  ardkit::Batch batch;
  batch.x = batch_file.at("x");
  batch.y = batch_file.at("y");
  auto student = tiny(official() / "student.pt");
  auto teacher = tiny(official() / "teacher.pt");
  objective_test::freeze(*teacher);
  ardkit::Knobs knobs;
  objective->declare_knobs(knobs);
  ardkit::StepContext c{*student, teacher.get(), nullptr, batch, 0, 0, knobs};
  try {
    objective->compute(c);
    FAIL("igdm over kd computed a loss");
  } catch (const std::exception& e) {
    const std::string message = e.what();
    CHECK(message.find("igdm needs the output \"x_adv\"") != std::string::npos);
    CHECK(message.find("adaad, rslad") != std::string::npos);
  }
}
