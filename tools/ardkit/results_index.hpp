#pragma once
// The results index: one SQLite file per run store (STORE/index.sqlite) with every finished run's
// resolved configuration, results, evaluation results, accuracy figures and grid coordinates, so
// that reports and ad-hoc SQL (`sqlite3 runs/index.sqlite "select ..."`) need not parse hundreds
// of folders. The run folders stay the source of truth: the index is brought up to date from
// them on every use (by modification time) and can be deleted or rebuilt at any time.
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ardkit::cli {

namespace fs = std::filesystem;

// One run folder as the index holds it.
struct IndexedRun {
  fs::path folder;
  std::string run_id, name;
  nlohmann::ordered_json config;   // config.toml as JSON
  nlohmann::ordered_json results;  // results.json
  // RUN/evals/*.json written by `ardkit eval RUN`, by file stem ("best-test").
  std::vector<std::pair<std::string, nlohmann::ordered_json>> evals;
  // The per-epoch rows of metrics.jsonl (epoch, lr, train_* loss terms, val_* accuracy).
  nlohmann::ordered_json epochs = nlohmann::ordered_json::array();
};

class ResultsIndex {
 public:
  // Opens (creating) STORE/index.sqlite; `rebuild` empties it first.
  ResultsIndex(const fs::path& store, bool rebuild);
  ~ResultsIndex();
  ResultsIndex(const ResultsIndex&) = delete;
  ResultsIndex& operator=(const ResultsIndex&) = delete;
  // Brings the entries of these run folders (and every grid manifest under STORE/grids) up to
  // date and returns them; folders without a completed run are skipped.
  std::vector<IndexedRun> update(const std::vector<fs::path>& folders);
  const fs::path& file() const;

 private:
  struct Impl;
  Impl* impl_;
};

// The folders under `store` that hold a completed run.
std::vector<fs::path> completed_runs_in(const fs::path& store);

// Checks the types of what reports read from a run's results.json (`run` true: name, and last
// and best evaluations) or from an `ardkit eval` results file; a file edited by hand or written
// by something else is an error naming the file, the field and the fix instead of a bare JSON
// library message.
void check_results_json(const nlohmann::ordered_json& j, const fs::path& file, bool run);

}  // namespace ardkit::cli
