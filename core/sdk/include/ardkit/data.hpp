#pragma once
#include <torch/types.h>

#include <string>

#include "ardkit/component.hpp"

namespace ardkit {

enum class Split { train, validation, test };

ARDKIT_API const char* split_name(Split split);

// The shape of what a data source yields, given to model factories so a model sizes itself.
struct DataSpec {
  int64_t channels = 1;
  int64_t height = 28;
  int64_t width = 28;
  int64_t num_classes = 10;
  std::string name;  // "fashion-mnist", "synthetic", ...
  // What the labels mean, for telling tasks apart: two models share a label space when these
  // are equal. Empty: `name` (the data's own classes); a class_map makes it "NAME class_map=[...]".
  std::string label_space;
};

// The label space a spec's labels live in (see DataSpec::label_space).
inline std::string label_space_of(const DataSpec& spec) {
  return spec.label_space.empty() ? spec.name : spec.label_space;
}

// A batch: x in [0,1] (float, NCHW), y class indices (int64), index the position of each sample
// within its split (int64), so per-sample state (memory banks, reweighting) can be kept.
struct Batch {
  torch::Tensor x;
  torch::Tensor y;
  torch::Tensor index;
};

// Whether a batch is augmented, and with which seed: each batch's random crops and flips come
// from their own generator, so they do not depend on which thread gathers the batch or on what
// else drew random numbers before (bit-exact resume, background prefetch).
struct Augmentation {
  bool enabled = false;
  uint64_t seed = 0;
  static Augmentation none() {
    return {};
  }
  static Augmentation seeded(uint64_t seed) {
    return {true, seed};
  }
};

// A finite labelled dataset with train, validation and test splits. The engine owns batching and
// shuffling (seeded, so an interrupted run resumes with the same order); the source only gathers
// the requested samples, applying its training augmentation when asked to.
class ARDKIT_API DataSource : public Component {
 public:
  virtual DataSpec spec() const = 0;
  virtual int64_t size(Split split) const = 0;
  // `indices`: int64 positions within `split`. Training augmentation applies to the train split
  // only. Called from a background thread while the engine trains: must not touch shared state.
  virtual Batch get(Split split, const torch::Tensor& indices, Augmentation augment) = 0;
};

}  // namespace ardkit
