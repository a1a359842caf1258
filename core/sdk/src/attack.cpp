#include "ardkit/attack.hpp"

#include <torch/torch.h>

#include <optional>

#include "ardkit/error.hpp"

namespace ardkit {

torch::Tensor AttackTarget::evaluate(const torch::Tensor& x_adv, const torch::Tensor& labels,
                                     const torch::Tensor& rows, torch::Tensor* logits_out) const {
  if (objective) {
    if (logits_out && model) {
      torch::NoGradGuard no_grad;
      *logits_out = model->logits(x_adv);
    }
    return objective(x_adv, labels, rows);
  }
  if (!model)
    throw_runtime_error("attack target has neither a model nor an objective");
  auto logits = model->logits(x_adv);
  if (logits_out)
    *logits_out = logits.detach();
  return loss ? loss(logits, labels, rows) : losses::cross_entropy()(logits, labels, rows);
}

torch::Tensor Attack::perturb(const AttackTarget& target, const torch::Tensor& x,
                              const torch::Tensor& labels) {
  if (threat().eps == 0.0)
    return x.detach().clone();
  torch::AutoGradMode grad_mode(uses_gradients());
  std::optional<BnModeGuard> mode;
  if (target.model)
    mode.emplace(*target.model, target.bn_mode);
  const Input input{
      x.detach(), labels,
      torch::arange(x.size(0), torch::TensorOptions().dtype(torch::kLong).device(x.device()))};
  return run(target, input);
}

BnModeGuard::BnModeGuard(Model& model, BnMode mode)
    : model_(model), was_training_(model.is_training()) {
  model_.train(mode == BnMode::train);
}
BnModeGuard::~BnModeGuard() {
  model_.train(was_training_);
}

torch::Tensor project_linf(const torch::Tensor& x_adv, const torch::Tensor& x, double eps) {
  return torch::min(torch::max(x_adv, x - eps), x + eps).clamp(0.0, 1.0);
}

torch::Tensor l2_norms(const torch::Tensor& v) {
  return v.flatten(1).pow(2).sum(1).sqrt();
}

torch::Tensor linf_norms(const torch::Tensor& v) {
  return std::get<0>(v.flatten(1).abs().max(1));
}

torch::Tensor project_l2(const torch::Tensor& x_adv, const torch::Tensor& x, double eps) {
  const auto delta = x_adv - x;
  const auto factor = torch::clamp_max(eps / (l2_norms(delta) + 1e-12), 1.0);
  return (x + delta * factor.view({-1, 1, 1, 1})).clamp(0.0, 1.0);
}

}  // namespace ardkit
