#pragma once
// The engine side of a data-free run: drives a Generator plugin between the student's steps.
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/optim/adam.h>
#include <torch/serialize/archive.h>

#include "ardkit/generator.hpp"
#include "ardkit/host/generator_options.hpp"
#include "ardkit/host/loss_balance.hpp"
#include "ardkit/objective.hpp"

namespace ardkit {

// An epoch of a data-free run is `iterations` x (generator_steps updates, student_steps student
// steps), after an optional re-initialisation and `synthesis_steps` updates at its start. Every
// student batch is labelled by the teacher (its argmax on the clean synthetic images) and indexed
// by its position in the epoch (indices 0..samples_per_epoch()-1, for per-sample objectives).
// Everything that decides what comes next (weights, optimizer, term magnitudes, pool, the last
// update's images and latent, how far the epoch's synthesis got) is in save/load, and all
// randomness comes from the global generator the checkpoint restores: a resumed run is
// bit-identical to an uninterrupted one.
class ARDKIT_API DataFree {
 public:
  DataFree(Generator& generator, GeneratorOptions options, Model& teacher, Model& student,
           Knobs& knobs, DataSpec spec, int64_t batch_size, torch::Device device);

  const GeneratorOptions& options() const {
    return options_;
  }
  int64_t steps_per_epoch() const {
    return options_.iterations * options_.student_steps;
  }
  // Student steps of `epoch`: none in the warmup epochs, steps_per_epoch() after them.
  int64_t steps_in(int64_t epoch) const {
    return epoch < options_.warmup_epochs ? 0 : steps_per_epoch();
  }
  int64_t samples_per_epoch() const {
    return epoch_samples(options_, batch_size_);
  }
  // The synthetic samples of an epoch with these options: what a data-free run's objective sizes
  // its per-sample state by (known before the driver exists).
  static int64_t epoch_samples(const GeneratorOptions& options, int64_t batch_size) {
    return options.iterations * options.student_steps * batch_size;
  }
  // The generator's learning rates are lr * scale ("follow": the student's schedule shape).
  void set_lr_scale(double scale);
  // Before the epoch's first student step: re-initialisation and the synthesis updates. Returns
  // false when an interrupt arrived mid-synthesis (a checkpoint then resumes the synthesis).
  bool prepare_epoch(int64_t epoch);
  // The generator updates due before student step `s` of the epoch, then that step's batch.
  Batch next_batch(int64_t epoch, int64_t s);
  // The generator updates due after student step `s` (order = "student_first").
  void after_step(int64_t epoch, int64_t s);
  // The generator's terms for the student's loss on `batch` (ZSKT's attention transfer), added
  // to `loss` with their weights.
  void add_student_terms(LossTerms& loss, const Batch& batch, int64_t epoch);
  // A synthetic batch without updating anything (hooks that measure, e.g. ITA).
  Batch draw(int64_t n);
  // Generator loss terms ("gen.*": each term, its weight when balanced, the total) and statistics
  // of the latest student batch ("syn.*": pixel mean and std, the teacher's mean confidence,
  // the entropy of its predicted-class histogram in nats), for the logs.
  const std::map<std::string, double>& latest() const {
    return latest_;
  }
  void write_grid(const std::filesystem::path& path) const;
  // The pooled synthetic batches, oldest first (student_batch = "pool").
  const std::vector<torch::Tensor>& pool() const {
    return pool_;
  }
  // Generator optimizer steps so far in the run (checkpointed: the budget in results.json).
  int64_t generator_updates() const {
    return generator_updates_;
  }

  void save(torch::serialize::OutputArchive& archive) const;
  void load(torch::serialize::InputArchive& archive);

 private:
  void update(int64_t epoch);
  void updates(int64_t epoch, int64_t count);
  void add_to_pool();
  void end_round(int64_t epoch);
  void start_round();
  void reset_optimizer();
  void reinitialize();
  Batch label(torch::Tensor x, int64_t first_index);
  torch::Tensor from_pool(int64_t n);

  Generator& generator_;
  GeneratorOptions options_;
  Model& teacher_;
  Model& student_;
  Knobs& knobs_;
  DataSpec spec_;
  int64_t batch_size_;
  torch::Device device_;
  std::unique_ptr<torch::optim::Adam> optimizer_;
  LossBalance balance_;
  double lr_scale_ = 1.0;
  std::vector<torch::Tensor> pool_;
  torch::Tensor last_x_, last_z_, iteration_x_, student_x_, best_x_;
  double best_loss_ = 0;  // of best_x_, the round's lowest total loss so far (keep = "best")
  int64_t synthesis_epoch_ = -1, synthesis_done_ = 0, generator_updates_ = 0;
  std::map<std::string, double> latest_;
};

}  // namespace ardkit
