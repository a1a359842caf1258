#include "ardkit/host/autocast.hpp"

#include <ATen/autocast_mode.h>
#include <fmt/format.h>

#include "ardkit/error.hpp"

namespace ardkit {

std::optional<at::ScalarType> autocast_type(const Params& run, torch::Device device) {
  const std::string precision = run.get_string("precision");
  if (precision == "bfloat16")
    return at::kBFloat16;
  if (precision == "float16") {
    if (!device.is_cuda())
      throw_config_error(fmt::format(
          "{}: [run] precision = \"float16\" needs device = \"cuda\" (LibTorch's CPU autocast has "
          "no float16); use \"bfloat16\" on the CPU",
          run.origin("precision")));
    return at::kHalf;
  }
  return std::nullopt;
}

AutocastGuard::AutocastGuard(torch::Device device, std::optional<at::ScalarType> type) {
  if (!type)
    return;
  active_ = true;
  cuda_ = device.is_cuda();
  if (cuda_) {
    was_enabled_ = at::autocast::is_enabled();
    previous_type_ = at::autocast::get_autocast_gpu_dtype();
    at::autocast::set_autocast_gpu_dtype(*type);
    at::autocast::set_enabled(true);
  } else {
    was_enabled_ = at::autocast::is_cpu_enabled();
    previous_type_ = at::autocast::get_autocast_cpu_dtype();
    at::autocast::set_autocast_cpu_dtype(*type);
    at::autocast::set_cpu_enabled(true);
  }
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  if (!active_)
    return;
  // The cache holds the low-precision copies of the weights made in this step; they are stale
  // once the optimizer moves the weights.
  if (at::autocast::decrement_nesting() == 0)
    at::autocast::clear_cache();
  if (cuda_) {
    at::autocast::set_enabled(was_enabled_);
    at::autocast::set_autocast_gpu_dtype(previous_type_);
  } else {
    at::autocast::set_cpu_enabled(was_enabled_);
    at::autocast::set_autocast_cpu_dtype(previous_type_);
  }
}

}  // namespace ardkit
