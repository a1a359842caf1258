// Attack plugin `fgsm`: one signed-gradient step (Goodfellow et al. 2015), optionally from a
// random start (Wong et al. 2020's "FGSM-RS" with step_size 1.25 * eps).
#include <ardkit/ardkit.hpp>

namespace {

using ardkit::Params;

class Fgsm : public ardkit::Attack {
 public:
  explicit Fgsm(const Params& p)
      : eps_(p.get_real("eps")),
        step_size_(p.get_real("step_size")),
        start_(p.get_string("random_start")),
        gaussian_std_(p.get_real("gaussian_std")),
        clip_start_(p.get_bool("clip_start")) {}

  ardkit::ThreatModel threat() const override {
    return {"linf", eps_};
  }
  void set_eps(double eps) override {
    eps_ = eps;
  }

  torch::Tensor perturb(const ardkit::AttackTarget& target, const torch::Tensor& x,
                        const torch::Tensor& labels) override {
    if (eps_ == 0.0)
      return x.detach().clone();
    torch::AutoGradMode grad_mode(true);
    std::optional<ardkit::BnModeGuard> mode;
    if (target.model)
      mode.emplace(*target.model, target.bn_mode);
    const auto x0 = x.detach();
    const auto rows =
        torch::arange(x.size(0), torch::TensorOptions().dtype(torch::kLong).device(x.device()));
    auto x_adv =
        ardkit::random_start(x0, start_, eps_, gaussian_std_, clip_start_).requires_grad_(true);
    const auto loss = target.evaluate(x_adv, labels, rows, nullptr);
    const auto grad = torch::autograd::grad({loss.sum()}, {x_adv})[0];
    const double alpha = step_size_ > 0 ? step_size_ : eps_;
    return ardkit::project_linf(x_adv.detach() + alpha * grad.sign(), x0, eps_);
  }

 private:
  double eps_, step_size_;
  std::string start_;
  double gaussian_std_;
  bool clip_start_;
};

ardkit::ParamSchema schema() {
  using namespace ardkit::param;
  ardkit::ParamSchema s = {
      real("eps", 8.0 / 255).at_least(0).at_most(1).help("L-inf radius in [0,1] pixel units"),
      real("step_size", 0).at_least(0).help("size of the signed step; 0 = eps"),
  };
  ardkit::add_start_params(s, "none");
  return s;
}

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest.add(
      ardkit::PluginKind::attack, "fgsm", "1.0.0",
      "fast gradient sign method, optionally from a random start", schema(),
      [](const Params& p, const ardkit::BuildContext&) { return std::make_shared<Fgsm>(p); });
}
