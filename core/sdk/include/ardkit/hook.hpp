#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <torch/serialize/archive.h>

#include "ardkit/attack.hpp"
#include "ardkit/component.hpp"
#include "ardkit/data.hpp"
#include "ardkit/knobs.hpp"
#include "ardkit/model.hpp"

namespace ardkit {

struct HookEvent {
  int64_t epoch = 0;  // 0-based
  int64_t step = 0;   // global steps completed
  int64_t epochs = 0;
  int64_t steps_per_epoch = 0;
  const std::map<std::string, double>&
      metrics;  // the latest logged values (loss terms, accuracies)
  // The run's models and training attack, for hooks that measure them (the teacher and attack
  // are null when the experiment has none). Evaluate under NoGradGuard and BnModeGuard(eval):
  // a hook must not change the student.
  Model* student = nullptr;
  Model* teacher = nullptr;
  Attack* attack = nullptr;
  // A batch of n training inputs: synthetic (with the teacher's labels) in a data-free run, real
  // training samples otherwise. Empty in events where drawing is not allowed (on_step_end).
  std::function<Batch(int64_t n)> draw;
  // Values a hook adds here go into the current metrics line ("hook.NAME") and the logs.
  std::map<std::string, double>* report = nullptr;
};

// A plug-and-play adjuster: reads metrics, changes knobs (temperature, eps, loss weights) at step
// or epoch boundaries. DFARD's adaptive temperature is one; it plugs into any KD objective that
// reads the "temperature" knob.
class ARDKIT_API Hook : public Component {
 public:
  // The knobs this hook reads or sets. Before a run starts (and in `ardkit validate`) each must
  // be declared by the objective or the attack; an override of check_knobs may check more, such
  // as that the values the hook will set lie in the knob's range. Errors are ardkit::Error(config).
  virtual std::vector<std::string> knobs() const {
    return {};
  }
  virtual void check_knobs(const Knobs& declared) const;
  // Before the first step, and again when a run resumes (knobs then hold their checkpointed
  // values; `event.step` says where training stands).
  virtual void on_train_start(const HookEvent& /*event*/, Knobs& /*knobs*/) {}
  // At the start of each epoch, before its first step (an epoch resumed mid-way had its start).
  virtual void on_epoch_begin(const HookEvent& /*event*/, Knobs& /*knobs*/) {}
  // Before each step draws its batch: knobs set here apply to that step (no drawing).
  virtual void on_step_begin(const HookEvent& /*event*/, Knobs& /*knobs*/) {}
  virtual void on_step_end(const HookEvent& /*event*/, Knobs& /*knobs*/) {}
  // After the epoch's validation, when it ran: event.metrics holds val_clean_acc (and
  // val_robust_acc with an [attack]). Before on_epoch_end.
  virtual void on_validation_end(const HookEvent& /*event*/, Knobs& /*knobs*/) {}
  virtual void on_epoch_end(const HookEvent& /*event*/, Knobs& /*knobs*/) {}
  // State a hook carries across a resume besides the knobs (which are checkpointed anyway).
  virtual bool has_state() {
    return false;
  }
  virtual void save_state(torch::serialize::OutputArchive& /*archive*/) {}
  virtual void load_state(torch::serialize::InputArchive& /*archive*/) {}
};

}  // namespace ardkit
