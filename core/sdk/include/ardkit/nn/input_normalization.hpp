#pragma once
#include <vector>

#include <torch/nn/cloneable.h>
#include <torch/types.h>

#include "ardkit/export.hpp"
#include "ardkit/params.hpp"

namespace ardkit::nn {

// (x - mean) / std per channel, applied inside a model so the model takes [0,1] pixels.
// The statistics are plain tensors, not buffers: they are configuration, not weights, and a
// state dict must match the reference PyTorch definition key for key.
class ARDKIT_API InputNormalizationImpl : public torch::nn::Cloneable<InputNormalizationImpl> {
 public:
  InputNormalizationImpl(std::vector<double> mean = {}, std::vector<double> std = {});
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x);
  bool identity() const {
    return mean_values_.empty();
  }

 private:
  std::vector<double> mean_values_, std_values_;
  torch::Tensor mean_, std_;
};
TORCH_MODULE(InputNormalization);

// The `mean` and `std` parameters every model plugin offers ([] = no normalization).
ARDKIT_API void add_normalization_params(ParamSchema& schema);
// Checks one value per input channel (a single value would silently broadcast).
ARDKIT_API InputNormalization normalization_from(const Params& params, int64_t channels);

}  // namespace ardkit::nn
