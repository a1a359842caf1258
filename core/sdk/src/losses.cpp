#include "ardkit/losses.hpp"

#include <torch/torch.h>

namespace ardkit::losses {

namespace {
// z_y and the largest logit of any other class.
std::pair<torch::Tensor, torch::Tensor> true_and_best_other(const torch::Tensor& logits,
                                                            const torch::Tensor& labels) {
  const auto true_logit = logits.gather(1, labels.unsqueeze(1)).squeeze(1);
  const auto masked =
      logits.scatter(1, labels.unsqueeze(1), -std::numeric_limits<float>::infinity());
  return {true_logit, std::get<0>(masked.max(1))};
}
}  // namespace

SampleLoss cross_entropy() {
  return [](const torch::Tensor& logits, const torch::Tensor& labels, const torch::Tensor&) {
    return torch::nn::functional::cross_entropy(
        logits, labels, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
  };
}

SampleLoss cw_margin(double kappa) {
  return [kappa](const torch::Tensor& logits, const torch::Tensor& labels, const torch::Tensor&) {
    auto [true_logit, other] = true_and_best_other(logits, labels);
    return -torch::clamp_min(true_logit - other + kappa, 0.0);
  };
}

SampleLoss dlr() {
  return [](const torch::Tensor& logits, const torch::Tensor& labels, const torch::Tensor&) {
    const auto sorted = std::get<0>(logits.sort(1));
    const int64_t c = logits.size(1);
    auto [true_logit, other] = true_and_best_other(logits, labels);
    const auto scale = sorted.select(1, c - 1) - sorted.select(1, c - 3) + 1e-12;
    return -(true_logit - other) / scale;
  };
}

SampleLoss targeted_dlr(torch::Tensor targets) {
  return [targets](const torch::Tensor& logits, const torch::Tensor& labels,
                   const torch::Tensor& rows) {
    const auto sorted = std::get<0>(logits.sort(1));
    const int64_t c = logits.size(1);
    const auto t = targets.index_select(0, rows).to(logits.device());
    const auto true_logit = logits.gather(1, labels.unsqueeze(1)).squeeze(1);
    const auto target_logit = logits.gather(1, t.unsqueeze(1)).squeeze(1);
    const auto scale =
        sorted.select(1, c - 1) - 0.5 * (sorted.select(1, c - 3) + sorted.select(1, c - 4)) + 1e-12;
    return -(true_logit - target_logit) / scale;
  };
}

SampleLoss kl_to(torch::Tensor target_probs, double temperature) {
  return [target_probs, temperature](const torch::Tensor& logits, const torch::Tensor&,
                                     const torch::Tensor& rows) {
    const auto p = target_probs.index_select(0, rows).to(logits.device());
    const auto log_q = torch::log_softmax(logits / temperature, 1);
    return (torch::xlogy(p, p) - p * log_q).sum(1);
  };
}

}  // namespace ardkit::losses
