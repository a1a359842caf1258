#pragma once
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>
#include <torch/types.h>

#include "ardkit/attack.hpp"
#include "ardkit/data.hpp"
#include "ardkit/knobs.hpp"
#include "ardkit/model.hpp"

namespace ardkit {

// Everything one training step may need. The teacher (when present) is frozen and in eval mode;
// the student is in train mode when `compute` is called, and the objective decides what else
// runs in which mode (the attack's BatchNorm mode goes in its AttackTarget).
struct StepContext {
  Model& student;
  Model* teacher = nullptr;  // null when the experiment has no teacher
  Attack* attack = nullptr;  // the [attack] table's plugin; null when there is none
  const Batch& batch;
  int64_t epoch = 0;  // 0-based
  int64_t step = 0;   // global step, 0-based
  Knobs& knobs;
};

// The loss to minimize plus named terms for the logs (detached or not; they are only read).
struct LossTerms {
  torch::Tensor total;
  std::vector<std::pair<std::string, torch::Tensor>> terms;
};

class ARDKIT_API Objective : public Component {
 public:
  virtual LossTerms compute(StepContext& context) = 0;
  virtual bool needs_teacher() const {
    return false;
  }
  virtual bool needs_attack() const {
    return false;
  }
  // Knobs this objective reads, with their starting values (e.g. "temperature").
  virtual void declare_knobs(Knobs& knobs) {}
  // Extra trainable state (projection heads, memory banks): optimized together with the student
  // and saved in checkpoints. Null when the objective has none.
  virtual std::shared_ptr<torch::nn::Module> trainable() {
    return nullptr;
  }
};

using ObjectivePtr = std::shared_ptr<Objective>;

}  // namespace ardkit
