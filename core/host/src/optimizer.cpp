#include "ardkit/host/optimizer.hpp"

#include <torch/torch.h>

#include "ardkit/error.hpp"

namespace ardkit {

namespace {

// An optimizer whose step first clips the gradient norm of every parameter it updates
// ([optimizer] grad_clip; ZSKT's solver.py clips the student's at 5). In step() rather than in
// each objective's step, so a custom step that calls optimizer->step() clips too.
template <class Base>
class Clipped : public Base {
 public:
  template <class... Args>
  Clipped(double max_norm, Args&&... args)
      : Base(std::forward<Args>(args)...), max_norm_(max_norm) {}
  torch::Tensor step(torch::optim::Optimizer::LossClosure closure = nullptr) override {
    std::vector<torch::Tensor> params;
    for (const auto& group : this->param_groups())
      for (const auto& p : group.params())
        params.push_back(p);
    torch::nn::utils::clip_grad_norm_(params, max_norm_);
    return Base::step(std::move(closure));
  }

 private:
  double max_norm_;
};

template <class Base, class... Args>
std::unique_ptr<torch::optim::Optimizer> optimizer_of(double grad_clip, Args&&... args) {
  if (grad_clip > 0)
    return std::make_unique<Clipped<Base>>(grad_clip, std::forward<Args>(args)...);
  return std::make_unique<Base>(std::forward<Args>(args)...);
}

}  // namespace

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const Params& p,
                                                        std::vector<torch::Tensor> student,
                                                        std::vector<torch::Tensor> extra) {
  const double extra_decay = p.get_real("extra_weight_decay") < 0
                                 ? p.get_real("weight_decay")
                                 : p.get_real("extra_weight_decay");
  const auto groups = [&](const auto& options) {
    using Options = std::decay_t<decltype(options)>;
    std::vector<torch::optim::OptimizerParamGroup> out;
    out.emplace_back(std::move(student), std::make_unique<Options>(options));
    if (!extra.empty()) {
      auto extra_options = std::make_unique<Options>(options);
      extra_options->weight_decay(extra_decay);
      out.emplace_back(std::move(extra), std::move(extra_options));
    }
    return out;
  };
  if (p.get_string("type") == "adam") {
    torch::optim::AdamOptions options(p.get_real("lr"));
    options.betas({p.get_real("beta1"), p.get_real("beta2")})
        .weight_decay(p.get_real("weight_decay"));
    return optimizer_of<torch::optim::Adam>(p.get_real("grad_clip"), groups(options), options);
  }
  torch::optim::SGDOptions options(p.get_real("lr"));
  options.momentum(p.get_real("momentum"))
      .weight_decay(p.get_real("weight_decay"))
      .nesterov(p.get_bool("nesterov"));
  if (options.nesterov() && options.momentum() <= 0)
    throw_config_error(p.origin("nesterov") + ": [optimizer] nesterov needs momentum > 0");
  return optimizer_of<torch::optim::SGD>(p.get_real("grad_clip"), groups(options), options);
}

void set_lr(torch::optim::Optimizer& optimizer, double lr, double extra_factor) {
  auto& groups = optimizer.param_groups();
  for (size_t i = 0; i < groups.size(); ++i)
    groups[i].options().set_lr(i == 0 ? lr : lr * extra_factor);
}

}  // namespace ardkit
