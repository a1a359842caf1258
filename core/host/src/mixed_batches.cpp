// A data-free run's batches with part of each replaced by real training images: a BatchSource
// around the generated one, for methods that distil from a few real images and many synthetic
// ones ([generator] real_fraction).
#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "ardkit/host/batch_source.hpp"

namespace ardkit {

namespace {

class MixedBatches final : public BatchSource {
 public:
  MixedBatches(std::unique_ptr<BatchSource> synthetic, DataSource& data, double real_fraction,
               int64_t batch_size, int64_t seed, torch::Device device)
      : synthetic_(std::move(synthetic)),
        data_(data),
        real_per_batch_(std::clamp<int64_t>(std::llround(real_fraction * batch_size), 1,
                                            std::max<int64_t>(batch_size - 1, 1))),
        seed_(seed),
        device_(device),
        size_(data.size(Split::train)) {}

  // The synthetic source's epoch: indices are positions in it, the real rows taking the places
  // of the synthetic rows they replace.
  int64_t samples_per_epoch() const override {
    return synthetic_->samples_per_epoch();
  }
  int64_t steps_per_epoch() const override {
    return synthetic_->steps_per_epoch();
  }
  int64_t steps_in(int64_t epoch) const override {
    return synthetic_->steps_in(epoch);
  }
  bool synthetic() const override {
    return true;
  }
  bool validates() const override {
    return synthetic_->validates();
  }
  void start() override {
    synthetic_->start();
  }
  void set_lr_scale(double scale) override {
    synthetic_->set_lr_scale(scale);
  }
  bool begin_epoch(int64_t epoch, int64_t first_step) override {
    return synthetic_->begin_epoch(epoch, first_step);
  }

  // The synthetic batch with its last rows replaced by real images, labelled by the dataset.
  // Which real images depends only on (seed, epoch, step), so a resumed run takes the same ones.
  Batch next(int64_t epoch, int64_t step) override {
    Batch batch = synthetic_->next(epoch, step);
    const int64_t n = batch.x.size(0);
    const int64_t k = std::min(real_per_batch_, n - 1);
    if (k <= 0 || size_ == 0)
      return batch;
    if (epoch != order_epoch_) {  // one permutation per epoch, not one per step
      order_ = epoch_order(seed_ + 104729, epoch, size_);
      order_epoch_ = epoch;
    }
    const auto rows =
        torch::arange(step * k, (step + 1) * k, torch::kLong).remainder(size_).to(torch::kLong);
    const Batch real = data_.get(Split::train, order_.index({rows}), Augmentation::none());
    const auto x = real.x.to(batch.x.device(), batch.x.scalar_type());
    const auto y = real.y.to(batch.y.device(), batch.y.scalar_type());
    batch.x = torch::cat({batch.x.narrow(0, 0, n - k), x});
    batch.y = torch::cat({batch.y.narrow(0, 0, n - k), y});
    real_images_ += k;
    return batch;
  }
  std::function<void(LossTerms&)> student_terms(const Batch& batch, int64_t epoch) override {
    return synthetic_->student_terms(batch, epoch);
  }
  void after_step(int64_t epoch, int64_t step, NamedValues& values) override {
    synthetic_->after_step(epoch, step, values);
  }
  std::string progress_note() const override {
    return synthetic_->progress_note();
  }
  void end_epoch(int64_t epoch, const std::filesystem::path& run_root) override {
    synthetic_->end_epoch(epoch, run_root);
  }
  Batch draw(int64_t n, int64_t global_step) override {
    return synthetic_->draw(n, global_step);
  }
  std::vector<std::pair<std::string, int64_t>> budget(int64_t batch_size) const override {
    auto out = synthetic_->budget(batch_size);
    out.emplace_back("real_images", real_images_);
    return out;
  }

  // The synthetic source's state, and the count of real images read (for the budget).
  std::string state_key() const override {
    return synthetic_->state_key();
  }
  void save(torch::serialize::OutputArchive& archive) const override {
    synthetic_->save(archive);
    archive.write("mixed.real_images", torch::tensor(real_images_, torch::kLong));
  }
  void load(torch::serialize::InputArchive& archive) override {
    synthetic_->load(archive);
    torch::Tensor count;
    archive.read("mixed.real_images", count);
    real_images_ = count.item<int64_t>();
  }

 private:
  std::unique_ptr<BatchSource> synthetic_;
  DataSource& data_;
  int64_t real_per_batch_, seed_;
  torch::Device device_;
  int64_t size_;
  int64_t real_images_ = 0;
  // The real split's order of the epoch in progress (a function of seed and epoch only).
  int64_t order_epoch_ = -1;
  torch::Tensor order_;
};

}  // namespace

std::unique_ptr<BatchSource> mixed_batches(std::unique_ptr<BatchSource> synthetic, DataSource& data,
                                           double real_fraction, int64_t batch_size, int64_t seed,
                                           torch::Device device) {
  return std::make_unique<MixedBatches>(std::move(synthetic), data, real_fraction, batch_size, seed,
                                        device);
}

}  // namespace ardkit
