// Attack plugin `fgsm`: one signed-gradient step (Goodfellow et al. 2015), optionally from a
// random start (Wong et al. 2020's "FGSM-RS" with step_size 1.25 * eps).
#include <ardkit/ardkit.hpp>
#include <ardkit/attack_util.hpp>

namespace {

using ardkit::Params;

class Fgsm : public ardkit::Attack {
 public:
  explicit Fgsm(const Params& p)
      : Attack({"linf", p.get_real("eps")}),
        step_size_(p.get_real("step_size")),
        start_(ardkit::RandomStart::from(p)) {}

 protected:
  torch::Tensor run(const ardkit::AttackTarget& target, const Input& in) override {
    auto x_adv = ardkit::random_start(in.x, start_, eps()).requires_grad_(true);
    const auto loss = target.evaluate(x_adv, in.labels, in.rows, nullptr);
    const auto grad = torch::autograd::grad({loss.sum()}, {x_adv})[0];
    const double alpha = step_size_ > 0 ? step_size_ : eps();
    return ardkit::project_linf(x_adv.detach() + alpha * grad.sign(), in.x, eps());
  }

 private:
  double step_size_;
  ardkit::RandomStart start_;
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
