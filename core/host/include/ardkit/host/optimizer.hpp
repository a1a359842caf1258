#pragma once
// The run's optimizer from its [optimizer] table.
#include <memory>
#include <vector>

#include <torch/optim/optimizer.h>

#include "ardkit/export.hpp"
#include "ardkit/params.hpp"

namespace ardkit {

// Group 0 holds `student`, group 1 (when `extra` is not empty: the objective's trainable()
// module) `extra`, with [optimizer] extra_weight_decay. With grad_clip > 0 each step first clips
// the gradient norm of every parameter it updates.
ARDKIT_API std::unique_ptr<torch::optim::Optimizer> make_optimizer(
    const Params& options, std::vector<torch::Tensor> student, std::vector<torch::Tensor> extra);

// Group 0's learning rate is `lr`, every other group's lr * extra_factor.
ARDKIT_API void set_lr(torch::optim::Optimizer& optimizer, double lr, double extra_factor);

}  // namespace ardkit
