#pragma once
#include <filesystem>
#include <string>

#include "ardkit/export.hpp"

namespace ardkit {

// Writes `content` to `path` atomically: a temporary file in the same folder, flushed to disk,
// then renamed over the target. A crash leaves the old file or the new one, never half of one;
// a failure (a full disk, a missing folder) is one Error naming the file and the fix.
ARDKIT_API void write_file_atomic(const std::filesystem::path& path, const std::string& content);

}  // namespace ardkit
