#pragma once
// What makes a training run resumable: the models, optimizer, objective, batch source and hook
// state, the knobs, the position in the schedule and the random generators, in one file written
// atomically.
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/optim/optimizer.h>

#include "ardkit/export.hpp"
#include "ardkit/hook.hpp"
#include "ardkit/host/batch_source.hpp"
#include "ardkit/host/weight_average.hpp"
#include "ardkit/knobs.hpp"
#include "ardkit/model.hpp"
#include "ardkit/objective.hpp"

namespace ardkit {

// Where training stands: with the state the Checkpointer saves, enough to continue bit-exactly.
struct TrainPosition {
  int64_t epoch = 0;          // the epoch in progress (== epochs when training is done)
  int64_t step_in_epoch = 0;  // batches of that epoch already trained on
  int64_t global_step = 0;
  double best_metric = -1.0;  // validation accuracy of the best checkpoint so far
  // Running totals of the epoch in progress: a run resumed mid-epoch reports the same epoch
  // averages as one that was never stopped.
  std::map<std::string, double> epoch_sums;
  int64_t epoch_counted = 0, epoch_images = 0;
};

// A model trained beside the student ([companions.NAME]) and its optimizer.
struct CheckpointedCompanion {
  std::string name;
  Model* model = nullptr;
  torch::optim::Optimizer* optimizer = nullptr;
};

// The parts of a run a checkpoint holds; the teachers only for their query counts (frozen).
struct CheckpointParts {
  Model* student = nullptr;
  Model* teacher = nullptr;
  std::map<std::string, Model*> teachers;  // [teachers.NAME]
  std::vector<CheckpointedCompanion> companions;
  Objective* objective = nullptr;
  torch::optim::Optimizer* optimizer = nullptr;
  Knobs* knobs = nullptr;
  BatchSource* source = nullptr;
  const std::vector<std::shared_ptr<Hook>>* hooks = nullptr;
  WeightAverage* average = nullptr;  // null or inactive: none
};

class ARDKIT_API Checkpointer {
 public:
  explicit Checkpointer(CheckpointParts parts) : parts_(parts) {}
  // Serialized in memory, then written atomically: a crash or a full disk mid-write never
  // replaces a good checkpoint, and the error is one line naming the file.
  void save(const std::filesystem::path& path, const TrainPosition& position) const;
  // Loads onto the student's device; an unreadable or foreign file is a one-line runtime error
  // naming it.
  TrainPosition load(const std::filesystem::path& path) const;

 private:
  CheckpointParts parts_;
};

}  // namespace ardkit
