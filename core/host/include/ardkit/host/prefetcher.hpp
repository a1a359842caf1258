#pragma once
#include <condition_variable>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>

#include "ardkit/data.hpp"

namespace ardkit {

// Gathers (and augments) the next training batch on a background thread while the current step
// runs, so loading never stalls training. Batches come out in `order`, starting at `first_step`;
// each batch's augmentation seed depends only on (seed, epoch, step), so results are the same
// with or without prefetching and after a resume.
//
// One worker thread serves the whole epoch, with one CPU thread's worth of ATen work: a thread
// per batch made LibTorch rebuild its XNNPACK thread pool for every batch (each new thread's
// first parallel loop resets the pools), and those pools' spinning threads cost a fifth of a
// small model's step on 2 cores.
class ARDKIT_API BatchPrefetcher {
 public:
  // `pin_memory`: batches come in page-locked memory, so that a copy to a GPU can overlap the
  // step (`to(device, /*non_blocking=*/true)`); needs a CUDA LibTorch.
  BatchPrefetcher(DataSource& data, torch::Tensor order, int64_t batch_size, int64_t first_step,
                  uint64_t seed, int64_t epoch, bool pin_memory = false);
  ~BatchPrefetcher();
  BatchPrefetcher(const BatchPrefetcher&) = delete;
  BatchPrefetcher& operator=(const BatchPrefetcher&) = delete;
  Batch next();  // the batch of the next step; rethrows what gathering it threw
  int64_t steps() const {
    return steps_;
  }

 private:
  Batch gather(int64_t step) const;
  void work();

  DataSource& data_;
  torch::Tensor order_;
  int64_t batch_size_, steps_, step_;
  uint64_t seed_;
  int64_t epoch_;
  bool pin_memory_;
  // One slot: the worker fills it with the batch of `step_` (or its error) and waits until
  // next() takes it.
  std::mutex mutex_;
  std::condition_variable changed_;
  std::optional<Batch> ready_;
  std::exception_ptr error_;
  bool stop_ = false;
  std::thread worker_;
};

// The augmentation seed of one training step.
ARDKIT_API uint64_t augmentation_seed(uint64_t seed, int64_t epoch, int64_t step);

}  // namespace ardkit
