#pragma once
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <utility>

#include <nlohmann/json_fwd.hpp>

#include "ardkit/export.hpp"

namespace ardkit {

class EventFileWriter;

// A run's live curves for TensorBoard ([run] tensorboard = true): RUN/tensorboard/, one event
// file, fed by the same records as metrics.jsonl, so every number the run records is a curve.
//
// Tags (TensorBoard groups by what comes before the first '/'):
//   step lines   lr, images_per_s and loss terms -> train/NAME; a dotted name "gen.loss",
//                "syn.class_entropy", "knob.attack.eps" -> gen/loss, syn/class_entropy,
//                knob/attack.eps
//   epoch lines  val_NAME -> val/NAME; the rest -> epoch/NAME (epoch/train_loss, epoch/seconds)
//   test lines   test/CHECKPOINT/NAME (clean, each attack, worst_case), at the final step
//   images       samples: the data-free sample grid RUN/samples/epoch_NNN.png of each epoch
//   text         config: the resolved configuration (config.toml)
// The x-axis is the run's global step. With a label ([run] label; a grid cell's axis values) the
// file goes to RUN/tensorboard/LABEL/, so TensorBoard names the run NAME-HASH/tensorboard/LABEL.
//
// Resuming: the file is rebuilt at every start from what the run folder holds (config.toml,
// metrics.jsonl up to the checkpoint's step, the sample grids), then appended to; records a
// killed process wrote after its last checkpoint are left out and written again by the resumed
// run, and a (tag, step) pair is never written twice. The same rebuild gives curves to a run that
// turns tensorboard on only when it resumes.
class ARDKIT_API TensorBoardLog {
 public:
  TensorBoardLog(const std::filesystem::path& run_root, int64_t resume_step,
                 const std::string& label = {});
  ~TensorBoardLog();
  TensorBoardLog(const TensorBoardLog&) = delete;
  TensorBoardLog& operator=(const TensorBoardLog&) = delete;

  // One metrics.jsonl record ("type": "step", "epoch" or "test").
  void record(const nlohmann::json& line);
  const std::filesystem::path& file() const;

 private:
  void write(const nlohmann::json& line, double wall_time);
  void rebuild(int64_t resume_step, const std::string& label);

  std::filesystem::path root_;
  std::unique_ptr<EventFileWriter> writer_;
  std::set<std::pair<std::string, int64_t>> written_;
  int64_t last_step_ = 0;
};

}  // namespace ardkit
