// Objective plugin `mtard`: Multi-Teacher Adversarial Robustness Distillation (Zhao et al.,
// ECCV 2022), as the official mtard/mtard_resnet18_cifar10.py and mtard_loss.py compute it:
//   x'   = PGD on CE(S(x'), y), student in eval mode, Gaussian start of std 0.001
//   L_adv = KL(p_R(x') || p_S(x')), the robust teacher [teacher] on the adversarial input
//   L_nat = KL(p_C(x) || p_S(x)), the clean teacher [teachers.clean] on the clean input
//   L = w_adv L_adv + w_nat L_nat, w_adv = 1 - w_nat
// with KL entries p (log(p + 1e-5) - log q) averaged over B x C (the scripts' kl_loss and
// torch.mean), and the Normalization Loss Balance after every step's losses are known:
//   r_adv = (L_adv / L_adv at the first step)^bert, r_nat likewise,
//   w_nat <- w_nat - rate (w_nat - r_nat / (r_adv + r_nat)),  w_nat = 1/2 at the start.
// The official rate 0.025 is multiplied by 0.1 wherever the learning rate is: here it follows
// the student's learning rate relative to the first step's (what the script's milestones do
// to both). The paper's Entropy-Based Balance of the teachers' temperatures is not in the
// official code (zhaoshiji123/MTARD@6480a1b4): both temperatures are 1 there and here.
// Student forwards in train mode: S(x'), then S(x). CIFAR-100 script: kl_scale = 10.
// Checked against that script's training loop run as is (tests/objectives/official_reference,
// cases mtard, mtard_3).
#include <ardkit/distill.hpp>

namespace {

using ardkit::Params;
namespace distill = ardkit::distill;

// The balance's state, saved in checkpoints: the first step's losses and learning rate (-1
// until the first step) and the clean term's current weight.
struct BalanceState : torch::nn::Module {
  BalanceState() {
    first = register_buffer("first", torch::full({3}, -1.0, torch::kDouble));
    w_nat = register_buffer("w_nat", torch::full({1}, 0.5, torch::kDouble));
  }
  torch::Tensor first, w_nat;  // first: L_adv, L_nat, lr
};

class Mtard : public ardkit::Objective {
 public:
  explicit Mtard(const Params& p)
      : rate_(p.get_real("balance_rate")),
        bert_(p.get_real("bert")),
        scale_(p.get_real("kl_scale")),
        log_eps_(p.get_real("log_eps")),
        follow_lr_(p.get_bool("rate_follows_lr")),
        bn_mode_(distill::bn_mode(p)),
        state_(std::make_shared<BalanceState>()) {}

  // The balance is state, not a trainable head: saved through save_state, never optimized.
  bool has_state() override {
    return true;
  }
  void save_state(torch::serialize::OutputArchive& archive) override {
    state_->save(archive);
  }
  void load_state(torch::serialize::InputArchive& archive) override {
    state_->load(archive);
  }

  ardkit::LossTerms compute(ardkit::StepContext& c) override {
    const auto& x = c.batch.x;
    const auto clean_probs =
        torch::softmax(distill::teacher_logits(c.teacher_named("clean"), x), 1);
    const auto x_adv = distill::attack_student(c, bn_mode_, ardkit::losses::cross_entropy());
    const auto adv_logits = c.student.logits(x_adv);
    const auto robust_probs = torch::softmax(distill::teacher_logits(*c.teacher, x_adv), 1);
    const auto clean_logits = c.student.logits(x);
    const auto kl = [&](const torch::Tensor& p, const torch::Tensor& logits) {
      const auto entries = p * (torch::log(p + log_eps_) - torch::log_softmax(logits, 1));
      return scale_ * entries.mean();
    };
    const auto kl_adv = kl(robust_probs, adv_logits);
    const auto kl_nat = kl(clean_probs, clean_logits);
    const double w_nat = balance(c, kl_adv.item<double>(), kl_nat.item<double>());
    return distill::publish_adversarial(
        {(1 - w_nat) * kl_adv + w_nat * kl_nat,
         {{"kl_adv", kl_adv}, {"kl_nat", kl_nat}, {"w_nat", torch::tensor(w_nat)}}},
        x_adv, adv_logits);
  }

 private:
  // One Normalization Loss Balance update; returns the new w_nat.
  double balance(const ardkit::StepContext& c, double adv, double nat) {
    torch::NoGradGuard no_grad;
    auto first = state_->first.accessor<double, 1>();
    const double lr = c.optimizer ? c.optimizer->param_groups().front().options().get_lr() : 1.0;
    if (first[0] < 0) {
      first[0] = adv;
      first[1] = nat;
      first[2] = lr;
    }
    const double r_adv = std::pow(adv / first[0], bert_);
    const double r_nat = std::pow(nat / first[1], bert_);
    const double rate = follow_lr_ && first[2] > 0 ? rate_ * lr / first[2] : rate_;
    double w = state_->w_nat.item<double>();
    w -= rate * (w - r_nat / (r_adv + r_nat));
    state_->w_nat.fill_(w);
    return w;
  }

  double rate_, bert_, scale_, log_eps_;
  bool follow_lr_;
  ardkit::BnMode bn_mode_;
  std::shared_ptr<BalanceState> state_;
};

ardkit::ParamSchema schema() {
  using namespace ardkit::param;
  return {
      real("balance_rate", 0.025).at_least(0).at_most(1).help("learning rate of the loss balance"),
      real("bert", 1.0).greater_than(0).help("exponent of the relative losses (official: 1)"),
      boolean("rate_follows_lr", true)
          .help("scale the balance rate as the student's learning rate moves (the official "
                "milestones decay both)"),
      real("kl_scale", 1.0).greater_than(0).help("factor on both terms (CIFAR-100 script: 10)"),
      real("log_eps", 1e-5).at_least(0).help("the official KL's log(p + eps)"),
      distill::bn_mode_param("eval", "eval: the official code"),
  };
}

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest
      .add(ardkit::PluginKind::objective, "mtard", "1.0.0",
           "MTARD (Zhao et al. 2022): a clean teacher on x and the robust [teacher] on x', "
           "their terms balanced by their relative decrease",
           schema(),
           [](const Params& p, const ardkit::BuildContext&) { return std::make_shared<Mtard>(p); })
      .needs({ardkit::Need::teacher, ardkit::Need::attack, ardkit::Need::same_label_space})
      .uses({"teachers.clean"})
      .attack_defaults = [](const Params&) { return distill::pgd10_defaults("gaussian", false); };
}
