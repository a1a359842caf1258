#pragma once
#include <memory>
#include <vector>

#include "ardkit/attack.hpp"
#include "ardkit/data.hpp"
#include "ardkit/generator.hpp"
#include "ardkit/hook.hpp"
#include "ardkit/host/config.hpp"
#include "ardkit/host/evaluator.hpp"
#include "ardkit/host/run_dir.hpp"
#include "ardkit/knobs.hpp"
#include "ardkit/model.hpp"
#include "ardkit/objective.hpp"
#include "ardkit/weights.hpp"

namespace ardkit {

// Everything a training run is made of, built by the caller from the experiment's plugins.
struct TrainSetup {
  const ExperimentConfig* config = nullptr;
  ModelPtr student;
  ModelPtr teacher;       // may be null
  DataSpec teacher_data;  // the data the teacher was built for (its task); the run's otherwise
  std::shared_ptr<DataSource> data;
  ObjectivePtr objective;
  AttackPtr attack;  // may be null
  std::vector<NamedAttack> evals;
  std::vector<std::shared_ptr<Hook>> hooks;
  // Set in a data-free run: the student trains on its batches and `data` serves the test split
  // (and the validation split only with [generator] real_validation).
  GeneratorPtr generator;
};

// What the objective needs that the experiment must provide (a teacher, an [attack]); config
// errors naming the missing table. Called when the components are built and again by train().
ARDKIT_API void check_requirements(const TrainSetup& setup);
// The knobs of a run before any hook moves them: the objective's, and "attack.eps" (in [0, 1]
// for L-inf, >= 0 for L2) when there is a training attack.
ARDKIT_API Knobs declared_knobs(const TrainSetup& setup);

enum class TrainOutcome { completed, interrupted };

// Trains (on the data's training split, or on a generator's batches), validates and checkpoints,
// resuming from the run's last checkpoint when there is one, then evaluates last (and best) on the
// test split and writes results.json.
ARDKIT_API TrainOutcome train(TrainSetup& setup, RunDir& run);

}  // namespace ardkit
