// Hook plugin `ita`: Interactive Temperature Adjustment, DFARD's plug-and-play temperature
// strategy (Wang et al., "Out of Thin Air: Exploring Data-Free Adversarial Robustness
// Distillation", AAAI 2024). The paper says ITA adjusts the distillation temperature once per
// epoch from the student-teacher interaction to find "more suitable training objectives"; the
// paper is public but its full text was not available to us and no code is released, so the rule
// is ardkit's derivation, every choice a parameter:
//
//   1. At the end of every `every`-th epoch, draw `samples` training inputs x (synthetic ones in
//      a data-free run), label them with the teacher, and attack the student with the run's
//      [attack] (eval-mode BatchNorm, cross-entropy to the teacher's labels): x'.
//   2. Measure how well the student follows the teacher, s in [0,1]:
//        adversarial_agreement  fraction of x' where argmax S(x') = argmax T(x)   (default)
//        clean_agreement        fraction of x where argmax S(x) = argmax T(x)
//        kl                     exp(-KL(softmax T(x) || softmax S(x'))) (batchmean, T = 1)
//   3. Target temperature tau* = tau_min + (tau_max - tau_min) * s (direction = "rising"; the
//      control "falling" reverses it: tau* = tau_max - (tau_max - tau_min) * s), and move the
//      knob part way: tau <- tau + rate * (tau* - tau), clamped to [tau_min, tau_max].
//
// Why this direction: while the student cannot even follow the teacher's top-1 class on
// adversarial inputs (s small), a low temperature keeps the soft labels sharp and the gradient on
// the decision itself; once it follows (s large), a higher temperature exposes the teacher's
// relative class similarities — the information that scarce, synthetic data carries least of.
// `rate` smooths the epoch-to-epoch noise of a measurement on a few hundred samples. The knob
// is checkpointed, so a resumed run continues from the adjusted value.
#include <fmt/format.h>

#include <ardkit/ardkit.hpp>
#include <ardkit/progress.hpp>

namespace {

using ardkit::Params;

class Ita : public ardkit::Hook {
 public:
  explicit Ita(const Params& p)
      : knob_(p.get_string("knob")),
        signal_(p.get_string("signal")),
        falling_(p.get_string("direction") == "falling"),
        tau_min_(p.get_real("tau_min")),
        tau_max_(p.get_real("tau_max")),
        rate_(p.get_real("rate")),
        samples_(p.get_int("samples")),
        every_(p.get_int("every")) {
    if (tau_min_ > tau_max_)
      ardkit::throw_config_error(p.origin("tau_min") + ": [hook] tau_min must not exceed tau_max");
  }

  std::vector<std::string> knobs() const override {
    return {knob_};
  }
  void check_knobs(const ardkit::Knobs& declared) const override {
    if (!declared.has(knob_))
      ardkit::throw_config_error(fmt::format(
          "ita adjusts the knob '{}', which the objective does not declare; use an objective "
          "with a temperature (ard, rslad, kd, iad) or set knob",
          knob_));
    const ardkit::KnobRange& range = declared.range(knob_);
    for (const double end : {tau_min_, tau_max_})
      if (!range.contains(end))
        ardkit::throw_config_error(fmt::format(
            "ita keeps the knob '{}' in [tau_min, tau_max], but {} is outside its range {}", knob_,
            end, range.text()));
  }

  void on_train_start(const ardkit::HookEvent& event, ardkit::Knobs&) override {
    if (!event.teacher)
      ardkit::throw_config_error(
          "[[hook]] ita measures the student against a teacher: add a "
          "[teacher] table");
    if (signal_ != "clean_agreement" && !event.attack)
      ardkit::throw_config_error("[[hook]] ita signal '" + signal_ +
                                 "' attacks the student: add an [attack] table or use "
                                 "signal = \"clean_agreement\"");
  }

