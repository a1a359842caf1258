// Objective plugin `ard`: Adversarially Robust Distillation (Goldblum et al., AAAI 2020), as the
// official main.py computes it:
//   x' = [attack] maximizing the student's cross-entropy on the true labels, student in TRAIN mode
//        (BatchNorm batch statistics, running statistics updated on every iterate)
//   L  = alpha * T^2 * KL(p_T^T(x) || p_S^T(x')) + (1 - alpha) * CE(S(x), y)
// with the teacher on the clean input, elementwise-mean KL (PyTorch's KLDivLoss() default) and
// alpha = 1, T = 30. The student's clean forward runs even when alpha = 1, as in the official
// code, because it updates BatchNorm's running statistics. IAD's re-implementation (ARD.py) is
// kl_reduction = "batchmean", temperature = 1.
// Checked against goldblum/AdversariallyRobustDistillation@779ade36 main.py run as is
// (tests/objectives/official_reference, case ard).
#include <ardkit/distill.hpp>

namespace {

using ardkit::Params;
namespace distill = ardkit::distill;

class Ard : public ardkit::Objective {
 public:
  explicit Ard(const Params& p)
      : alpha_(p.get_real("alpha")),
        temperature_(p.get_real("temperature")),
        reduction_(p.get_string("kl_reduction")),
        bn_mode_(distill::bn_mode(p)) {}

  void declare_knobs(ardkit::Knobs& knobs) override {
    knobs.declare("temperature", temperature_, ardkit::KnobRange::above(0));
    knobs.declare("alpha", alpha_, ardkit::KnobRange::between(0, 1));
  }

  ardkit::LossTerms compute(ardkit::StepContext& c) override {
    const double t = c.knobs.get("temperature");
    const double alpha = c.knobs.get("alpha");
    const auto& x = c.batch.x;
    const auto& y = c.batch.y;
    const auto x_adv = distill::attack_student(c, bn_mode_, ardkit::losses::cross_entropy());
    // Forward order as in the official step: S(x'), T(x), S(x) (running statistics follow it).
    const auto adv_logits = c.student.logits(x_adv);
    const auto teacher_probs = torch::softmax(distill::teacher_logits(*c.teacher, x) / t, 1);
    const auto clean_logits = c.student.logits(x);
    const auto kl = distill::reduce(distill::kl_rows(teacher_probs, adv_logits, t), reduction_,
                                    x.size(0), adv_logits.size(1));
    const auto ce = torch::nn::functional::cross_entropy(clean_logits, y);
    return distill::publish_adversarial(
        {alpha * t * t * kl + (1 - alpha) * ce, {{"kl_adv", kl}, {"clean_ce", ce}}}, x_adv,
        adv_logits);
  }

 private:
  double alpha_, temperature_;
  std::string reduction_;
  ardkit::BnMode bn_mode_;
};

ardkit::ParamSchema schema() {
  using namespace ardkit::param;
  return {
      real("alpha", 1.0).at_least(0).at_most(1).help("weight of the distillation term"),
      real("temperature", 30.0).greater_than(0).help("softmax temperature T (loss scaled by T^2)"),
      distill::kl_reduction_param("elemmean"),
      distill::bn_mode_param("train", "train: the official code; eval: RSLAD/AdaAD's choice"),
  };
}

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest
      .add(ardkit::PluginKind::objective, "ard", "1.0.0",
           "ARD (Goldblum et al. 2020): teacher's clean soft labels on the student's CE "
           "adversarial examples",
           schema(),
           [](const Params& p, const ardkit::BuildContext&) { return std::make_shared<Ard>(p); })
      .needs({ardkit::Need::teacher, ardkit::Need::attack, ardkit::Need::same_label_space})
      .attack_defaults = [](const Params&) { return distill::pgd10_defaults("uniform", false); };
}
