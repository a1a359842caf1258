#pragma once
#include <filesystem>
#include <string>
#include <vector>

namespace ardkit {
struct ExperimentConfig;
}

namespace ardkit::cli {

// One experiment to train and evaluate, as `ardkit run` is asked for it.
struct RunRequest {
  std::string file;                                // EXPERIMENT.toml
  std::vector<std::string> overrides;              // KEY=VALUE, as --set gives them
  std::vector<std::filesystem::path> plugin_path;  // extra plugin folders, searched first
  // How long to wait for a teacher run that another process holds (several students of one
  // teacher started together, as a Slurm array does), and the same for this run's own folder.
  double teacher_wait = 2 * 24 * 3600;
  double lock_wait = 0;
};

// Trains and evaluates one experiment in its run folder, or reports its completed run: a teacher
// given as another experiment runs first, in the same run store, unless its run is complete; the
// folder is locked, its state kept in status.json, errors recorded there and in log.txt (the
// terminal gets one line). Prints the results table and the folder. Returns 0 when the run is
// complete, 130 when interrupted (its checkpoint resumes it); throws ardkit::Error otherwise.
// `ardkit run` is this; the grid's cells run it too, each in its own `ardkit run` process so
// that a cell that crashes (an abort inside LibTorch, memory) cannot take the grid down with it.
int run_experiment(const RunRequest& request);

// "[attack] steps = 10, step_size = 0.007 come from objective 'trades'; ..." or "": the values of
// [attack] that the file does not write and the objective sets, which `run` and `validate` say.
std::string preset_note(const ExperimentConfig& config);

}  // namespace ardkit::cli
