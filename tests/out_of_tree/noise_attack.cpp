// An attack plugin written outside the ardkit tree: random corners of the L-inf ball, the
// baseline any gradient attack must beat.
#include <ardkit/ardkit.hpp>

namespace {

class RandomCorner : public ardkit::Attack {
 public:
  explicit RandomCorner(double eps) : eps_(eps) {}
  ardkit::ThreatModel threat() const override {
    return {"linf", eps_};
  }
  void set_eps(double eps) override {
    eps_ = eps;
  }
  torch::Tensor perturb(const ardkit::AttackTarget&, const torch::Tensor& x,
                        const torch::Tensor&) override {
    const auto signs = torch::randint(0, 2, x.sizes(), x.options()).mul(2).sub(1);
    return ardkit::project_linf(x + eps_ * signs, x, eps_);
  }

 private:
  double eps_;
};

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest.add(ardkit::PluginKind::attack, "random_corner", "0.1.0",
               "random corners of the L-inf ball",
               {ardkit::param::real("eps", 0.1).at_least(0).at_most(1).help("L-inf radius")},
               [](const ardkit::Params& p, const ardkit::BuildContext&) {
                 return std::make_shared<RandomCorner>(p.get_real("eps"));
               });
}
