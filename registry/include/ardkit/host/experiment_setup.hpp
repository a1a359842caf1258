#pragma once
// Turns a validated experiment into live plugin objects: the wiring between the experiment
// file's tables and the registry.
#include <ardkit/host/config.hpp>
#include <ardkit/host/registry.hpp>
#include <ardkit/host/trainer.hpp>

namespace ardkit {

// A teacher given as `[teacher] experiment = "FILE"` (or [teachers.NAME]): the student of that
// experiment, trained by it in this experiment's run store. `ardkit run` runs it first unless
// `folder` holds a completed run (the same configuration always has the same folder).
struct TeacherRun {
  std::string role;            // "teacher" or "teachers.NAME"
  std::filesystem::path file;  // the teacher's experiment file
  std::string output;          // the run store both share ([run] output of this experiment)
  std::filesystem::path folder;
  std::filesystem::path checkpoint;  // folder/checkpoints/{best,last}.pt
  // The teacher experiment's [data]: the teacher is built for its own task's shape and classes
  // (cross-task distillation), and its label space is compared with the student's.
  std::optional<PluginTable> data;
};

struct ARDKIT_API LoadedExperiment {
  std::unique_ptr<Registry> registry;
  ExperimentConfig config;
  std::optional<TeacherRun> teacher_run;                 // [teacher]
  std::map<std::string, TeacherRun> named_teacher_runs;  // [teachers.NAME], by NAME
  // Every teacher experiment, [teacher]'s first: each trains before this one.
  std::vector<const TeacherRun*> teacher_runs() const;
};
// Reads, overrides, loads plugins along the full search path and validates; resolves a teacher
// experiment (recursively, refusing cycles) without running it.
ARDKIT_API LoadedExperiment load_experiment(const std::filesystem::path& file,
                                            const std::vector<std::string>& overrides,
                                            const std::vector<std::filesystem::path>& plugin_path);

// The [[eval]] attacks, labelled by their `name` (default: the plugin name; labels must differ).
ARDKIT_API std::vector<NamedAttack> build_named_attacks(const Registry& registry,
                                                        const std::vector<PluginTable>& tables,
                                                        const std::filesystem::path& file,
                                                        const BuildContext& context);

// Builds every component (data first: models size themselves from it).
// `load_teacher_weights` false: the teacher keeps its initial weights (validating an experiment
// whose teacher experiment has not run yet).
ARDKIT_API TrainSetup build_components(const LoadedExperiment& experiment,
                                       bool load_teacher_weights = true);

}  // namespace ardkit