  void on_epoch_end(const ardkit::HookEvent& event, ardkit::Knobs& knobs) override {
    if ((event.epoch + 1) % every_ != 0 || !event.draw)
      return;
    const ardkit::Batch batch = event.draw(samples_);
    const double s = measure(event, batch);
    const double tau = knobs.get(knob_);
    knobs.set(knob_, next_temperature(tau, s));
    if (event.report) {
      (*event.report)["ita.signal"] = s;
      (*event.report)["ita." + knob_] = knobs.get(knob_);
    }
    ardkit::log_line(fmt::format("ita: {} {:.3f} -> {} {:.3f} (was {:.3f})", signal_, s, knob_,
                                 knobs.get(knob_), tau));
  }

  // The documented rule, on its own so tests can check it.
  double next_temperature(double tau, double s) const {
    const double target = tau_min_ + (tau_max_ - tau_min_) * (falling_ ? 1.0 - s : s);
    return std::clamp(tau + rate_ * (target - tau), tau_min_, tau_max_);
  }

 private:
  double measure(const ardkit::HookEvent& event, const ardkit::Batch& batch) const {
    ardkit::Model& student = *event.student;
    ardkit::Model& teacher = *event.teacher;
    torch::Tensor teacher_logits;
    {
      torch::NoGradGuard no_grad;
      teacher_logits = teacher.logits(batch.x);
    }
    const auto labels = teacher_logits.argmax(1);
    ardkit::BnModeGuard eval(student, ardkit::BnMode::eval);
    torch::NoGradGuard no_grad;
    if (signal_ == "clean_agreement")
      return student.logits(batch.x).argmax(1).eq(labels).to(torch::kDouble).mean().item<double>();
    ardkit::AttackTarget target;
    target.model = &student;
    target.bn_mode = ardkit::BnMode::eval;
    torch::Tensor x_adv;
    {
      torch::AutoGradMode grad(true);  // attacks need input gradients
      x_adv = event.attack->perturb(target, batch.x, labels).detach();
    }
    const auto adv_logits = student.logits(x_adv);
    if (signal_ == "adversarial_agreement")
      return adv_logits.argmax(1).eq(labels).to(torch::kDouble).mean().item<double>();
    const auto kl = torch::kl_div(torch::log_softmax(adv_logits, 1),
                                  torch::softmax(teacher_logits, 1), at::Reduction::Sum) /
                    batch.x.size(0);
    return std::exp(-kl.item<double>());
  }

  std::string knob_, signal_;
  bool falling_;
  double tau_min_, tau_max_, rate_;
  int64_t samples_, every_;
};

ardkit::ParamSchema schema() {
  using namespace ardkit::param;
  return {
      string("knob", "temperature").help("the temperature knob the objective reads"),
      string("signal", "adversarial_agreement")
          .one_of({"adversarial_agreement", "clean_agreement", "kl"})
          .help("how closely the student follows the teacher, in [0,1]"),
      string("direction", "rising")
          .one_of({"rising", "falling"})
          .help("rising: the temperature rises as the student follows (tau_min at s = 0, tau_max "
                "at s = 1); falling: the reversed mapping, a control for the direction"),
      real("tau_min", 1.0).greater_than(0).help("the lowest temperature (s = 0 when rising)"),
      real("tau_max", 8.0).greater_than(0).help("the highest temperature (s = 1 when rising)"),
      real("rate", 0.5)
          .greater_than(0)
          .at_most(1)
          .help("fraction of the way to the target temperature moved per adjustment"),
      integer("samples", 256).at_least(1).help("inputs drawn per measurement"),
      integer("every", 1).at_least(1).help("adjust after every N-th epoch"),
  };
}

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest.add(ardkit::PluginKind::hook, "ita", "1.0.0",
               "DFARD's interactive temperature adjustment (a derivation): moves the "
               "temperature knob by how well the student follows the teacher",
               schema(), [](const Params& p, const ardkit::BuildContext&) {
                 return std::make_shared<Ita>(p);
               });
}
