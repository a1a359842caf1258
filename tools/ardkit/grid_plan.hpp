#pragma once
// A grid resolved against the run store: which run folder each cell is, which teachers the cells
// need, and what state each is in. Shared by `ardkit grid` (local and Slurm backends), `grid
// status` and `ardkit report GRID.toml`.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "grid_file.hpp"

namespace ardkit::cli {

namespace fs = std::filesystem;

// One `ardkit run` the grid needs: a cell's run, or a teacher run that cells share.
struct GridTask {
  std::string label;     // "cell 3 (objective.plugin=rslad run.seed=2)", "teacher NAME"
  std::string log_name;  // file name under the grid's logs/ folder
  fs::path experiment;
  std::vector<std::string> overrides;  // --set, run.output included
  std::string run_id;
  fs::path folder;                // the run folder (empty when the cell did not resolve)
  std::string error;              // why the cell does not resolve (a config error), else ""
  std::vector<size_t> teachers;   // indices into GridPlan::teachers: trained first
  std::optional<size_t> same_as;  // an earlier cell with the same run id: runs once
};

struct GridPlan {
  GridSpec spec;
  std::vector<GridCell> cells;
  std::vector<GridTask> cell_tasks;  // parallel to cells
  std::vector<GridTask> teachers;    // distinct teacher runs, trained first
  fs::path store;                    // the run store (output folder)
  fs::path folder;                   // STORE/grids/NAME: cells.json, logs/, slurm/
};

// Resolves every cell (loading plugins to validate it and derive its run id); a cell that does
// not validate keeps its error and the others go on.
GridPlan plan_grid(const fs::path& file, const std::vector<std::string>& axes,
                   const std::vector<std::string>& set, const std::string& output,
                   const std::vector<fs::path>& plugin_path);

// done | running | failed | pending, and for failed the one-line error.
struct TaskState {
  std::string state;
  std::string detail;
};
TaskState task_state(const GridPlan& plan, const GridTask& task);

// Writes STORE/grids/NAME/cells.json: every cell's coordinates and run folder, what the results
// index and `ardkit report GRID.toml` group by.
void write_grid_manifest(const GridPlan& plan);

// The last "ardkit: error: ..." line of a task's log, or "".
std::string last_error_line(const fs::path& log);

// Whether FILE is a grid file (it has a [grid] table) rather than an experiment.
bool is_grid_file(const fs::path& file);

// The path of this executable, for the runs the grid starts.
fs::path self_executable();

}  // namespace ardkit::cli
