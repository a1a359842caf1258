#include "ardkit/generator.hpp"

#include <fmt/format.h>
#include <torch/torch.h>

#include "ardkit/error.hpp"

namespace ardkit {

torch::Tensor to_pixels(const torch::Tensor& normalized, const std::vector<double>& mean,
                        const std::vector<double>& std, const std::string& mode) {
  const int64_t c = normalized.size(1);
  torch::Tensor x = normalized;
  if (!mean.empty()) {
    if (static_cast<int64_t>(mean.size()) != c || static_cast<int64_t>(std.size()) != c)
      throw_config_error(
          fmt::format("[generator] mean and std need one value per channel ({})", c));
    const auto opts = normalized.options();
    const auto m = torch::tensor(mean, opts.dtype(torch::kDouble)).to(opts).view({1, c, 1, 1});
    const auto s = torch::tensor(std, opts.dtype(torch::kDouble)).to(opts).view({1, c, 1, 1});
    x = normalized * s + m;
  }
  if (mode == "none")
    return x;
  if (mode == "clamp")
    return x.clamp(0, 1);
  if (mode != "straight_through")
    throw_config_error("[generator] pixels must be straight_through, clamp or none, got '" + mode +
                       "'");
  // The clamped value forward; the difference carries no gradient, so d x / d out is s everywhere.
  return x + (x.clamp(0, 1) - x).detach();
}

}  // namespace ardkit
