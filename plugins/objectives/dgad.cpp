// Objective plugin `dgad`: Dynamic Guidance Adversarial Distillation (Park et al., ECCV 2024),
// as the official main.py (method DGAD) computes it:
//   x' = AdaAD's inner maximisation: KL(p_T(x') || p_S(x')), student in eval mode
//   M  = the samples the teacher misclassifies clean, m = |M|, B the batch
//   T~(x)  = T(x) with, on M, the true-class logit and the top logit exchanged
//   T~(x') = T(x') with, where the teacher is wrong on x', the true-class logit and the top
//            wrong one exchanged
//   L = (m / B) KL_M(T~(x) || S(x)) + ((B - m) / B) KL_notM(T~(x') || S(x'))
//       + beta MSE(softmax S(x'), softmax S(x))
// where KL_M is the per-sample KL summed over M and divided by m (over not-M: by B - m) and
// the MSE is averaged over all B x C entries (nn.MSELoss()). Student forwards in train mode:
// S(x), then S(x').
// Traps of the official code, documented rather than reproduced: B there is the nominal batch
// size (--bs), so the short last batch of an epoch has weights summing to less than 1 (here:
// the batch's own size); when the teacher misclassifies the whole batch, the adversarial term
// is 0 * (1 / 0) = NaN (here: 0); its MobileNetV2 branch has a misplaced parenthesis,
// 0.5 ((m / B) KL_M + (B - m) / B) KL_notM, that multiplies the adversarial term by the clean
// one (here every student gets the formula above).
// Checked against kunsaram01/DGAD@a0329c86 main.py train() run as is
// (tests/objectives/official_reference, cases dgad, dgad_3).
#include <ardkit/distill.hpp>

namespace {

using ardkit::Params;
namespace distill = ardkit::distill;

// `z` with, in the rows `rows`, the entries of classes y and `other` exchanged.
torch::Tensor exchange(const torch::Tensor& z, const torch::Tensor& y, const torch::Tensor& other,
                       const torch::Tensor& rows) {
  const auto yi = y.unsqueeze(1);
  const auto oi = other.unsqueeze(1);
  const auto zy = z.gather(1, yi);
  const auto zo = z.gather(1, oi);
  const auto r = rows.unsqueeze(1);
  auto out = z.clone();
  out.scatter_(1, yi, torch::where(r, zo, zy));
  out.scatter_(1, oi, torch::where(r, zy, zo));
  return out;
}

class Dgad : public ardkit::Objective {
 public:
  explicit Dgad(const Params& p)
      : beta_(p.get_real("alp_beta")),
        exchange_(p.get_bool("exchange")),
        bn_mode_(distill::bn_mode(p)) {}

  ardkit::LossTerms compute(ardkit::StepContext& c) override {
    const auto& x = c.batch.x;
    const auto& y = c.batch.y;
    const auto x_adv = distill::attack_student_and_teacher(c, bn_mode_);
    const auto clean_logits = c.student.logits(x);
    const auto adv_logits = c.student.logits(x_adv);
    const auto t_clean = distill::teacher_logits(*c.teacher, x);
    const auto t_adv = distill::teacher_logits(*c.teacher, x_adv);

    const auto wrong = t_clean.argmax(1) != y;  // M
    const auto no_rows = torch::zeros_like(wrong);
    const auto guided_clean = exchange(t_clean, y, t_clean.argmax(1), exchange_ ? wrong : no_rows);
    const auto others = t_adv.scatter(1, y.unsqueeze(1), -std::numeric_limits<float>::infinity());
    const auto [top_other, top_other_class] = others.max(1);
    const auto adv_wrong = t_adv.gather(1, y.unsqueeze(1)).squeeze(1) < top_other;
    const auto guided_adv = exchange(t_adv, y, top_other_class, exchange_ ? adv_wrong : no_rows);

    const auto lambda = wrong.to(clean_logits.scalar_type());
    const double batch = static_cast<double>(x.size(0));
    const double m = lambda.sum().item<double>();
    const auto kl_clean_rows = distill::kl_rows(torch::softmax(guided_clean, 1), clean_logits);
    const auto kl_adv_rows = distill::kl_rows(torch::softmax(guided_adv, 1), adv_logits);
    const auto kl_clean = (lambda * kl_clean_rows).sum() / (m + 1e-10);
    const auto kl_adv = batch - m > 0 ? ((1 - lambda) * kl_adv_rows).sum() / (batch - m)
                                      : torch::zeros({}, kl_adv_rows.options());
    const auto alp =
        torch::mse_loss(torch::softmax(adv_logits, 1), torch::softmax(clean_logits, 1));
    const auto total = (m / batch) * kl_clean + ((batch - m) / batch) * kl_adv + beta_ * alp;
    return distill::publish_adversarial({total,
                                         {{"kl_clean", kl_clean},
                                          {"kl_adv", kl_adv},
                                          {"alp", alp},
                                          {"teacher_wrong", torch::tensor(m / batch)}}},
                                        x_adv, adv_logits);
  }

 private:
  double beta_;
  bool exchange_;
  ardkit::BnMode bn_mode_;
};

ardkit::ParamSchema schema() {
  using namespace ardkit::param;
  return {
      real("alp_beta", 1.0)
          .at_least(0)
          .help("weight of the MSE between the student's clean and adversarial softmax "
                "(--ALP_beta)"),
      boolean("exchange", true)
          .help("exchange the teacher's true-class and top wrong logits where it is wrong "
                "(false: its logits as they are, the ablation without label swapping)"),
      distill::bn_mode_param("eval", "eval: the official code"),
  };
}

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest
      .add(ardkit::PluginKind::objective, "dgad", "1.0.0",
           "DGAD (Park et al. 2024): distil from x where the teacher is wrong clean, from x' "
           "elsewhere, with the teacher's wrong top logit and true-class logit exchanged",
           schema(),
           [](const Params& p, const ardkit::BuildContext&) { return std::make_shared<Dgad>(p); })
      .needs({ardkit::Need::teacher, ardkit::Need::attack, ardkit::Need::same_label_space})
      .attack_defaults = [](const Params&) { return distill::pgd10_defaults("gaussian", false); };
}
