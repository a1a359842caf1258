// Objective plugin `ferd`: the student step of FERD (Fairness-Enhanced Data-Free Robustness
// Distillation; official code mayaobuduyao/FERD@c975d9e1, test.py `train_model_ds_at`, losses.py
// `dkl_loss`, query_sample.py `generate_adv`), on whatever batches the run feeds it (in FERD:
// the pool of synthesised batches, cropped and flipped):
//   t     = T(x), the frozen teacher on the clean batch
//   x'    = [attack] maximizing sum_i KL(softmax t_i || softmax S(x'_i)), student in EVAL mode,
//           start x + 0.001 N(0, I) unclipped, 10 steps of 2/255 in the 8/255 ball
//   L     = clean_weight * dkl(S(x), t) + adv_weight * dkl(S(x'), t)        (5/6 and 1/6)
//   dkl   = FERD's dkl_loss (ferd_dkl.hpp)
// The official student step passes its class prior (GI=True): q = one-hot of the batch's labels
// (`prior = "labels"`), whose outer product is nonzero only on the diagonal, where both
// differences are 0, so the pairwise term vanishes and the loss is soft cross-entropy, exactly;
// `prior = "teacher"` (q = softmax(t / t2)^gamma, the generator's form) keeps it. The student
// runs S(x) in train mode before the attack and S(x') after it, so its BatchNorm statistics see
// the clean batch first, as the official step's.
// Checked against the official functions run as is (tests/objectives/official_reference, case
// ferd).
#include <ardkit/distill.hpp>

#include "ferd_dkl.hpp"

namespace {

using ardkit::Params;
namespace distill = ardkit::distill;

class Ferd : public ardkit::Objective {
 public:
  explicit Ferd(const Params& p)
      : clean_weight_(p.get_real("clean_weight")),
        adv_weight_(p.get_real("adv_weight")),
        teacher_prior_(p.get_string("prior") == "teacher"),
        gamma_(p.get_real("gamma")),
        t2_(p.get_real("t2")),
        bn_mode_(distill::bn_mode(p)) {}

  ardkit::LossTerms compute(ardkit::StepContext& c) override {
    const auto& x = c.batch.x;
    const auto teacher = distill::teacher_logits(*c.teacher, x);
    const auto clean = c.student.logits(x);
    const auto x_adv =
        distill::attack_student(c, bn_mode_, ardkit::losses::kl_to(torch::softmax(teacher, 1)));
    const auto adv = c.student.logits(x_adv);
    const auto q = prior(teacher, c.batch.y);
    const auto dkl_clean = ardkit_ferd::dkl(clean, teacher, q);
    const auto dkl_adv = ardkit_ferd::dkl(adv, teacher, q);
    return {clean_weight_ * dkl_clean + adv_weight_ * dkl_adv,
            {{"dkl_clean", dkl_clean}, {"dkl_adv", dkl_adv}}};
  }

 private:
  // q of p = q q^T: the labels' one-hot (the official student step) or the teacher's tempered
  // softmax; constant either way (the official computes it under no_grad or from the teacher).
  torch::Tensor prior(const torch::Tensor& teacher, const torch::Tensor& y) const {
    if (teacher_prior_)
      return torch::softmax(teacher / t2_, 1).pow(gamma_);
    return torch::one_hot(y.to(torch::kLong), teacher.size(1)).to(teacher.dtype()).pow(gamma_);
  }

  double clean_weight_, adv_weight_;
  bool teacher_prior_;
  double gamma_, t2_;
  ardkit::BnMode bn_mode_;
};

ardkit::ParamSchema schema() {
  using namespace ardkit::param;
  return {
      real("clean_weight", 5.0 / 6.0).at_least(0).help("weight of dkl(S(x), T(x))"),
      real("adv_weight", 1.0 / 6.0).at_least(0).help("weight of dkl(S(x'), T(x))"),
      string("prior", "labels")
          .one_of({"labels", "teacher"})
          .help("the pairwise term's weights q q^T: the labels' one-hot (the official student "
                "step; the term then vanishes) or softmax(T(x) / t2)^gamma"),
      real("gamma", 1.0).greater_than(0).help("exponent on q"),
      real("t2", 100.0).greater_than(0).help("prior = \"teacher\": the softmax temperature"),
      distill::bn_mode_param("eval", "eval: the official generate_adv"),
  };
}

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest
      .add(ardkit::PluginKind::objective, "ferd", "1.0.0",
           "FERD's student step (mayaobuduyao/FERD): 5/6 dkl(S(x), T(x)) + 1/6 dkl(S(x'), T(x)) "
           "with x' maximizing KL to the teacher",
           schema(),
           [](const Params& p, const ardkit::BuildContext&) { return std::make_shared<Ferd>(p); })
      .needs({ardkit::Need::teacher, ardkit::Need::attack, ardkit::Need::same_label_space})
      .attack_defaults = [](const Params&) { return distill::pgd10_defaults("gaussian", false); };
}
