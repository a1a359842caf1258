// An attack written outside the ardkit tree: MI-FGSM (Dong et al. 2018, "Boosting Adversarial
// Attacks with Momentum"), iterative FGSM whose step follows an accumulated, L1-normalised
// gradient. The base class owns everything attacks share (the threat model, eps = 0, gradient and
// BatchNorm modes, the row index); an attack is its parameters and run().
#include <fmt/format.h>
#include <torch/torch.h>

#include <ardkit/ardkit.hpp>
#include <ardkit/interrupt.hpp>
#include <ardkit/progress.hpp>

namespace {

class MiFgsm : public ardkit::Attack {
 public:
  explicit MiFgsm(const ardkit::Params& p)
      : Attack({"linf", p.get_real("eps")}),
        steps_(p.get_int("steps")),
        decay_(p.get_real("decay")) {}

 protected:
  torch::Tensor run(const ardkit::AttackTarget& target, const Input& in) override {
    const double alpha = eps() / static_cast<double>(steps_);  // the paper's eps / T
    auto x = in.x.clone();
    auto momentum = torch::zeros_like(x);
    for (int64_t s = 0; s < steps_; ++s) {
      ardkit::check_interrupt();  // Ctrl-C is honoured within seconds, even mid-attack
      // An evaluation's progress line moves inside the batch; the detail is built only when shown.
      ardkit::report_progress(static_cast<double>(s), static_cast<double>(steps_),
                              [&] { return fmt::format("step {}/{}", s, steps_); });
      x.requires_grad_(true);
      const auto loss = target.evaluate(x, in.labels, in.rows, nullptr).sum();
      const auto grad = torch::autograd::grad({loss}, {x})[0];
      const auto l1 = grad.abs().flatten(1).mean(1).view({-1, 1, 1, 1});
      momentum = decay_ * momentum + grad / (l1 + 1e-12);
      x = ardkit::project_linf(x.detach() + alpha * momentum.sign(), in.x, eps());
    }
    return x;
  }

 private:
  int64_t steps_;
  double decay_;
};

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  using namespace ardkit::param;
  manifest.add(
      ardkit::PluginKind::attack, "mi_fgsm", "0.1.0",
      "MI-FGSM (Dong et al. 2018): iterative FGSM on a momentum of L1-normalised gradients",
      {real("eps", 8.0 / 255).at_least(0).at_most(1).help("L-inf radius"),
       integer("steps", 10).at_least(1).at_most(100000).help("iterations; step = eps / steps"),
       real("decay", 1.0).at_least(0).help("momentum decay mu (the paper's 1.0)")},
      [](const ardkit::Params& p, const ardkit::BuildContext&) {
        return std::make_shared<MiFgsm>(p);
      });
}
