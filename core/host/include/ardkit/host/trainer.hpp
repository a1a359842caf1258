#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ardkit/attack.hpp"
#include "ardkit/data.hpp"
#include "ardkit/generator.hpp"
#include "ardkit/hook.hpp"
#include "ardkit/host/config.hpp"
#include "ardkit/host/evaluator.hpp"
#include "ardkit/host/generator_options.hpp"
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
  GeneratorOptions generator_options;  // how the engine drives it: [generator]'s host keys
  // The models of [teachers.NAME] (frozen, like `teacher`) and [companions.NAME] (trained with
  // their own optimizers), by NAME; the objective reaches them by role (StepContext).
  std::map<std::string, ModelPtr> teachers, companions;
};

// What the objective needs that the experiment must provide (a teacher, an [attack], one label
// space); config errors naming the missing table. build_components calls it, before a run folder
// exists: train() takes a setup that passed it.
ARDKIT_API void check_requirements(const TrainSetup& setup);
// The knobs of a run before any hook moves them: the objective's, and "attack.eps" (in [0, 1]
// for L-inf, >= 0 for L2) when there is a training attack.
ARDKIT_API Knobs declared_knobs(const TrainSetup& setup);
// The one label-space rule: an objective that needs one label space refuses a teacher whose
// class count or label space differs from the student's (a config error naming the file).
void check_label_spaces(const ExperimentConfig& config, int64_t teacher_classes,
                        const std::string& teacher_space, int64_t classes,
                        const std::string& space);

enum class TrainOutcome { completed, interrupted };

// Trains (on the data's training split, or on a generator's batches), validates and checkpoints,
// resuming from the run's last checkpoint when there is one, then evaluates last (and best) on the
// test split and writes results.json. The stages are TrainingLoop's, in trainer.cpp.
ARDKIT_API TrainOutcome train(TrainSetup& setup, RunDir& run);

}  // namespace ardkit
