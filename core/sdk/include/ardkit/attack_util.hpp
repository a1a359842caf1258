#pragma once
// Pieces shared by gradient attacks: random starts and the keep-the-worst-case bookkeeping of
// restarts. Header-only so plugins inline them in their hot loops.
#include <limits>
#include <string>

#include <torch/torch.h>

#include "ardkit/attack.hpp"
#include "ardkit/params.hpp"

namespace ardkit {

// Start of an L-inf attack, read once from the `random_start` keys (add_start_params) so the
// restart loop tests an enum, not strings: none (x), uniform (x + U(-eps, eps)) or gaussian
// (x + std * N(0, 1), as TRADES/RSLAD/AdaAD). `clip` puts the start into [0,1] before the first
// gradient (torchattacks); the official ARD code does not.
struct RandomStart {
  enum class Kind { none, uniform, gaussian };
  Kind kind = Kind::none;
  double gaussian_std = 0.001;
  bool clip = true;

  static RandomStart from(const Params& p) {
    const std::string& kind = p.get_string("random_start");
    return {kind == "uniform"    ? Kind::uniform
            : kind == "gaussian" ? Kind::gaussian
                                 : Kind::none,
            p.get_real("gaussian_std"), p.get_bool("clip_start")};
  }
};

inline torch::Tensor random_start(const torch::Tensor& x, const RandomStart& how, double eps) {
  torch::Tensor start;
  switch (how.kind) {
    case RandomStart::Kind::uniform:
      start = x + torch::empty_like(x).uniform_(-eps, eps);
      break;
    case RandomStart::Kind::gaussian:
      start = x + how.gaussian_std * torch::randn_like(x);
      break;
    case RandomStart::Kind::none:
      start = x.clone();
  }
  return how.clip ? start.clamp(0.0, 1.0) : start;
}

// Per-sample best adversarial example over restarts: misclassified beats correct, then the
// higher loss wins.
class WorstCase {
 public:
  explicit WorstCase(const torch::Tensor& x)
      : best_(x.detach().clone()),
        loss_(torch::full({x.size(0)}, -std::numeric_limits<float>::infinity(), x.options())),
        fooled_(torch::zeros({x.size(0)}, x.options().dtype(torch::kBool))) {}

  void offer(const torch::Tensor& x_adv, const torch::Tensor& loss, const torch::Tensor& logits,
             const torch::Tensor& labels) {
    const auto fooled = logits.defined() ? logits.argmax(1).ne(labels) : torch::zeros_like(fooled_);
    const auto better = (fooled & ~fooled_) | (fooled.eq(fooled_) & loss.detach().gt(loss_));
    const auto mask = better.view({-1, 1, 1, 1}).expand_as(best_);
    best_ = torch::where(mask, x_adv.detach(), best_);
    loss_ = torch::where(better, loss.detach(), loss_);
    fooled_ = fooled_ | fooled;
  }
  const torch::Tensor& best() const {
    return best_;
  }

 private:
  torch::Tensor best_, loss_, fooled_;
};

// The `random_start` keys shared by fgsm and pgd.
inline void add_start_params(ParamSchema& schema, const std::string& default_start) {
  schema.push_back(param::string("random_start", default_start)
                       .one_of({"none", "uniform", "gaussian"})
                       .help("start point: x, x + U(-eps,eps), or x + gaussian_std * N(0,1)"));
  schema.push_back(
      param::real("gaussian_std", 0.001).at_least(0).help("std of the gaussian start"));
  schema.push_back(param::boolean("clip_start", true)
                       .help("clip the start into [0,1] before the first gradient"));
}

}  // namespace ardkit
