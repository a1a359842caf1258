#pragma once
#include <map>
#include <string>

#include "ardkit/component.hpp"
#include "ardkit/knobs.hpp"

namespace ardkit {

struct HookEvent {
  int64_t epoch = 0;  // 0-based
  int64_t step = 0;   // global steps completed
  int64_t epochs = 0;
  int64_t steps_per_epoch = 0;
  const std::map<std::string, double>&
      metrics;  // the latest logged values (loss terms, accuracies)
};

// A plug-and-play adjuster: reads metrics, changes knobs (temperature, eps, loss weights) at step
// or epoch boundaries. DFARD's adaptive temperature is one; it plugs into any KD objective that
// reads the "temperature" knob.
class ARDKIT_API Hook : public Component {
 public:
  // Before the first step, and again when a run resumes (knobs then hold their checkpointed
  // values; `event.step` says where training stands).
  virtual void on_train_start(const HookEvent& event, Knobs& knobs) {}
  virtual void on_step_end(const HookEvent& event, Knobs& knobs) {}
  virtual void on_epoch_end(const HookEvent& event, Knobs& knobs) {}
};

}  // namespace ardkit
