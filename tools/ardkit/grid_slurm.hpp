#pragma once
#include <string>
#include <vector>

#include "grid_plan.hpp"

namespace ardkit::cli {

// Writes STORE/grids/NAME/slurm/ (the task list and the sbatch scripts) and submits the
// unfinished teachers as one job array and the unfinished cells as another that starts once the
// teachers succeeded. Each task is `ardkit run` of its cell; Slurm sends it SIGUSR1 before the
// time limit, it checkpoints, and the script requeues the task, which then resumes. With
// `no_submit` only writes the files and prints the sbatch commands.
int submit_slurm(const GridPlan& plan, const std::vector<std::string>& plugin_path, bool no_submit);

}  // namespace ardkit::cli
