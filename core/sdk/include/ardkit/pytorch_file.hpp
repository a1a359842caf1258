#pragma once
// Weights in PyTorch's own file formats, both ways, without Python.
//
// Reading: `torch.save(model.state_dict(), f)` writes a pickled OrderedDict. LibTorch 1.13's
// unpickler turns every OrderedDict into None (it only expects them as empty tensor hook
// tables), so `torch::pickle_load` cannot read a state dict. ardkit reads these files with its
// own interpreter for the pickle subset torch.save emits, in both the zip format (PyTorch >= 1.6)
// and the legacy format (the one of most published robust checkpoints, e.g. TRADES 2019).
//
// Writing: a dict of tensors through LibTorch's pickler, which `torch.load` reads as a dict that
// `model.load_state_dict` accepts.
#include <torch/types.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "ardkit/export.hpp"

namespace ardkit {

// Named tensors in file order, as in a PyTorch state dict.
using StateDict = std::vector<std::pair<std::string, torch::Tensor>>;

// The state dict inside a file written by torch.save. `key` selects a nested entry of a
// checkpoint dict ("state_dict", or "a/b" for checkpoint['a']['b']); an empty key takes the top
// level if it is a dict of tensors, else the first of the usual entries (state_dict,
// model_state_dict, model, net, ...) that is one. Errors name the file and the fix.
ARDKIT_API StateDict read_pytorch_state_dict(const std::filesystem::path& file,
                                             const std::string& key = "");

// Writes `state` so that Python's torch.load returns a dict of tensors (written to a temporary
// file first, so a crash never leaves a half-written file under `file`).
ARDKIT_API void write_pytorch_state_dict(const std::filesystem::path& file, const StateDict& state);

// True for a zip archive written by LibTorch's torch::save / torch::serialize (an ardkit
// checkpoint), as opposed to a pickled Python object.
ARDKIT_API bool is_libtorch_archive(const std::filesystem::path& file);

}  // namespace ardkit
