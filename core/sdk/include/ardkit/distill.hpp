// Pieces shared by the distillation objectives (header-only: each objective stays one library).
// The KL reduction is a parameter everywhere because the official codes differ and it changes
// training at a fixed learning rate (RSLAD's README discusses it): `sum` over batch and classes,
// `batchmean` = sum / B (TRADES, IAD, AdaAD on CIFAR-100), `elemmean` = sum / (B*C) (PyTorch's
// KLDivLoss() default: ARD, RSLAD, AdaAD on CIFAR-10).
#pragma once
#include <ardkit/ardkit.hpp>

namespace ardkit::distill {

inline ParamSpec kl_reduction_param(const std::string& fallback) {
  return param::string("kl_reduction", fallback)
      .one_of({"elemmean", "batchmean", "sum"})
      .help("KL reduction: sum / B*C (PyTorch KLDivLoss() default), sum / B, or sum");
}

// Reduces per-entry or per-sample KL values of a [B, C] problem.
inline torch::Tensor reduce(const torch::Tensor& values, const std::string& reduction,
                            int64_t batch, int64_t classes) {
  const auto total = values.sum();
  if (reduction == "sum")
    return total;
  if (reduction == "batchmean")
    return total / static_cast<double>(batch);
  return total / static_cast<double>(batch * classes);
}

// KL(p || softmax(logits / T)) per sample, [B]: p log p - p log q summed over classes, with 0 log 0
// = 0 as PyTorch's KLDivLoss. `p` is a distribution, not logits; its gradient (when it has one)
// flows, as in IAD's self-distillation term.
inline torch::Tensor kl_rows(const torch::Tensor& p, const torch::Tensor& student_logits,
                             double temperature = 1.0) {
  const auto log_q = torch::log_softmax(student_logits / temperature, 1);
  return (torch::xlogy(p, p) - p * log_q).sum(1);
}

// The frozen teacher's logits: no autograd graph, whatever the caller's mode.
inline torch::Tensor teacher_logits(Model& teacher, const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  return teacher.logits(x);
}

// Attack defaults shared by the methods that attack with PGD-10 at 8/255, step 2/255.
inline std::vector<std::pair<std::string, Value>> pgd10_defaults(const std::string& start,
                                                                 bool clip_start) {
  return {{"eps", 8.0 / 255},      {"steps", int64_t{10}},  {"step_size", 2.0 / 255},
          {"random_start", start}, {"gaussian_std", 0.001}, {"clip_start", clip_start}};
}

// x' from the experiment's [attack] plugin, maximizing `loss` of the student held in `mode`.
inline torch::Tensor attack_student(StepContext& c, BnMode mode, SampleLoss loss) {
  AttackTarget target;
  target.model = &c.student;
  target.bn_mode = mode;
  target.loss = std::move(loss);
  return c.attack->perturb(target, c.batch.x, c.batch.y);
}

// x' maximizing sum_i KL(p_T(x'_i) || p_S(x'_i)): the teacher sees the adversarial input too
// (AdaAD's adaad_inner_loss). Autograd runs through the frozen teacher for the input gradient
// only; its parameters get none.
inline torch::Tensor attack_student_and_teacher(StepContext& c, BnMode mode) {
  Model& student = c.student;
  Model& teacher = *c.teacher;
  AttackTarget target;
  target.model = &student;
  target.bn_mode = mode;
  target.objective = [&](const torch::Tensor& x_adv, const torch::Tensor&, const torch::Tensor&) {
    const auto teacher_probs = torch::softmax(teacher.logits(x_adv), 1);
    return kl_rows(teacher_probs, student.logits(x_adv));
  };
  return c.attack->perturb(target, c.batch.x, c.batch.y);
}

// `loss` with x' and the student's logits on it published for wrapping objectives (IGDM builds
// on them: LossTerms::outputs).
inline LossTerms publish_adversarial(LossTerms loss, const torch::Tensor& x_adv,
                                     const torch::Tensor& student_adv_logits) {
  loss.outputs[output::x_adv] = x_adv;
  loss.outputs[output::student_adv_logits] = student_adv_logits;
  return loss;
}

inline BnMode bn_mode(const Params& p) {
  return p.get_string("attack_bn_mode") == "train" ? BnMode::train : BnMode::eval;
}

inline ParamSpec bn_mode_param(const std::string& fallback, const std::string& why) {
  return param::string("attack_bn_mode", fallback)
      .one_of({"eval", "train"})
      .help("BatchNorm mode of the student while attacked (" + why + ")");
}

}  // namespace ardkit::distill
