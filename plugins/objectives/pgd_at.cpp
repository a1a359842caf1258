// Objective plugin `pgd_at`: Madry et al.'s adversarial training, cross-entropy on adversarial
// examples from the [attack] plugin maximizing the student's cross-entropy. The variants set the
// [attack] defaults of the recipes the distillation papers train their teachers and baselines
// with: "rice" (Rice et al. / IAD's pre_train/AT.py: PGD-10, 2/255,
// uniform start clipped into [0,1]) and "adaad" (AdaAD's Plain_Madry in AT_helper.py: start
// x + 0.001 N(0, I), clipped into [0,1] before the first step). Both attack with BatchNorm in eval
// mode. Plain_Madry's step then runs the student in train mode on x' and, always, on x (its output
// only feeds an accuracy print, but the forward moves BatchNorm's running statistics), so that
// variant defaults to clean_forward = true. Their schedules live in the experiment files
// (experiments/cifar10/pgd_at.toml: piecewise 50%/75% counted as lr_schedule(epoch + 1);
// pgd_at_adaad.toml: multistep at 100 and 105 of 110 epochs).
// Checked against ZFancy/IAD@a8091a8c pre_train/AT.py and boyellow/AdaAD@9e5c6e5f Plain_Madry
// run as is (tests/objectives/official_reference, cases pgd_at, pgd_at_adaad*).
#include <ardkit/distill.hpp>

namespace {

using ardkit::Params;
namespace distill = ardkit::distill;

class PgdAt : public ardkit::Objective {
 public:
  explicit PgdAt(const Params& p)
      : bn_mode_(distill::bn_mode(p)),
        clean_weight_(p.get_real("clean_weight")),
        clean_forward_(p.get_bool("clean_forward")) {}

  ardkit::LossTerms compute(ardkit::StepContext& c) override {
    const auto x_adv = distill::attack_student(c, bn_mode_, ardkit::losses::cross_entropy());
    const auto adv_logits = c.student.logits(x_adv);
    auto adv = torch::nn::functional::cross_entropy(adv_logits, c.batch.y);
    if (clean_weight_ == 0.0) {
      if (clean_forward_) {
        torch::NoGradGuard no_grad;  // statistics only: the loss does not use it
        c.student.logits(c.batch.x);
      }
      return distill::publish_adversarial({adv, {{"adv_ce", adv}}}, x_adv, adv_logits);
    }
    auto clean = torch::nn::functional::cross_entropy(c.student.logits(c.batch.x), c.batch.y);
    return distill::publish_adversarial(
        {(1 - clean_weight_) * adv + clean_weight_ * clean, {{"adv_ce", adv}, {"clean_ce", clean}}},
        x_adv, adv_logits);
  }

 private:
  ardkit::BnMode bn_mode_;
  double clean_weight_;
  bool clean_forward_;
};

ardkit::ParamSchema schema() {
  using namespace ardkit::param;
  return {
      distill::bn_mode_param("eval", "eval: IAD/AdaAD code; train: Madry's"),
      string("variant", "rice")
          .one_of({"rice", "adaad"})
          .help("recipe whose [attack] defaults apply: rice (uniform start) or adaad (gaussian)"),
      real("clean_weight", 0.0)
          .at_least(0)
          .at_most(1)
          .help("weight of clean cross-entropy mixed in (0 = pure PGD-AT; 0.5 = Goodfellow's mix)"),
      boolean("clean_forward", false)
          .default_when("variant", "adaad", true)
          .help("with clean_weight 0, still run S(x) in train mode after S(x') (Plain_Madry "
                "does; it moves BatchNorm statistics)"),
  };
}

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest
      .add(ardkit::PluginKind::objective, "pgd_at", "1.0.0",
           "Madry PGD adversarial training: cross-entropy on [attack] examples", schema(),
           [](const Params& p, const ardkit::BuildContext&) { return std::make_shared<PgdAt>(p); })
      .needs({ardkit::Need::attack})
      .attack_defaults = [](const Params& p) {
    // Both recipes clip the random start into [0,1] before the first gradient.
    return p.get_string("variant") == "adaad" ? distill::pgd10_defaults("gaussian", true)
                                              : distill::pgd10_defaults("uniform", true);
  };
}
