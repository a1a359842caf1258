// A data-free run's batches as a BatchSource: the engine's DataFree driver behind the interface.
#include <fmt/format.h>

#include <optional>

#include "ardkit/host/batch_source.hpp"
#include "ardkit/host/data_free.hpp"

namespace ardkit {

namespace {

class GeneratedBatches final : public BatchSource {
 public:
  GeneratedBatches(Generator& generator, GeneratorOptions options, Model& teacher, Model& student,
                   Knobs& knobs, DataSpec spec, int64_t batch_size, torch::Device device)
      : generator_(generator),
        options_(std::move(options)),
        teacher_(teacher),
        student_(student),
        knobs_(knobs),
        spec_(std::move(spec)),
        batch_size_(batch_size),
        device_(device) {}

  int64_t samples_per_epoch() const override {
    return DataFree::epoch_samples(options_, batch_size_);
  }
  bool synthetic() const override {
    return true;
  }
  // No best checkpoint is selected unless [generator] real_validation allows the real split.
  bool validates() const override {
    return options_.real_validation;
  }
  void start() override {
    driver_.emplace(generator_, options_, teacher_, student_, knobs_, spec_, batch_size_, device_);
  }

  int64_t steps_per_epoch() const override {
    return driver_->steps_per_epoch();
  }
  int64_t steps_in(int64_t epoch) const override {
    return driver_->steps_in(epoch);
  }
  void set_lr_scale(double scale) override {
    driver_->set_lr_scale(scale);
  }
  // The synthesis due at the epoch's start; a mid-epoch resume has done it already.
  bool begin_epoch(int64_t epoch, int64_t first_step) override {
    return first_step > 0 || driver_->prepare_epoch(epoch);
  }
  Batch next(int64_t epoch, int64_t step) override {
    return driver_->next_batch(epoch, step);
  }
  std::function<void(LossTerms&)> student_terms(const Batch& batch, int64_t epoch) override {
    return
        [this, &batch, epoch](LossTerms& loss) { driver_->add_student_terms(loss, batch, epoch); };
  }
  void after_step(int64_t epoch, int64_t step, NamedValues& values) override {
    driver_->after_step(epoch, step);
    for (const auto& [name, value] : driver_->latest())
      values.emplace_back(name, value);
  }
  // The generator's loss and the diversity of what it makes, beside the student's loss.
  std::string progress_note() const override {
    const auto& latest = driver_->latest();
    const auto loss = latest.find("gen.loss");
    const auto entropy = latest.find("syn.class_entropy");
    if (loss == latest.end() || entropy == latest.end())
      return "";
    return fmt::format(" gen {:.4f} class entropy {:.2f}", loss->second, entropy->second);
  }
  void end_epoch(int64_t epoch, const std::filesystem::path& run_root) override {
    if (driver_->options().sample_grid)
      driver_->write_grid(run_root / "samples" / fmt::format("epoch_{:03d}.png", epoch + 1));
  }
  Batch draw(int64_t n, int64_t /*global_step*/) override {
    return driver_->draw(n);
  }
  std::vector<std::pair<std::string, int64_t>> budget(int64_t batch_size) const override {
    return {{"generator_updates", driver_->generator_updates()},
            {"generator_images", driver_->generator_updates() * batch_size}};
  }

  std::string state_key() const override {
    return "generator";
  }
  void save(torch::serialize::OutputArchive& archive) const override {
    driver_->save(archive);
  }
  void load(torch::serialize::InputArchive& archive) override {
    driver_->load(archive);
  }

 private:
  Generator& generator_;
  GeneratorOptions options_;
  Model& teacher_;
  Model& student_;
  Knobs& knobs_;
  DataSpec spec_;
  int64_t batch_size_;
  torch::Device device_;
  std::optional<DataFree> driver_;
};

}  // namespace

std::unique_ptr<BatchSource> generated_batches(Generator& generator,
                                               const GeneratorOptions& options, Model& teacher,
                                               Model& student, Knobs& knobs, DataSpec spec,
                                               int64_t batch_size, torch::Device device) {
  return std::make_unique<GeneratedBatches>(generator, options, teacher, student, knobs,
                                            std::move(spec), batch_size, device);
}

}  // namespace ardkit
