// Objective plugin `rslad`: Robust Soft Label Adversarial Distillation (Zi et al., ICCV 2021), as
// the official scripts compute it:
//   z_T = T(x) once per batch
//   x'  = [attack] maximizing KL(softmax(z_T) || p_S(x')), student in EVAL mode
//   L   = 5/6 * KL(softmax(z_T) || p_S(x')) + 1/6 * KL(softmax(z_T) || p_S(x))
// with the official KL, b * (log(b + 1e-5) - log_softmax(S)) (the 1e-5 changes the value, not
// the gradient), averaged over all B*C entries. Both student forwards run in train mode: S(x')
// then S(x).
//
// The CIFAR-100 scripts differ in three ways, each a parameter: both terms are multiplied by 10
// (kl_scale = 10); the student's log-probabilities are torch.log(F.softmax(z)) rather than
// F.log_softmax(z) (student_log = "log_of_softmax": equal until a probability underflows, then
// log(0) = -inf where log_softmax stays finite); and the teacher runs after `teacher.half()`
// (teacher_precision = "half"): its logits, the soft labels softmax(z_T) and the teacher's part of
// the KL, log(b + 1e-5) * b, are float16 tensors. ardkit rounds each of those results to float16
// as a CUDA half tensor holds them; the teacher network itself still computes in float32 (CPU
// LibTorch has no float16 convolutions or softmax), so the rounding inside it is not reproduced.
// `temperature` T (a knob, default 1 = the official loss) softens both distributions of the outer
// KL terms, scaled by T^2 as in Hinton's KD, so a temperature strategy (DFARD's ITA hook) can drive
// RSLAD; the attack keeps the official T = 1 soft labels.
// Checked against zibojia/RSLAD@c40e04f6 (rslad_loss.py and both training loops) run as is
// (tests/objectives/official_reference, cases rslad, rslad_cifar100).
#include <ardkit/distill.hpp>

namespace {

using ardkit::Params;
namespace distill = ardkit::distill;

class Rslad : public ardkit::Objective {
 public:
  explicit Rslad(const Params& p)
      : adv_weight_(p.get_real("adv_weight")),
        clean_weight_(p.get_real("clean_weight")),
        scale_(p.get_real("kl_scale")),
        log_eps_(p.get_real("log_eps")),
        reduction_(p.get_string("kl_reduction")),
        bn_mode_(distill::bn_mode(p)),
        half_(p.get_string("teacher_precision") == "half"),
        log_of_softmax_(p.get_string("student_log") == "log_of_softmax"),
        temperature_(p.get_real("temperature")) {}

  void declare_knobs(ardkit::Knobs& knobs) override {
    knobs.declare("temperature", temperature_, ardkit::KnobRange::above(0));
  }

  ardkit::LossTerms compute(ardkit::StepContext& c) override {
    const auto& x = c.batch.x;
    // In float16 mode every teacher-side result is rounded as a half tensor would hold it.
    const auto r = [this](const torch::Tensor& t) {
      return half_ ? t.to(torch::kHalf).to(torch::kFloat) : t;
    };
    const double t = c.knobs.get("temperature");
    const auto teacher_z = distill::teacher_logits(*c.teacher, x);
    const auto attack_probs = r(torch::softmax(r(teacher_z), 1));
    const auto teacher_probs = t == 1.0 ? attack_probs : r(torch::softmax(r(teacher_z / t), 1));
    const auto teacher_part =
        half_ ? r(r(torch::log(r(teacher_probs + log_eps_))) * teacher_probs) : torch::Tensor();
    const auto x_adv = distill::attack_student(c, bn_mode_, ardkit::losses::kl_to(attack_probs));
    const auto adv_logits = c.student.logits(x_adv);
    const auto clean_logits = c.student.logits(x);
    const auto kl = [&](const torch::Tensor& student_z) {
      const auto logits = t == 1.0 ? student_z : student_z / t;
      const auto log_q =
          log_of_softmax_ ? torch::log(torch::softmax(logits, 1)) : torch::log_softmax(logits, 1);
      // The official kl_loss(a, b) = -a*b + log(b + 1e-5)*b; in float32 as one product, so the
      // default path rounds exactly as it always has.
      const auto entries = half_ ? -log_q * teacher_probs + teacher_part
                                 : teacher_probs * (torch::log(teacher_probs + log_eps_) - log_q);
      return t * t * scale_ * distill::reduce(entries, reduction_, x.size(0), logits.size(1));
    };
    const auto kl_adv = kl(adv_logits);
    const auto kl_clean = kl(clean_logits);
    return distill::publish_adversarial({adv_weight_ * kl_adv + clean_weight_ * kl_clean,
                                         {{"kl_adv", kl_adv}, {"kl_clean", kl_clean}}},
                                        x_adv, adv_logits);
  }

 private:
  double adv_weight_, clean_weight_, scale_, log_eps_;
  std::string reduction_;
  ardkit::BnMode bn_mode_;
  bool half_, log_of_softmax_;
  double temperature_;
};

ardkit::ParamSchema schema() {
  using namespace ardkit::param;
  return {
      real("adv_weight", 5.0 / 6).at_least(0).help("weight of KL(T(x) || S(x'))"),
      real("clean_weight", 1.0 / 6).at_least(0).help("weight of KL(T(x) || S(x))"),
      real("kl_scale", 1.0).greater_than(0).help("factor on both terms (CIFAR-100 scripts: 10)"),
      real("log_eps", 1e-5).at_least(0).help("the official KL's log(b + eps) (value only)"),
      distill::kl_reduction_param("elemmean"),
      distill::bn_mode_param("eval", "eval: the official code"),
      string("teacher_precision", "float")
          .one_of({"float", "half"})
          .help("half: the teacher's logits and soft labels rounded to float16 (CIFAR-100 "
                "scripts' teacher.half())"),
      string("student_log", "log_softmax")
          .one_of({"log_softmax", "log_of_softmax"})
          .help("the student's log-probabilities: log_softmax(z), or log(softmax(z)) as the "
                "CIFAR-100 scripts"),
      real("temperature", 1.0)
          .greater_than(0)
          .help("softmax temperature T of the outer KL terms (scaled by T^2; 1 = official); "
                "the knob a temperature hook moves"),
  };
}

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest
      .add(ardkit::PluginKind::objective, "rslad", "1.0.0",
           "RSLAD (Zi et al. 2021): the teacher's clean soft labels as attack target and as "
           "labels of clean and adversarial inputs",
           schema(),
           [](const Params& p, const ardkit::BuildContext&) { return std::make_shared<Rslad>(p); })
      .needs({ardkit::Need::teacher, ardkit::Need::attack, ardkit::Need::same_label_space})
      .attack_defaults = [](const Params&) { return distill::pgd10_defaults("gaussian", false); };
}
