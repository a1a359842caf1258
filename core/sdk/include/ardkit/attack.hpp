#pragma once
#include <functional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "ardkit/component.hpp"
#include "ardkit/losses.hpp"
#include "ardkit/model.hpp"

namespace ardkit {

// Which BatchNorm mode the attacked model runs in while the attack runs. ARD attacks the student
// in train mode (batch statistics, running statistics updated); RSLAD, AdaAD and TRADES in eval
// mode; evaluation always in eval mode. The previous mode is restored afterwards.
enum class BnMode { eval, train };

struct ThreatModel {
  std::string norm = "linf";  // "linf" or "l2"
  double eps = 0.0;
};

// What an attack attacks. The default loss is cross-entropy on the model's logits; an objective
// passes its own per-sample loss, or a whole `objective` when the quantity to maximize needs more
// than the attacked model's logits (AdaAD: KL between teacher and student on x_adv).
struct AttackTarget {
  Model* model = nullptr;
  BnMode bn_mode = BnMode::eval;
  SampleLoss loss;  // empty: cross-entropy
  std::function<torch::Tensor(const torch::Tensor& x_adv, const torch::Tensor& labels,
                              const torch::Tensor& rows)>
      objective;  // set: replaces model+loss for the quantity to maximize

  // Per-sample quantity to maximize at x_adv (and the model's logits there, for success checks).
  ARDKIT_API torch::Tensor evaluate(const torch::Tensor& x_adv, const torch::Tensor& labels,
                                    const torch::Tensor& rows, torch::Tensor* logits_out) const;
};

// Puts a model in the requested BatchNorm mode for a scope and restores the previous one.
class ARDKIT_API BnModeGuard {
 public:
  BnModeGuard(Model& model, BnMode mode);
  ~BnModeGuard();
  BnModeGuard(const BnModeGuard&) = delete;
  BnModeGuard& operator=(const BnModeGuard&) = delete;

 private:
  Model& model_;
  bool was_training_;
};

// One stage of a composite attack (AutoAttack: APGD-CE, APGD-T, FAB-T, Square) and which points
// were still robust after it, so an evaluation can report every stage as AutoAttack's log does.
struct AttackStage {
  std::string name;
  torch::Tensor robust;  // [B] bool, cumulative: robust after this stage and all before it
  double seconds = 0.0;
};

// An attack returns x_adv inside the threat model's ball around x and inside [0,1]. It computes
// gradients with respect to the input only: parameter gradients are never touched.
//
// Writing one: derive, give the constructor the threat model (norm and eps, usually from the
// plugin's parameters), and implement run(). The base class's perturb() owns what every attack
// needs and none should repeat, as torchattacks' Attack.__call__ does for its attacks:
//   - eps == 0 returns x unchanged (a hook may ramp "attack.eps" up from 0);
//   - gradient mode is on (for attacks that use gradients) even under a caller's NoGradGuard;
//   - the attacked model runs in the target's BatchNorm mode (AttackTarget::bn_mode, set by the
//     objective: ARD and IAD attack in train mode, the others in eval) and is put back after;
//   - the inputs are detached, and `rows` (0..B-1, for per-sample losses) is made on x's device.
// threat() and set_eps() read and write the threat model the constructor was given; an attack
// made of parts overrides set_eps to pass the radius on.
class ARDKIT_API Attack : public Component {
 public:
  explicit Attack(ThreatModel threat = {})
      : threat_(std::move(threat)), linf_(threat_.norm == "linf") {}
  virtual ThreatModel threat() const {
    return threat_;
  }
  // Overridable radius, so a hook can ramp epsilon through the "attack.eps" knob.
  virtual void set_eps(double eps) {
    threat_.eps = eps;
  }
  torch::Tensor perturb(const AttackTarget& target, const torch::Tensor& x,
                        const torch::Tensor& labels);
  // Composite attacks also report their stages; others run `perturb` and report none.
  virtual torch::Tensor perturb_staged(const AttackTarget& target, const torch::Tensor& x,
                                       const torch::Tensor& labels,
                                       std::vector<AttackStage>& stages) {
    stages.clear();
    return perturb(target, x, labels);
  }
  // False for score-based attacks (Square): when one of them beats every gradient attack, the
  // evaluation warns of gradient masking. They also run without gradient mode.
  virtual bool uses_gradients() const {
    return true;
  }

 protected:
  // What run() gets besides the target: the clean inputs (detached), their labels, and the row
  // index 0..B-1 on the inputs' device.
  struct Input {
    torch::Tensor x, labels, rows;
  };
  // The attack itself, on a batch prepared by perturb(); returns x_adv.
  virtual torch::Tensor run(const AttackTarget& target, const Input& input) = 0;
  double eps() const {
    return threat_.eps;
  }
  // Decided once by the constructor: step loops test a bool, not the norm's string.
  bool linf() const {
    return linf_;
  }

  ThreatModel threat_;

 private:
  bool linf_;
};

using AttackPtr = std::shared_ptr<Attack>;

// Projection onto the L-inf ball of radius eps around x, then onto [0,1].
ARDKIT_API torch::Tensor project_linf(const torch::Tensor& x_adv, const torch::Tensor& x,
                                      double eps);
// Projection onto the L2 ball of radius eps around x (per sample), then onto [0,1].
ARDKIT_API torch::Tensor project_l2(const torch::Tensor& x_adv, const torch::Tensor& x, double eps);
// Per-sample L2 and L-inf norms of a batch (over all but the first dimension), shape [B].
ARDKIT_API torch::Tensor l2_norms(const torch::Tensor& v);
ARDKIT_API torch::Tensor linf_norms(const torch::Tensor& v);

}  // namespace ardkit
