#pragma once
// Grid files: a set of base experiments and axes of values for any of their keys, expanded into
// cells. Each cell is an ordinary run (`ardkit run BASE --set KEY=VALUE ...`), so its run folder,
// resume and reuse are exactly those of a single run; this file knows nothing about running.
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ardkit/export.hpp"

namespace ardkit {

// One coordinate of a cell: the axis key ("attack.eps", or "experiment" for the base file) and
// the value as TOML text ("0.1", "\"rslad\"", "[2, 3]").
struct GridCoordinate {
  std::string key;
  std::string value;
};

struct ARDKIT_API GridCell {
  size_t index = 0;  // position in the expansion, 0-based
  std::filesystem::path experiment;
  std::string experiment_label;             // the file's stem: what the "experiment" axis shows
  std::vector<GridCoordinate> coordinates;  // every axis, in declaration order
  // "KEY=VALUE" for `--set`: the grid's [set] table, then the axes that apply to this cell's
  // experiment (an axis whose table the experiment lacks, such as attack.eps for natural
  // training, is a coordinate of the cell but not set).
  std::vector<std::string> overrides;
  // "attack.eps=0.1 run.seed=2", the experiment first when there are several.
  std::string label() const;
};

// What `--backend slurm` puts in the job script ([slurm] in the grid file).
struct SlurmOptions {
  std::string partition;
  std::string time = "04:00:00";  // per cell, as sbatch --time takes it
  int64_t cpus = 2;
  int64_t gpus = 0;
  std::string memory;              // sbatch --mem ("" = the partition's default)
  int64_t concurrency = 0;         // array "%N": at most N cells at once (0 = no limit)
  int64_t signal_seconds = 120;    // SIGUSR1 this long before the time limit: checkpoint, requeue
  std::vector<std::string> extra;  // further "#SBATCH" lines, e.g. "--account=lab"
};

struct ARDKIT_API GridSpec {
  std::filesystem::path file;  // the grid file (or the single experiment given instead)
  std::string name;
  std::vector<std::filesystem::path> experiments;
  std::optional<std::string> output;  // [grid] output: the run store (else each experiment's)
  std::vector<std::string> set;       // [set] and --set: applied to every cell
  // Axes grouped: a group of one is an ordinary axis; a [[zip]] group moves together.
  struct Axis {
    std::string key;
    std::vector<std::string> values;  // TOML text
  };
  std::vector<std::vector<Axis>> groups;
  std::vector<std::vector<GridCoordinate>> excludes;  // a cell matching every pair is dropped
  SlurmOptions slurm;

  // The keys of the axes, "experiment" first when there are several experiments.
  std::vector<std::string> axis_keys() const;
  // The product of the groups over the experiments, without excluded cells. Throws a config
  // error when an axis key's table exists in none of the experiments (a typo would otherwise
  // silently change nothing).
  std::vector<GridCell> cells() const;
};

// Reads a grid file, or an experiment file (no [grid] table) as a grid of that one experiment.
// `cli_axes` are "KEY=V1,V2,..." (--axis; replaces a file axis of the same key), `cli_set` are
// "KEY=VALUE" (--set). Errors name the file, the place and the fix.
ARDKIT_API GridSpec read_grid(const std::filesystem::path& file,
                              const std::vector<std::string>& cli_axes = {},
                              const std::vector<std::string>& cli_set = {});

// "a,b,[1, 2],c" split at top-level commas (brackets, braces and quotes protect theirs).
ARDKIT_API std::vector<std::string> split_axis_values(const std::string& text);

}  // namespace ardkit
