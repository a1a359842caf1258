// Attack plugin `pgd`: projected gradient descent in the L-inf ball (Madry et al. 2018), with a
// configurable start, step size, steps and restarts keeping the per-sample worst case.
#include <ardkit/ardkit.hpp>

namespace {

using ardkit::Params;

class Pgd : public ardkit::Attack {
 public:
  explicit Pgd(const Params& p)
      : eps_(p.get_real("eps")),
        step_size_(p.get_real("step_size")),
        steps_(p.get_int("steps")),
        restarts_(p.get_int("restarts")),
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
    if (eps_ == 0.0 || steps_ == 0)
      return x.detach().clone();
    torch::AutoGradMode grad_mode(true);
    std::optional<ardkit::BnModeGuard> mode;
    if (target.model)
      mode.emplace(*target.model, target.bn_mode);
    const auto x0 = x.detach();
    const auto rows =
        torch::arange(x.size(0), torch::TensorOptions().dtype(torch::kLong).device(x.device()));
    // Madry et al.'s default when no step is given: 2.5 * eps / steps.
    const double alpha = step_size_ > 0 ? step_size_ : 2.5 * eps_ / static_cast<double>(steps_);
    ardkit::WorstCase worst(x0);
    for (int64_t r = 0; r < restarts_; ++r) {
      auto x_adv = ardkit::random_start(x0, start_, eps_, gaussian_std_, clip_start_);
      for (int64_t s = 0; s < steps_; ++s) {
        x_adv.requires_grad_(true);
        const auto loss = target.evaluate(x_adv, labels, rows, nullptr);
        const auto grad = torch::autograd::grad({loss.sum()}, {x_adv})[0];
        x_adv = ardkit::project_linf(x_adv.detach() + alpha * grad.sign(), x0, eps_);
      }
      if (restarts_ == 1)
        return x_adv.detach();  // no extra forward: ARD-style train-mode BN sees exactly `steps`
      torch::Tensor logits;
      torch::Tensor loss;
      {
        torch::NoGradGuard no_grad;
        loss = target.evaluate(x_adv, labels, rows, &logits);
      }
      worst.offer(x_adv, loss, logits, labels);
    }
    return worst.best();
  }

 private:
  double eps_, step_size_;
  int64_t steps_, restarts_;
  std::string start_;
  double gaussian_std_;
  bool clip_start_;
};

ardkit::ParamSchema schema() {
  using namespace ardkit::param;
  ardkit::ParamSchema s = {
      real("eps", 8.0 / 255).at_least(0).at_most(1).help("L-inf radius in [0,1] pixel units"),
      real("step_size", 0).at_least(0).help("step per iteration; 0 = 2.5 * eps / steps"),
      integer("steps", 10).at_least(0).help("gradient steps per restart"),
      integer("restarts", 1).at_least(1).help("random restarts; the per-sample worst case is kept"),
      string("norm", "linf").one_of({"linf"}).help("threat model norm"),
  };
  ardkit::add_start_params(s, "uniform");
  return s;
}

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest.add(
      ardkit::PluginKind::attack, "pgd", "1.0.0",
      "L-inf projected gradient descent with random start and restarts (Madry et al. 2018)",
      schema(),
      [](const Params& p, const ardkit::BuildContext&) { return std::make_shared<Pgd>(p); });
}
