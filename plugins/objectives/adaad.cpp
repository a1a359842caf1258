// Objective plugin `adaad`: Adaptive Adversarial Distillation (Huang et al., CVPR 2023), as the
// official main.py / AT_helper.py compute it:
//   x' = [attack] maximizing KL(p_T(x') || p_S(x')): the teacher sees the adversarial input too,
//        and the attack's input gradient flows through both models (teacher frozen, eval mode;
//        student in EVAL mode)
//   L  = alpha KL(p_T(x') || p_S(x')) + (1 - alpha) KL(p_T(x) || p_S(x)),   alpha = 1
// Student forwards in train mode: S(x), then S(x'). KL: elementwise mean (the CIFAR-10 branch);
// the CIFAR-100 branch is kl_reduction = "batchmean". The official argparse default radius is
// 16/255 (step 4/255); its README commands, and these defaults, use 8/255 and 2/255.
// clean_forward = false with alpha = 1 skips S(x) and T(x), whose term has weight 0: main.py
// still runs S(x) (BatchNorm's running statistics see the clean batch), the AdaAD base of
// HongsinLee/saad's igdm.py does not (experiments/*/igdm.toml).
// Checked against boyellow/AdaAD@9e5c6e5f main.py / AT_helper.py run as is
// (tests/objectives/official_reference, cases adaad, adaad_cifar100).
#include <ardkit/distill.hpp>

namespace {

using ardkit::Params;
namespace distill = ardkit::distill;

class AdaAd : public ardkit::Objective {
 public:
  explicit AdaAd(const Params& p)
      : alpha_(p.get_real("alpha")),
        reduction_(p.get_string("kl_reduction")),
        bn_mode_(distill::bn_mode(p)),
        clean_forward_(p.get_bool("clean_forward")) {}

  ardkit::LossTerms compute(ardkit::StepContext& c) override {
    const auto& x = c.batch.x;
    ardkit::Model& student = c.student;
    ardkit::Model& teacher = *c.teacher;
    const auto x_adv = distill::attack_student_and_teacher(c, bn_mode_);
    const bool clean = clean_forward_ || alpha_ < 1;
    const auto clean_logits = clean ? student.logits(x) : torch::Tensor();
    const auto adv_logits = student.logits(x_adv);
    const auto kl = [&](const torch::Tensor& input, const torch::Tensor& logits) {
      const auto probs = torch::softmax(distill::teacher_logits(teacher, input), 1);
      return distill::reduce(distill::kl_rows(probs, logits), reduction_, x.size(0),
                             logits.size(1));
    };
    const auto kl_adv = kl(x_adv, adv_logits);
    if (!clean)
      return distill::publish_adversarial({kl_adv, {{"kl_adv", kl_adv}}}, x_adv, adv_logits);
    const auto kl_clean = kl(x, clean_logits);
    return distill::publish_adversarial(
        {alpha_ * kl_adv + (1 - alpha_) * kl_clean, {{"kl_adv", kl_adv}, {"kl_clean", kl_clean}}},
        x_adv, adv_logits);
  }

 private:
  double alpha_;
  std::string reduction_;
  ardkit::BnMode bn_mode_;
  bool clean_forward_;
};

ardkit::ParamSchema schema() {
  using namespace ardkit::param;
  return {
      real("alpha", 1.0).at_least(0).at_most(1).help("weight of the adversarial KL term"),
      distill::kl_reduction_param("elemmean"),
      distill::bn_mode_param("eval", "eval: the official code"),
      boolean("clean_forward", true)
          .help("forward S(x) even when its term has weight 0 (alpha = 1), as main.py does; "
                "false: as the AdaAD base of IGDM's igdm.py"),
  };
}

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest
      .add(ardkit::PluginKind::objective, "adaad", "1.0.0",
           "AdaAD (Huang et al. 2023): teacher and student both on x', the attack maximizing "
           "their KL",
           schema(),
           [](const Params& p, const ardkit::BuildContext&) { return std::make_shared<AdaAd>(p); })
      .needs({ardkit::Need::teacher, ardkit::Need::attack, ardkit::Need::same_label_space})
      .attack_defaults = [](const Params&) { return distill::pgd10_defaults("gaussian", false); };
}
