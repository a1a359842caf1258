#include "ardkit/nn/input_normalization.hpp"

#include <torch/torch.h>

#include "ardkit/error.hpp"

namespace ardkit::nn {

InputNormalizationImpl::InputNormalizationImpl(std::vector<double> mean, std::vector<double> std)
    : mean_values_(std::move(mean)), std_values_(std::move(std)) {
  reset();
}

void InputNormalizationImpl::reset() {
  if (mean_values_.size() != std_values_.size())
    throw_config_error("model: 'mean' has " + std::to_string(mean_values_.size()) +
                       " values but 'std' has " + std::to_string(std_values_.size()) +
                       "; give one value per input channel for both (or [] for neither)");
  for (double s : std_values_)
    if (s <= 0)
      throw_config_error("model: every 'std' value must be > 0");
  if (identity())
    return;
  const auto n = static_cast<int64_t>(mean_values_.size());
  mean_ = torch::tensor(mean_values_, torch::kFloat).view({1, n, 1, 1});
  std_ = torch::tensor(std_values_, torch::kFloat).view({1, n, 1, 1});
}

torch::Tensor InputNormalizationImpl::forward(const torch::Tensor& x) {
  if (identity())
    return x;
  if (mean_.device() != x.device()) {
    mean_ = mean_.to(x.device());
    std_ = std_.to(x.device());
  }
  return (x - mean_) / std_;
}

void add_normalization_params(ParamSchema& schema) {
  schema.push_back(
      param::real_list("mean", {})
          .help(
              "per-channel mean subtracted inside the model (inputs stay in [0,1]); [] for none"));
  schema.push_back(
      param::real_list("std", {}).help("per-channel std divided inside the model; [] for none"));
}

InputNormalization normalization_from(const Params& params, int64_t channels) {
  const auto mean = params.get_real_list("mean");
  const auto std = params.get_real_list("std");
  for (const auto& [key, values] : {std::pair{"mean", &mean}, std::pair{"std", &std}})
    if (!values->empty() && static_cast<int64_t>(values->size()) != channels)
      throw_config_error(params.origin(key) + ": '" + key + "' has " +
                         std::to_string(values->size()) + " values but the data has " +
                         std::to_string(channels) +
                         " channels; give one value per channel (or [] for no normalization)");
  for (double v : std)
    if (v <= 0)
      throw_config_error(params.origin("std") + ": every 'std' value must be > 0");
  return InputNormalization(mean, std);
}

}  // namespace ardkit::nn
