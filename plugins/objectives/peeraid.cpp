// Objective plugin `peeraid`: Peer-tutored Adversarial Distillation (Jung et al., CVPR 2024),
// with no pretrained teacher: a peer P ([companions.peer], its own optimizer and schedule) is
// trained together with the student S on S's adversarial examples, as the official main.py
// train_kd() computes it:
//   x' = PGD maximizing sum KL(p_P(x) || p_S(x')), P's clean logits from eval mode, S in eval
//        mode, Gaussian start of std 0.001 (LinfPeerAttack)
//   L_P = g1 CE(P(x'), y) + g2 tau^2 KL(softmax(S(x') / tau) || softmax(P(x') / tau))
//   L_S = l1 CE(S(x'), y) + l2 T^2 KL(softmax(P(x') / T) || softmax(S(x') / T))
//         + l3 T^2 KL(softmax(S(x) / T) || softmax(S(x') / T))
// one backward of L_P + L_S, then both optimizers step. Every KL is nn.KLDivLoss()'s default
// mean over all B x C entries. Only P(x') is detached in L_S: the peer's KL target S(x') and the
// student's self-distillation target S(x) keep their graphs, so L_P also trains the student and
// the clean forward gets gradient from the x' term (the official code; reproduced).
// Train-mode forwards, in the official order: P(x'), S(x') (the peer's target), S(x') again
// (the student's term), S(x). Defaults: the README's CIFAR-10 command (l = 0, 1, 1; T = 5;
// g = 1, 0.1; tau = 1); its argparse defaults differ (T = 6, l = g = 1).
// Weight averaging of the student (main.py --swa_s) is the engine's [train] weight_average,
// not part of this plugin.
// Checked against jaewonalive/PeerAiD@cd12e921 main.py train_kd() and attack_function.py run
// as is (tests/objectives/official_reference, cases peeraid, peeraid_3).
#include <ardkit/distill.hpp>

namespace {

using ardkit::Params;
namespace distill = ardkit::distill;

class PeerAid : public ardkit::Objective {
 public:
  explicit PeerAid(const Params& p)
      : l1_(p.get_real("ce_weight")),
        l2_(p.get_real("peer_weight")),
        l3_(p.get_real("self_weight")),
        temperature_(p.get_real("temperature")),
        g1_(p.get_real("peer_ce_weight")),
        g2_(p.get_real("peer_kl_weight")),
        tau_(p.get_real("peer_temperature")),
        bn_mode_(distill::bn_mode(p)) {}

  ardkit::LossTerms compute(ardkit::StepContext& c) override {
    const auto& x = c.batch.x;
    const auto& y = c.batch.y;
    ardkit::Model& peer = c.companion("peer");
    torch::Tensor peer_clean;
    {
      ardkit::BnModeGuard eval(peer, ardkit::BnMode::eval);
      torch::NoGradGuard no_grad;
      peer_clean = peer.logits(x);
    }
    const auto x_adv =
        distill::attack_student(c, bn_mode_, ardkit::losses::kl_to(torch::softmax(peer_clean, 1)));
    const auto peer_adv = peer.logits(x_adv);
    const auto student_target = c.student.logits(x_adv);
    const auto elemmean = [&](const torch::Tensor& target_logits, const torch::Tensor& logits,
                              double t) {
      const auto rows = distill::kl_rows(torch::softmax(target_logits / t, 1), logits, t);
      return distill::reduce(rows, "elemmean", x.size(0), logits.size(1));
    };
    const auto peer_ce = torch::nn::functional::cross_entropy(peer_adv, y);
    const auto peer_kl = elemmean(student_target, peer_adv, tau_);
    const auto peer_loss = g1_ * peer_ce + g2_ * tau_ * tau_ * peer_kl;

    const auto adv_logits = c.student.logits(x_adv);
    const auto clean_logits = c.student.logits(x);
    const double t2 = temperature_ * temperature_;
    const auto ce = torch::nn::functional::cross_entropy(adv_logits, y);
    const auto kl_peer = elemmean(peer_adv.detach(), adv_logits, temperature_);
    const auto kl_self = elemmean(clean_logits, adv_logits, temperature_);
    const auto student_loss = l1_ * ce + l2_ * t2 * kl_peer + l3_ * t2 * kl_self;
    return distill::publish_adversarial({peer_loss + student_loss,
                                         {{"adv_ce", ce},
                                          {"kl_peer", kl_peer},
                                          {"kl_self", kl_self},
                                          {"peer_ce", peer_ce},
                                          {"peer_kl", peer_kl},
                                          {"peer_loss", peer_loss},
                                          {"student_loss", student_loss}}},
                                        x_adv, adv_logits);
  }

  // One backward through both losses, then the peer's and the student's updates.
  ardkit::LossTerms step(ardkit::StepContext& c) override {
    if (!c.optimizer)
      throw std::runtime_error("peeraid: step() needs the run's optimizer in its StepContext");
    auto& peer_optimizer = c.companion_optimizer("peer");
    c.optimizer->zero_grad();
    peer_optimizer.zero_grad();
    ardkit::LossTerms loss = compute(c);
    if (c.extra_terms)
      c.extra_terms(loss);
    if (c.check_finite)
      c.check_finite(loss);
    loss.total.backward();
    peer_optimizer.step();
    c.optimizer->step();
    return loss;
  }

 private:
  double l1_, l2_, l3_, temperature_, g1_, g2_, tau_;
  ardkit::BnMode bn_mode_;
};

ardkit::ParamSchema schema() {
  using namespace ardkit::param;
  return {
      real("ce_weight", 0.0).at_least(0).help("lambda1: CE(S(x'), y)"),
      real("peer_weight", 1.0).at_least(0).help("lambda2: T^2 KL(P(x') || S(x'))"),
      real("self_weight", 1.0).at_least(0).help("lambda3: T^2 KL(S(x) || S(x'))"),
      real("temperature", 5.0).greater_than(0).help("T of the student's KL terms"),
      real("peer_ce_weight", 1.0).at_least(0).help("gamma1: CE(P(x'), y)"),
      real("peer_kl_weight", 0.1)
          .at_least(0)
          .help("gamma2: tau^2 KL(S(x') || P(x')) (CIFAR-100 README: 1)"),
      real("peer_temperature", 1.0).greater_than(0).help("tau of the peer's KL term"),
      distill::bn_mode_param("eval", "eval: the official code"),
  };
}

}  // namespace

ARDKIT_PLUGIN_LIBRARY(manifest) {
  manifest
      .add(
          ardkit::PluginKind::objective, "peeraid", "1.0.0",
          "PeerAiD (Jung et al. 2024): a peer trained on the student's adversarial examples "
          "tutors the student; no pretrained teacher",
          schema(),
          [](const Params& p, const ardkit::BuildContext&) { return std::make_shared<PeerAid>(p); })
      .needs({ardkit::Need::attack})
      .uses({"companions.peer"})
      .attack_defaults = [](const Params&) { return distill::pgd10_defaults("gaussian", false); };
}
