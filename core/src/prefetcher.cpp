#include "ardkit/host/prefetcher.hpp"

#include <torch/torch.h>

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
                                 int64_t first_step, uint64_t seed, int64_t epoch)
    : data_(data),
      order_(std::move(order)),
      batch_size_(batch_size),
      steps_((order_.size(0) + batch_size - 1) / batch_size),
      step_(first_step),
      seed_(seed),
      epoch_(epoch) {
  if (step_ < steps_)
    pending_ = std::async(std::launch::async, [this, s = step_] { return gather(s); });
}

BatchPrefetcher::~BatchPrefetcher() {
  if (pending_.valid())
    pending_.wait();
}

Batch BatchPrefetcher::gather(int64_t step) const {
  const int64_t n = order_.size(0);
  const auto indices = order_.slice(0, step * batch_size_, std::min(n, (step + 1) * batch_size_));
  return data_.get(Split::train, indices,
                   Augmentation::seeded(augmentation_seed(seed_, epoch_, step)));
}

Batch BatchPrefetcher::next() {
  Batch batch = pending_.valid() ? pending_.get() : gather(step_);
  ++step_;
  if (step_ < steps_)
    pending_ = std::async(std::launch::async, [this, s = step_] { return gather(s); });
  return batch;
}

}  // namespace ardkit
