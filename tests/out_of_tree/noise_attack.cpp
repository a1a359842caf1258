// Plugins written outside the ardkit tree: an attack (random corners of the L-inf ball, the
// baseline any gradient attack must beat) and an objective built on the installed objective
// helpers (ardkit/distill.hpp).
#include <ardkit/ardkit.hpp>
#include <ardkit/distill.hpp>

namespace {

// The base class owns the threat model, eps 0, gradient and BatchNorm modes and the row index;
// an attack is its constructor and run().
class RandomCorner : public ardkit::Attack {
 public:
  explicit RandomCorner(double eps) : Attack({"linf", eps}) {}

 protected:
  torch::Tensor run(const ardkit::AttackTarget&, const Input& in) override {
    const auto signs = torch::randint(0, 2, in.x.sizes(), in.x.options()).mul(2).sub(1);
    return ardkit::project_linf(in.x + eps() * signs, in.x, eps());
  }
};

// Half clean, half adversarial cross-entropy, the attack run through the helpers.
class CornerMix : public ardkit::Objective {
 public:
  explicit CornerMix(const ardkit::Params& p) : mode_(ardkit::distill::bn_mode(p)) {}
  bool needs_attack() const override {
    return true;
  }
  ardkit::LossTerms compute(ardkit::StepContext& c) override {
    const auto x_adv = ardkit::distill::attack_student(c, mode_, ardkit::losses::cross_entropy());
    const auto adv = torch::nn::functional::cross_entropy(c.student.logits(x_adv), c.batch.y);
    const auto clean = torch::nn::functional::cross_entropy(c.student.logits(c.batch.x), c.batch.y);
    return {0.5 * adv + 0.5 * clean, {{"adv_ce", adv}, {"clean_ce", clean}}};
  }

 private:
  ardkit::BnMode mode_;
};

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest.add(ardkit::PluginKind::objective, "corner_mix", "0.1.0",
               "half clean, half [attack] cross-entropy",
               {ardkit::distill::bn_mode_param("eval", "either")},
               [](const ardkit::Params& p, const ardkit::BuildContext&) {
                 return std::make_shared<CornerMix>(p);
               });
  manifest.add(ardkit::PluginKind::attack, "random_corner", "0.1.0",
               "random corners of the L-inf ball",
               {ardkit::param::real("eps", 0.1).at_least(0).at_most(1).help("L-inf radius")},
               [](const ardkit::Params& p, const ardkit::BuildContext&) {
                 return std::make_shared<RandomCorner>(p.get_real("eps"));
               });
}
