// The training split as a BatchSource: an epoch is the split in a seeded order, prefetched.
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <optional>

#include "ardkit/host/batch_source.hpp"
#include "ardkit/host/prefetcher.hpp"

namespace ardkit {

torch::Tensor epoch_order(int64_t seed, int64_t epoch, int64_t n) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(
      static_cast<uint64_t>(seed) * 1000003ull + static_cast<uint64_t>(epoch) + 17ull);
  return torch::randperm(n, generator, torch::TensorOptions().dtype(torch::kLong));
}

namespace {

class RealBatches final : public BatchSource {
 public:
  RealBatches(DataSource& data, int64_t batch_size, int64_t seed, torch::Device device)
      : data_(data),
        batch_size_(batch_size),
        seed_(seed),
        device_(device),
        size_(data.size(Split::train)) {}

  int64_t samples_per_epoch() const override {
    return size_;
  }
  int64_t steps_per_epoch() const override {
    return (size_ + batch_size_ - 1) / batch_size_;
  }
  bool synthetic() const override {
    return false;
  }

  std::function<torch::Tensor()> train_labels() const override {
    // Gathered on the first call only (most objectives never ask), in chunks so that no more
    // than a chunk of images is held at once.
    auto labels = std::make_shared<torch::Tensor>();
    DataSource* source = &data_;
    const int64_t size = size_;
    return [labels, source, size]() {
      if (!labels->defined()) {
        std::vector<torch::Tensor> parts;
        constexpr int64_t chunk = 4096;
        for (int64_t start = 0; start < size; start += chunk) {
          const auto idx = torch::arange(start, std::min(start + chunk, size), torch::kLong);
          parts.push_back(source->get(Split::train, idx, Augmentation::none()).y.to(torch::kCPU));
        }
        *labels = torch::cat(parts).to(torch::kLong);
      }
      return *labels;
    };
  }

  bool begin_epoch(int64_t epoch, int64_t first_step) override {
    batches_.reset();  // one worker at a time
    batches_.emplace(data_, epoch_order(seed_, epoch, size_), batch_size_, first_step,
                     static_cast<uint64_t>(seed_), epoch, device_.is_cuda());
    return true;
  }
  Batch next(int64_t /*epoch*/, int64_t /*step*/) override {
    return batches_->next();
  }
  void end_epoch(int64_t /*epoch*/, const std::filesystem::path& /*run_root*/) override {
    batches_.reset();
  }

  // In an order seeded by the step, so that drawing moves nothing else.
  Batch draw(int64_t n, int64_t global_step) override {
    const auto order = epoch_order(seed_ + 7919, global_step, size_);
    Batch batch =
        data_.get(Split::train, order.narrow(0, 0, std::min(n, size_)), Augmentation::none());
    batch.x = batch.x.to(device_);
    batch.y = batch.y.to(device_);
    return batch;
  }

 private:
  DataSource& data_;
  int64_t batch_size_, seed_;
  torch::Device device_;
  int64_t size_;
  std::optional<BatchPrefetcher> batches_;
};

}  // namespace

std::unique_ptr<BatchSource> real_batches(DataSource& data, int64_t batch_size, int64_t seed,
                                          torch::Device device) {
  return std::make_unique<RealBatches>(data, batch_size, seed, device);
}

}  // namespace ardkit
