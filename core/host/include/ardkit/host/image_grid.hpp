#pragma once
#include <filesystem>

#include <torch/types.h>

#include "ardkit/export.hpp"

namespace ardkit {

// Writes images [N, C, H, W] in [0,1] (C = 1 or 3) as one PNG: a grid `columns` wide with a
// one-pixel gap, written to a temporary file and renamed, so a grid on disk is always whole.
ARDKIT_API void write_image_grid(const torch::Tensor& images, const std::filesystem::path& path,
                                 int64_t columns = 8);

}  // namespace ardkit
