#pragma once
#include <ATen/core/Generator.h>
#include <torch/types.h>

#include <string>
#include <vector>

#include "ardkit/data.hpp"
#include "ardkit/params.hpp"

namespace ardkit {

// How a labelled dataset is cut into splits; every data plugin offers these keys.
struct SplitOptions {
  int64_t validation = 0;          // training samples held out as the validation split
  int64_t split_seed = 0;          // which ones (a seeded permutation of the training set)
  int64_t train_subset = 0;        // keep only N of the remaining training samples (0 = all)
  int64_t test_subset = 0;         // keep only N test samples (0 = all)
  bool stratified = false;         // subsets: N/classes per class instead of the first N
  std::vector<int64_t> class_map;  // label l becomes class_map[l]; -1 drops it ([] = identity)
  std::string where;               // the [data] table, for messages
};

struct AugmentOptions {
  int64_t crop_padding = 0;  // random crop after zero padding by this many pixels (0 = off)
  bool horizontal_flip = false;
};

ARDKIT_API void add_split_params(ParamSchema& schema, int64_t default_validation);
ARDKIT_API SplitOptions split_options_from(const Params& params);
// Defaults are the plugin's (CIFAR-style data: crop_padding 4 and horizontal_flip true).
ARDKIT_API void add_augment_params(ParamSchema& schema, int64_t crop_padding = 0,
                                   bool horizontal_flip = false);
ARDKIT_API AugmentOptions augment_options_from(const Params& params);

// Random crop with zero padding and horizontal flip, per sample, drawn from `generator`.
ARDKIT_API torch::Tensor augment(const torch::Tensor& x, const AugmentOptions& options,
                                 at::Generator generator);

// A dataset held in memory: images as uint8 (scaled to [0,1] on the way out) or float in [0,1],
// NCHW; labels int64. Plugins that read a file format build one of these; class remapping,
// the validation split and subsets happen here, the same for every format. `spec.num_classes`
// is the file's number of classes (the remapped count is what spec() reports). Undefined
// training tensors (BuildContext::train_split false) make an empty training split and no
// validation split; asking for either is then an error.
class ARDKIT_API InMemoryData : public DataSource {
 public:
  InMemoryData(DataSpec spec, torch::Tensor train_x, torch::Tensor train_y, torch::Tensor test_x,
               torch::Tensor test_y, const SplitOptions& split, const AugmentOptions& augment);
  DataSpec spec() const override {
    return spec_;
  }
  int64_t size(Split split) const override;
  Batch get(Split split, const torch::Tensor& indices, Augmentation augment) override;

 private:
  const torch::Tensor& images(Split split) const;
  DataSpec spec_;
  AugmentOptions augment_;
  bool withheld_ = false;
  torch::Tensor x_[3], y_[3];
};

}  // namespace ardkit
