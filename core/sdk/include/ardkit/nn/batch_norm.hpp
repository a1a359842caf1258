#pragma once
// A BatchNorm2d that can report the statistics of its input: the BatchNorm taps of a model.
#include <functional>

#include <torch/nn/cloneable.h>
#include <torch/nn/options/batchnorm.h>
#include <torch/types.h>

#include "ardkit/export.hpp"

namespace ardkit::nn {

// torch::nn::BatchNorm2d's computation with the same parameters and buffers (weight, bias,
// running_mean, running_var, num_batches_tracked: state dicts are unchanged), whose forward hands
// the per-channel mean and biased variance of its input to `record` when a caller asked for this
// layer's tap (Model::set_taps with "bn:PATH"). DeepInversion-style generators match those
// statistics to the running ones, so the recorded value keeps its graph. (A subclass of
// torch::nn::BatchNorm2dImpl cannot be linked: libtorch does not export all of its virtuals.)
class ARDKIT_API BatchNorm2dImpl : public torch::nn::Cloneable<BatchNorm2dImpl> {
 public:
  explicit BatchNorm2dImpl(int64_t num_features)
      : BatchNorm2dImpl(torch::nn::BatchNorm2dOptions(num_features)) {}
  explicit BatchNorm2dImpl(const torch::nn::BatchNorm2dOptions& options);
  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  torch::Tensor forward(const torch::Tensor& input);

  torch::nn::BatchNorm2dOptions options;
  torch::Tensor weight, bias, running_mean, running_var, num_batches_tracked;
  // Set by Model::set_taps; empty when the layer is not tapped (then forward costs nothing more).
  std::function<void(const torch::Tensor&)> record;
};
TORCH_MODULE(BatchNorm2d);

// [2, C]: row 0 the per-channel mean of an NCHW batch, row 1 its biased variance (what
// BatchNorm normalizes with in train mode).
ARDKIT_API torch::Tensor channel_statistics(const torch::Tensor& input);

}  // namespace ardkit::nn
