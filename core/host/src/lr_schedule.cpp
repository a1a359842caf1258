#include "ardkit/host/lr_schedule.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "ardkit/error.hpp"

namespace ardkit {

LrSchedule::LrSchedule(const Params& optimizer, const Params& schedule, int64_t epochs)
    : type_(schedule.get_string("type")),
      per_batch_(schedule.get_string("per") == "batch"),
      lr_(optimizer.get_real("lr")),
      gamma_(schedule.get_real("gamma")),
      min_lr_(schedule.get_real("min_lr")),
      warmup_(schedule.get_real("warmup_epochs")),
      epoch_base_(static_cast<double>(schedule.get_int("epoch_base"))),
      epochs_(epochs) {
  if (type_ == "multistep") {
    for (int64_t m : schedule.get_int_list("milestones"))
      boundaries_.push_back(static_cast<double>(m));
  } else if (type_ == "piecewise") {
    boundaries_ = schedule.get_real_list("boundaries");
    values_ = schedule.get_real_list("values");
    if (values_.size() != boundaries_.size() + 1)
      throw_config_error(fmt::format(
          "{}: [schedule] piecewise needs one more value than boundaries ({} boundaries, {} "
          "values): values[0] holds before boundaries[0], values[k] from boundaries[k-1] on",
          schedule.origin("values"), boundaries_.size(), values_.size()));
  }
  for (size_t i = 1; i < boundaries_.size(); ++i)
    if (boundaries_[i] < boundaries_[i - 1])
      throw_config_error(
          fmt::format("{}: [schedule] {} must be in increasing order",
                      schedule.origin(type_ == "piecewise" ? "boundaries" : "milestones"),
                      type_ == "piecewise" ? "boundaries" : "milestones"));
  if (type_ == "cosine" && min_lr_ > lr_)
    throw_config_error(fmt::format("{}: [schedule] min_lr = {} exceeds [optimizer] lr = {}",
                                   schedule.origin("min_lr"), min_lr_, lr_));
}

double LrSchedule::at(int64_t epoch, int64_t step, int64_t steps) const {
  const double t = static_cast<double>(epoch) + epoch_base_ +
                   (per_batch_ ? static_cast<double>(step + 1) / static_cast<double>(steps) : 0.0);
  double lr = lr_;
  if (type_ == "multistep") {
    for (double b : boundaries_)
      if (t >= b)
        lr *= gamma_;
  } else if (type_ == "piecewise") {
    size_t k = 0;
    while (k < boundaries_.size() && t >= boundaries_[k])
      ++k;
    lr = values_[k];
  } else if (type_ == "cosine") {
    const double span = std::max(static_cast<double>(epochs_) - warmup_, 1e-12);
    const double progress = std::clamp((t - warmup_) / span, 0.0, 1.0);
    lr = min_lr_ + (lr_ - min_lr_) * 0.5 * (1.0 + std::cos(M_PI * progress));
  }
  if (warmup_ > 0) {
    const double tw = per_batch_ ? t - epoch_base_ : static_cast<double>(epoch + 1);
    lr *= std::min(1.0, tw / warmup_);
  }
  return lr;
}

}  // namespace ardkit
