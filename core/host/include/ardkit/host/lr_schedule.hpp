#pragma once
#include <vector>

#include "ardkit/export.hpp"
#include "ardkit/params.hpp"

namespace ardkit {

// The learning rate as a function of training progress, from the experiment's [optimizer] lr and
// its [schedule] table. Progress t is measured in epochs: per = "epoch" evaluates at t = epoch + b
// (the lr is set once at the start of each epoch), per = "batch" at t = epoch + b + (i+1)/S for
// batch i of S — Rice et al.'s convention (lr_schedule(epoch + (i + 1) / len(loader))). `epoch`
// is 0-based and b is `epoch_base` (0 or 1): official codes that count epochs from 1 (TRADES decays
// at `epoch >= 75` of 1..76; IAD's pre_train/AT.py sets lr_schedule(epoch + 1) before every
// batch) are written with their own numbers and epoch_base = 1, instead of shifting every
// milestone by hand — a shift that is easy to forget and trains a whole epoch at 10x the lr.
//   constant:   lr
//   multistep:  lr * gamma^(number of milestones <= t)
//   piecewise:  values[k] where k = number of boundaries <= t (piecewise constant, as Madry's
//               [[0, 0.1], [40000, 0.01], ...] or Rice's 50%/75% steps, written in epochs)
//   cosine:     min_lr + (lr - min_lr) * (1 + cos(pi * t' / T')) / 2 over the epochs after warm-up
// A linear warm-up over the first `warmup_epochs` multiplies any of them by
// min(1, t_w / warmup_epochs), t_w = epoch + 1 (per epoch) or epoch + (i+1)/S (per batch).
class ARDKIT_API LrSchedule {
 public:
  // Checks the table (config errors naming the key and the fix).
  LrSchedule(const Params& optimizer, const Params& schedule, int64_t epochs);
  bool per_batch() const {
    return per_batch_;
  }
  // `step` is the batch index within the epoch, `steps` the batches per epoch.
  double at(int64_t epoch, int64_t step, int64_t steps) const;

 private:
  std::string type_;
  bool per_batch_ = false;
  double lr_ = 0.1, gamma_ = 0.1, min_lr_ = 0.0, warmup_ = 0.0, epoch_base_ = 0.0;
  std::vector<double> boundaries_, values_;
  int64_t epochs_ = 1;
};

}  // namespace ardkit
