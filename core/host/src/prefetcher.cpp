#include "ardkit/host/prefetcher.hpp"

#include <torch/torch.h>

#include "ardkit/host/threading.hpp"

namespace ardkit {

uint64_t augmentation_seed(uint64_t seed, int64_t epoch, int64_t step) {
  // splitmix64 over the three numbers: nearby (epoch, step) pairs get unrelated seeds.
  uint64_t z = seed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(epoch) * 0xbf58476d1ce4e5b9ull +
               static_cast<uint64_t>(step) * 0x94d049bb133111ebull + 0x632be59bd9b4e019ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

BatchPrefetcher::BatchPrefetcher(DataSource& data, torch::Tensor order, int64_t batch_size,
                                 int64_t first_step, uint64_t seed, int64_t epoch, bool pin_memory)
    : data_(data),
      order_(std::move(order)),
      batch_size_(batch_size),
      steps_((order_.size(0) + batch_size - 1) / batch_size),
      step_(first_step),
      seed_(seed),
      epoch_(epoch),
      pin_memory_(pin_memory) {
  if (step_ < steps_)
    worker_ = std::thread([this] { work(); });
}

BatchPrefetcher::~BatchPrefetcher() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  if (worker_.joinable())
    worker_.join();
}

Batch BatchPrefetcher::gather(int64_t step) const {
  const int64_t n = order_.size(0);
  const auto indices = order_.slice(0, step * batch_size_, std::min(n, (step + 1) * batch_size_));
  return data_.get(Split::train, indices,
                   Augmentation::seeded(augmentation_seed(seed_, epoch_, step)));
}

void BatchPrefetcher::work() {
  use_one_cpu_thread_here();
  for (int64_t step = step_; step < steps_; ++step) {
    std::optional<Batch> batch;
    std::exception_ptr error;
    try {
      batch = gather(step);
      if (pin_memory_) {
        batch->x = batch->x.pin_memory();
        batch->y = batch->y.pin_memory();
      }
    } catch (...) {
      error = std::current_exception();
    }
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [this] { return stop_ || (!ready_ && !error_); });
    if (stop_)
      return;
    ready_ = std::move(batch);
    error_ = error;
    changed_.notify_all();
    if (error)
      return;  // next() rethrows it; the epoch ends there
  }
}

Batch BatchPrefetcher::next() {
  if (step_ >= steps_)
    return gather(step_);  // past the end: the data source says what is wrong
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [this] { return ready_.has_value() || error_; });
  ++step_;
  if (error_)
    std::rethrow_exception(std::exchange(error_, nullptr));
  Batch batch = std::move(*ready_);
  ready_.reset();
  changed_.notify_all();
  return batch;
}

}  // namespace ardkit
