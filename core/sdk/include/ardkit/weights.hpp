#pragma once
// Moving model weights in and out: ardkit checkpoints, PyTorch state dicts (see pytorch_file.hpp)
// and the name mapping between a file's keys and a model's parameters.
#include <filesystem>
#include <string>
#include <vector>

#include "ardkit/model.hpp"
#include "ardkit/params.hpp"
#include "ardkit/pytorch_file.hpp"

namespace ardkit {

// How a file's keys map onto the model: the host keys of a [student] or [teacher] table.
struct WeightOptions {
  std::string key;                                     // entry of a checkpoint dict ("" = auto)
  std::vector<std::string> strip_prefixes{"module."};  // removed from the front of every key
  std::vector<std::string> renames;                    // "regex=replacement", applied in order
  bool strict = true;  // missing, unexpected keys are errors (mis-shaped ones always are)
  std::string where;   // for messages: "exp.toml [teacher]"
  std::string sha256;  // set: the file's SHA-256 must be this (64 hex digits)
};

// The host keys above, for a model table's schema, and reading them back.
ARDKIT_API void add_weight_params(ParamSchema& schema);
ARDKIT_API WeightOptions weight_options_from(const Params& host);

// Parameters and buffers under PyTorch's state_dict names, in PyTorch's order (each module's own
// parameters, then its buffers, then its children).
ARDKIT_API StateDict model_state_dict(torch::nn::Module& model);

// A digest of the model's weights (names, shapes, dtypes and values of every parameter and
// buffer): equal digests mean the same weights, so saved evaluation progress can tell whether it
// still belongs to the model in hand.
ARDKIT_API uint64_t weights_digest(torch::nn::Module& model);

// Copies `state` into the model after renaming its keys; one error line lists every missing,
// unexpected and mis-shaped key. Returns the number of tensors loaded.
ARDKIT_API size_t load_state_dict(torch::nn::Module& model, const StateDict& state,
                                  const WeightOptions& options, const std::string& source);

// Weights from a file: an ardkit checkpoint (the model part of a training checkpoint, or a bare
// model) or anything torch.save wrote (zip or legacy format).
ARDKIT_API void load_weights(Model& model, const std::filesystem::path& file,
                             const WeightOptions& options = {});

// Where a module's weights live (the CPU for one without parameters).
inline torch::Device device_of(const torch::nn::Module& module) {
  const auto parameters = module.parameters();
  return parameters.empty() ? torch::Device(torch::kCPU) : parameters.front().device();
}

}  // namespace ardkit
