#pragma once
// Weight averaging of the student (stochastic weight averaging, Izmailov et al., "Averaging
// Weights Leads to Wider Optima and Better Generalization", UAI 2018): from the end of epoch
// `[train] average_from` on, the running mean of the student's parameters after each epoch. At
// the end of the run the mean, with BatchNorm's running statistics recomputed on training
// batches, is the checkpoint "averaged", evaluated beside "last" and "best". PeerAiD's
// `--swa_s` (jaewonalive/PeerAiD utils/SWA.py) is this with average_from = 214.
#include <functional>

#include <torch/serialize/archive.h>

#include "ardkit/data.hpp"
#include "ardkit/export.hpp"
#include "ardkit/model.hpp"

namespace ardkit {

class ARDKIT_API WeightAverage {
 public:
  // `from` < 0: no averaging (every call below does nothing).
  WeightAverage(Model& student, int64_t from);
  bool active() const {
    return from_ >= 0;
  }
  // Epochs averaged so far.
  int64_t count() const {
    return count_;
  }
  // After epoch `epoch` (0-based): its weights join the mean when epoch >= from.
  void end_epoch(int64_t epoch);
  // Checkpointed with the run, so a resumed run averages the same epochs.
  void save(torch::serialize::OutputArchive& archive) const;
  void load(torch::serialize::InputArchive& archive);
  // Puts the mean into the student and sets every BatchNorm layer's running statistics to the
  // average of its batch statistics over `batches` training batches from `draw` (train-mode,
  // no-grad forwards, a cumulative average as torch.optim.swa_utils.update_bn and PeerAiD's
  // bn_update compute). The student's other state is untouched.
  void apply(const std::function<Batch()>& draw, int64_t batches);

 private:
  Model& student_;
  int64_t from_;
  int64_t count_ = 0;
  std::vector<torch::Tensor> mean_;  // one per parameter, in parameters() order
};

// The running statistics of every BatchNorm layer of `model` (ardkit's and LibTorch's 1d/2d)
// recomputed as the average over `batches` batches from `draw`; their momentum is restored.
ARDKIT_API void recompute_batchnorm(Model& model, const std::function<Batch()>& draw,
                                    int64_t batches);

}  // namespace ardkit
