#pragma once
// Where a training run's batches come from. The training loop drives one BatchSource and does not
// know which: the training split through a prefetcher (real_batches), a generator trained
// against the teacher between the student's steps (generated_batches, a data-free run), or the
// two in every batch (mixed_batches around generated_batches, [generator] real_fraction).
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/serialize/archive.h>

#include "ardkit/data.hpp"
#include "ardkit/export.hpp"
#include "ardkit/generator.hpp"
#include "ardkit/host/generator_options.hpp"
#include "ardkit/knobs.hpp"
#include "ardkit/model.hpp"
#include "ardkit/objective.hpp"

namespace ardkit {

using NamedValues = std::vector<std::pair<std::string, double>>;

class ARDKIT_API BatchSource {
 public:
  virtual ~BatchSource() = default;

  // Samples an epoch stands for: objectives size per-sample state (memory banks) by it, and
  // Batch::index runs over 0..samples_per_epoch()-1.
  virtual int64_t samples_per_epoch() const = 0;
  // Student steps per epoch, as the learning-rate schedule counts them.
  virtual int64_t steps_per_epoch() const = 0;
  // Student steps `epoch` trains (none in a data-free warmup epoch; the schedule still counts it).
  virtual int64_t steps_in(int64_t /*epoch*/) const {
    return steps_per_epoch();
  }
  // True when batches are made, not read: Batch::index is then a position within the epoch.
  virtual bool synthetic() const = 0;
  // The training labels by sample index, for objectives that sample by class; null when the
  // samples have no fixed labels (synthetic()).
  virtual std::function<torch::Tensor()> train_labels() const {
    return nullptr;
  }
  // Whether the run may select its best checkpoint on the data's validation split.
  virtual bool validates() const {
    return true;
  }

  // Once, after the objective and the optimizer are set up and before a checkpoint is loaded:
  // the source's own setup (a generator's draws from the seeded global generator, so its place in
  // the run's order of random draws is fixed). Only the four functions above are asked before.
  virtual void start() {}
  // The source's learning rates follow the student's schedule by this factor, when they follow.
  virtual void set_lr_scale(double /*scale*/) {}
  // The epoch starts, or resumes at `first_step`. False when an interrupt arrived while the
  // source prepared it (a checkpoint then resumes the preparation).
  virtual bool begin_epoch(int64_t epoch, int64_t first_step) = 0;
  // The batch of step `step` of the epoch (on the CPU or the device; the loop moves it).
  virtual Batch next(int64_t epoch, int64_t step) = 0;
  // Terms the source adds to the objective's loss on `batch` (StepContext::extra_terms); null
  // when it adds none. The function is called within the step, while `batch` lives.
  virtual std::function<void(LossTerms&)> student_terms(const Batch& /*batch*/, int64_t /*epoch*/) {
    return nullptr;
  }
  // After the student's step: the source's own work and values for the step's metrics line.
  virtual void after_step(int64_t /*epoch*/, int64_t /*step*/, NamedValues& /*values*/) {}
  // A short note for the progress line (empty: none).
  virtual std::string progress_note() const {
    return "";
  }
  // After the epoch's validation and hooks, before its checkpoint; `run_root` is the run folder.
  virtual void end_epoch(int64_t /*epoch*/, const std::filesystem::path& /*run_root*/) {}
  // n training inputs for hooks that measure, moving nothing the run depends on except the
  // global random generator (which a checkpoint restores). `global_step` seeds a real draw.
  virtual Batch draw(int64_t n, int64_t global_step) = 0;
  // What the source spent, for results.json's budget (e.g. generator updates).
  virtual std::vector<std::pair<std::string, int64_t>> budget(int64_t /*batch_size*/) const {
    return {};
  }

  // The checkpoint entry of the source's state; empty when it has none.
  virtual std::string state_key() const {
    return "";
  }
  virtual void save(torch::serialize::OutputArchive& /*archive*/) const {}
  virtual void load(torch::serialize::InputArchive& /*archive*/) {}
};

// The training split in an order that depends only on (seed, epoch), gathered and augmented one
// batch ahead on a background thread (pinned for a copy to a GPU).
ARDKIT_API std::unique_ptr<BatchSource> real_batches(DataSource& data, int64_t batch_size,
                                                     int64_t seed, torch::Device device);

// A data-free run's batches: the generator plugin driven by the engine's DataFree (data_free.hpp)
// against the teacher and the student; the driver and the generator's setup come at start().
ARDKIT_API std::unique_ptr<BatchSource> generated_batches(Generator& generator,
                                                          const GeneratorOptions& options,
                                                          Model& teacher, Model& student,
                                                          Knobs& knobs, DataSpec spec,
                                                          int64_t batch_size, torch::Device device);

// A data-free run's batches with round(real_fraction * batch_size) rows of each (at least one,
// at most all but one) replaced by real training images with their labels, in an order that
// depends only on (seed, epoch, step); the synthetic source's state, budget and indices stay.
ARDKIT_API std::unique_ptr<BatchSource> mixed_batches(std::unique_ptr<BatchSource> synthetic,
                                                      DataSource& data, double real_fraction,
                                                      int64_t batch_size, int64_t seed,
                                                      torch::Device device);

// The order of a real epoch: a permutation of n that depends only on (seed, epoch).
ARDKIT_API torch::Tensor epoch_order(int64_t seed, int64_t epoch, int64_t n);

}  // namespace ardkit
