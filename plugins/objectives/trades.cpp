// Objective plugin `trades`: TRADES (Zhang et al., ICML 2019), as the official trades.py computes
// it:
//   x' = [attack] maximizing KL(p_f(x) || p_f(x')), model in EVAL mode, start x + 0.001 N(0, I)
//   L  = CE(f(x), y) + beta * (1/B) sum_i KL(p_f(x_i) || p_f(x'_i))        beta = 6
// The clean distribution in the outer KL is not detached, and as in the official step the model
// runs f(x), f(x'), f(x) in train mode (the second f(x) is the KL's target). Radius 0.031 and
// step 0.007, as the official CIFAR-10 script.
// Checked against yaodongyu/TRADES@6e8e11b7 trades.py / train_trades_cifar10.py run as is
// (tests/objectives/official_reference, case trades).
#include <ardkit/distill.hpp>

namespace {

using ardkit::Params;
namespace distill = ardkit::distill;

class Trades : public ardkit::Objective {
 public:
  explicit Trades(const Params& p)
      : beta_(p.get_real("beta")),
        reduction_(p.get_string("kl_reduction")),
        bn_mode_(distill::bn_mode(p)) {}

  void declare_knobs(ardkit::Knobs& knobs) override {
    knobs.declare("beta", beta_, ardkit::KnobRange::at_least(0));
  }

  ardkit::LossTerms compute(ardkit::StepContext& c) override {
    const auto& x = c.batch.x;
    const auto& y = c.batch.y;
    torch::Tensor clean_probs;
    {
      ardkit::BnModeGuard mode(c.student, bn_mode_);
      torch::NoGradGuard no_grad;
      clean_probs = torch::softmax(c.student.logits(x), 1);
    }
    const auto x_adv = distill::attack_student(c, bn_mode_, ardkit::losses::kl_to(clean_probs));
    const auto logits = c.student.logits(x);
    const auto ce = torch::nn::functional::cross_entropy(logits, y);
    const auto adv_logits = c.student.logits(x_adv);
    const auto target_probs = torch::softmax(c.student.logits(x), 1);
    const auto kl = distill::reduce(distill::kl_rows(target_probs, adv_logits), reduction_,
                                    x.size(0), logits.size(1));
    return distill::publish_adversarial(
        {ce + c.knobs.get("beta") * kl, {{"clean_ce", ce}, {"kl_robust", kl}}}, x_adv, adv_logits);
  }

 private:
  double beta_;
  std::string reduction_;
  ardkit::BnMode bn_mode_;
};

ardkit::ParamSchema schema() {
  using namespace ardkit::param;
  return {
      real("beta", 6.0).at_least(0).help("robustness weight (1/lambda); CIFAR-10 6, MNIST 1"),
      distill::kl_reduction_param("batchmean"),
      distill::bn_mode_param("eval", "eval: the official code"),
  };
}

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest
      .add(ardkit::PluginKind::objective, "trades", "1.0.0",
           "TRADES (Zhang et al. 2019): clean cross-entropy + beta * KL(f(x) || f(x'))", schema(),
           [](const Params& p, const ardkit::BuildContext&) { return std::make_shared<Trades>(p); })
      .needs({ardkit::Need::attack})
      .attack_defaults = [](const Params&) {
    return std::vector<std::pair<std::string, ardkit::Value>>{
        {"eps", 0.031},          {"steps", int64_t{10}},
        {"step_size", 0.007},    {"random_start", std::string("gaussian")},
        {"gaussian_std", 0.001}, {"clip_start", false}};
  };
}
