// Objective plugin `kd`: Hinton et al.'s knowledge distillation on clean inputs,
//   L = alpha T^2 KL(p_T^T(x) || p_S^T(x)) + (1 - alpha) CE(S(x), y)
// with batchmean KL (sum / B), the reduction for which T^2 keeps gradients comparable across
// temperatures. The non-robust distillation baseline (ARD's "plain KD" row).
// No official repository: checked against the port in tests/objectives/make_reference.py.
#include <ardkit/distill.hpp>

namespace {

using ardkit::Params;
namespace distill = ardkit::distill;

class Kd : public ardkit::Objective {
 public:
  explicit Kd(const Params& p)
      : alpha_(p.get_real("alpha")),
        temperature_(p.get_real("temperature")),
        reduction_(p.get_string("kl_reduction")) {}

  void declare_knobs(ardkit::Knobs& knobs) override {
    knobs.declare("temperature", temperature_, ardkit::KnobRange::above(0));
    knobs.declare("alpha", alpha_, ardkit::KnobRange::between(0, 1));
  }

  ardkit::LossTerms compute(ardkit::StepContext& c) override {
    const double t = c.knobs.get("temperature");
    const double alpha = c.knobs.get("alpha");
    const auto& x = c.batch.x;
    const auto logits = c.student.logits(x);
    const auto teacher_probs = torch::softmax(distill::teacher_logits(*c.teacher, x) / t, 1);
    const auto kl = distill::reduce(distill::kl_rows(teacher_probs, logits, t), reduction_,
                                    x.size(0), logits.size(1));
    const auto ce = torch::nn::functional::cross_entropy(logits, c.batch.y);
    return {alpha * t * t * kl + (1 - alpha) * ce, {{"kl", kl}, {"ce", ce}}};
  }

 private:
  double alpha_, temperature_;
  std::string reduction_;
};

ardkit::ParamSchema schema() {
  using namespace ardkit::param;
  return {
      real("alpha", 0.9).at_least(0).at_most(1).help("weight of the distillation term"),
      real("temperature", 4.0).greater_than(0).help("softmax temperature T (loss scaled by T^2)"),
      distill::kl_reduction_param("batchmean"),
  };
}

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest
      .add(ardkit::PluginKind::objective, "kd", "1.0.0",
           "Hinton knowledge distillation on clean inputs (non-robust baseline)", schema(),
           [](const Params& p, const ardkit::BuildContext&) { return std::make_shared<Kd>(p); })
      .needs({ardkit::Need::teacher, ardkit::Need::same_label_space});
}
