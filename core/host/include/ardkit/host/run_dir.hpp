#pragma once
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <toml++/toml.h>

#include "ardkit/export.hpp"
#include "ardkit/file.hpp"  // write_file_atomic, which every run file goes through

namespace ardkit {

class TensorBoardLog;

// The state in FOLDER/status.json ("" when there is none or it is unreadable), and whether the
// run there completed with its results written; both read only, creating nothing.
ARDKIT_API std::string run_state(const std::filesystem::path& folder);
ARDKIT_API bool run_completed(const std::filesystem::path& folder);
// Whether a live process holds FOLDER's run lock: tells a running run from one whose process
// died with status.json still saying "running".
ARDKIT_API bool run_locked(const std::filesystem::path& folder);

// The checkpoints a run can leave, in the order results.json lists their evaluations: the last
// epoch, the validation-best, and the weight average ([train] average_from).
inline const std::vector<std::string>& checkpoint_kinds() {
  static const std::vector<std::string> kinds = {"last", "best", "averaged"};
  return kinds;
}

// A run's folder: config.toml (resolved), status.json, metrics.jsonl, log.txt, checkpoints/,
// results.json. Status states: running, completed, failed, interrupted.
class ARDKIT_API RunDir {
 public:
  RunDir(std::filesystem::path root, std::string run_id, std::string experiment);
  const std::filesystem::path& root() const {
    return root_;
  }
  const std::string& run_id() const {
    return run_id_;
  }
  // One of checkpoint_kinds().
  std::filesystem::path checkpoint_path(const std::string& which) const;
  // Progress of the final test evaluation of a checkpoint, saved after every attack batch so a
  // killed run resumes mid-attack; removed once results.json holds the numbers.
  std::filesystem::path eval_state_path(const std::string& which) const;
  std::filesystem::path results_path() const;
  std::filesystem::path metrics_path() const;
  std::filesystem::path log_path() const;

  // The state recorded in status.json, or "" when the folder has none yet.
  std::string state() const;
  void write_config(const toml::table& resolved) const;
  // Records the state with versions, commit, times; `detail` (an error message) when given.
  void set_state(const std::string& state, const std::string& detail = {}) const;
  // Appends one JSON object (already serialized) to metrics.jsonl, and to the run's TensorBoard
  // events when they are on.
  void append_metrics(const std::string& json_line);
  // From here on, metrics also go to RUN/tensorboard/[LABEL/] (TensorBoardLog: rebuilt from the
  // folder's records up to `resume_step`, the global step the run continues from).
  void start_tensorboard(int64_t resume_step, const std::string& label = {});
  // Takes the folder's lock for the life of this object, so two processes never write one run.
  // When another process holds it, waits up to `wait_seconds` (calling `on_wait` once with that
  // process's id, for a message) and then fails naming it; 0 fails at once. Waiting is what two
  // students sharing one teacher need: the second waits for the first to train it, then reuses it.
  // Interrupts stop the wait (ardkit::Interrupted).
  void lock(double wait_seconds = 0,
            const std::function<void(const std::string& holder)>& on_wait = {});
  ~RunDir();
  RunDir(const RunDir&) = delete;
  RunDir& operator=(const RunDir&) = delete;

 private:
  std::filesystem::path root_;
  std::string run_id_;
  std::string experiment_;
  int lock_fd_ = -1;
  std::unique_ptr<TensorBoardLog> tensorboard_;
};

}  // namespace ardkit
