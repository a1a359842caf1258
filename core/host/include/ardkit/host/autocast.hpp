#pragma once
// Mixed precision for training steps: `[run] precision = "bfloat16"` (CPU or GPU) or "float16"
// (GPU) runs each step under LibTorch's autocast, so convolutions and matrix products compute in
// the lower precision while the weights, the optimizer and the reductions autocast keeps in
// float32 stay float32. Evaluation and validation always run in float32: a robust accuracy must
// not depend on how precisely the attack's gradients were computed.
#include <optional>

#include <torch/types.h>

#include "ardkit/export.hpp"
#include "ardkit/params.hpp"

namespace ardkit {

// The autocast type of `[run] precision` on `device` (none for "float32"); a config error naming
// the key for float16 on the CPU, where LibTorch's autocast has no float16.
ARDKIT_API std::optional<at::ScalarType> autocast_type(const Params& run, torch::Device device);

// Autocast on for this thread while it lives (nothing when `type` is empty); restores what was
// there before.
class ARDKIT_API AutocastGuard {
 public:
  AutocastGuard(torch::Device device, std::optional<at::ScalarType> type);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool active_ = false, cuda_ = false, was_enabled_ = false;
  at::ScalarType previous_type_ = at::kFloat;
};

}  // namespace ardkit
