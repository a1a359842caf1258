#pragma once
#include <functional>

#include <torch/types.h>

#include "ardkit/export.hpp"

namespace ardkit {

// A per-sample loss for an attack to maximize: (logits [B,C], labels [B], rows [B]) -> [B].
// `rows` are the positions of these samples in the batch the attack was first given, so a loss
// with per-sample side data (a teacher's distribution, a target class) can gather it even when
// the attack works on a subset (restarts, still-robust points).
using SampleLoss = std::function<torch::Tensor(
    const torch::Tensor& logits, const torch::Tensor& labels, const torch::Tensor& rows)>;

namespace losses {
ARDKIT_API SampleLoss cross_entropy();
// Carlini-Wagner margin as used in the ARD literature: -max(z_y - max_{j!=y} z_j + kappa, 0)...
// returned with the sign that makes it a quantity to maximize: min(max_{j!=y} z_j - z_y, kappa).
ARDKIT_API SampleLoss cw_margin(double kappa);
// Difference of logits ratio (Croce & Hein 2020): -(z_y - max_{j!=y} z_j) / (z_pi1 - z_pi3 +
// 1e-12).
ARDKIT_API SampleLoss dlr();
// Targeted DLR towards `targets` (indexed by rows): -(z_y - z_t) / (z_pi1 - (z_pi3+z_pi4)/2 +
// 1e-12).
ARDKIT_API SampleLoss targeted_dlr(torch::Tensor targets);
// KL(target || softmax(logits / temperature)) summed over classes; `target_probs` indexed by rows.
ARDKIT_API SampleLoss kl_to(torch::Tensor target_probs, double temperature = 1.0);
}  // namespace losses

}  // namespace ardkit
